package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
)

func leaseGrant(ctx context.Context, e *env) error {
	grant, err := e.cli.Grant(ctx, 20)
	if err != nil {
		return err
	}
	defer e.cli.Revoke(context.Background(), grant.ID)
	k := e.key("leased")
	if _, err := e.cli.Put(ctx, k, "v", clientv3.WithLease(grant.ID)); err != nil {
		return err
	}
	ttl, err := e.cli.TimeToLive(ctx, grant.ID, clientv3.WithAttachedKeys())
	if err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, k)
	if err != nil {
		return err
	}
	var keys []string
	for _, key := range ttl.Keys {
		keys = append(keys, string(key))
	}
	return first(
		expect("granted ttl", grant.TTL, 20),
		expect("ttl id", ttl.ID, grant.ID),
		expect("ttl granted", ttl.GrantedTTL, 20),
		expect("attached keys", keys, []string{k}),
		expect("key's lease", clientv3.LeaseID(get.Kvs[0].Lease), grant.ID),
		boolCheck("remaining in (0, 20]", ttl.TTL > 0 && ttl.TTL <= 20, ttl.TTL),
	)
}

func boolCheck(what string, ok bool, got interface{}) error {
	if !ok {
		return fmt.Errorf("%s: got %v", what, got)
	}
	return nil
}

func leaseKeepAliveOnce(ctx context.Context, e *env) error {
	grant, err := e.cli.Grant(ctx, 15)
	if err != nil {
		return err
	}
	defer e.cli.Revoke(context.Background(), grant.ID)
	resp, err := e.cli.KeepAliveOnce(ctx, grant.ID)
	if err != nil {
		return err
	}
	return first(expect("id", resp.ID, grant.ID), expect("ttl", resp.TTL, 15))
}

func leaseKeepAliveStream(ctx context.Context, e *env) error {
	grant, err := e.cli.Grant(ctx, 3)
	if err != nil {
		return err
	}
	defer e.cli.Revoke(context.Background(), grant.ID)
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := e.cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		return err
	}
	// The client renews every TTL/3 (one second): three answers span two renewal periods.
	for i := 0; i < 3; i++ {
		select {
		case resp, ok := <-ch:
			if !ok {
				return fmt.Errorf("keep-alive channel closed after %d answers", i)
			}
			if err := first(expect("id", resp.ID, grant.ID), expect("ttl", resp.TTL, 3)); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("keep-alive answer %d: %v", i, ctx.Err())
		}
	}
	ttl, err := e.cli.TimeToLive(ctx, grant.ID)
	if err != nil {
		return err
	}
	return boolCheck("alive after renewals", ttl.TTL > 0, ttl.TTL)
}

// etcd serves LeaseLeases from the answering member's own lessor, without a read index: a
// follower lists a lease once it has applied the grant. So the lease must be listed within
// the check's deadline, not necessarily on the first answer.
func leaseList(ctx context.Context, e *env) error {
	grant, err := e.cli.Grant(ctx, 20)
	if err != nil {
		return err
	}
	defer e.cli.Revoke(context.Background(), grant.ID)
	for {
		leases, err := e.cli.Leases(ctx)
		if err != nil {
			return err
		}
		for _, l := range leases.Leases {
			if l.ID == grant.ID {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lease %x not among the %d listed", grant.ID, len(leases.Leases))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func leaseRevoke(ctx context.Context, e *env) error {
	grant, err := e.cli.Grant(ctx, 20)
	if err != nil {
		return err
	}
	k := e.key("leased")
	if _, err := e.cli.Put(ctx, k, "v", clientv3.WithLease(grant.ID)); err != nil {
		return err
	}
	if _, err := e.cli.Revoke(ctx, grant.ID); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, k)
	if err != nil {
		return err
	}
	ttl, err := e.cli.TimeToLive(ctx, grant.ID)
	if err != nil {
		return err
	}
	_, again := e.cli.Revoke(ctx, grant.ID)
	_, put := e.cli.Put(ctx, k, "v", clientv3.WithLease(grant.ID))
	return first(
		expect("key after revoke", get.Count, 0),
		expect("time-to-live after revoke", ttl.TTL, -1),
		expect("revoke again", again, rpctypes.ErrLeaseNotFound),
		expect("put with revoked lease", put, rpctypes.ErrLeaseNotFound),
	)
}

// Issue 22 (a): etcd answers a keep-alive of a lease revoked just before with TTL 0, which
// clientv3 turns into ErrLeaseNotFound. The lease is kept alive once first (so the leader's
// lessor holds its expiry, which a stale table would renew), and every pair of members is
// tried for where the revoke and the keep-alive go, a few rounds each.
func leaseKeepAliveAfterRevoke(ctx context.Context, e *env) error {
	clients := make([]*clientv3.Client, len(e.endpoints))
	for i, ep := range e.endpoints {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 10 * time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	for round := 0; round < 3; round++ {
		for r, revoker := range clients {
			for k, keeper := range clients {
				grant, err := revoker.Grant(ctx, 30)
				if err != nil {
					return err
				}
				if _, err := keeper.KeepAliveOnce(ctx, grant.ID); err != nil {
					return fmt.Errorf("keep-alive before revoke: %v", err)
				}
				if _, err := revoker.Revoke(ctx, grant.ID); err != nil {
					return err
				}
				resp, err := keeper.KeepAliveOnce(ctx, grant.ID)
				if err != rpctypes.ErrLeaseNotFound {
					detail := "no answer"
					if resp != nil {
						detail = fmt.Sprintf("TTL %d", resp.TTL)
					}
					return fmt.Errorf("round %d, revoke via %s, keep-alive via %s: got error %v (%s), want %v",
						round, e.endpoints[r], e.endpoints[k], err, detail, rpctypes.ErrLeaseNotFound)
				}
			}
		}
	}
	return nil
}

// Issue 22 (b): TimeToLive's remaining TTL is the remaining time truncated to whole seconds
// (etcd: int64(Remaining().Seconds())), so a 30 s lease reads 29 half a second in and 28 at
// a second and a half. The accepted values are those truncation gives anywhere in the interval
// the grant and the read may have happened in, from before the grant was sent to after the
// answer came.
func leaseRemainingTruncated(ctx context.Context, e *env) error {
	before := time.Now()
	grant, err := e.cli.Grant(ctx, 30)
	if err != nil {
		return err
	}
	granted := time.Now()
	defer e.cli.Revoke(context.Background(), grant.ID)
	var seen []string
	for _, at := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond} {
		// The reading is meant to be taken at this age of the lease: the wait is the quantity
		// under test, not a synchronisation.
		time.Sleep(time.Until(granted.Add(at)))
		asked := time.Now()
		ttl, err := e.cli.TimeToLive(ctx, grant.ID)
		if err != nil {
			return err
		}
		answered := time.Now()
		// Remaining lies in [30 - (answered - before), 30 - (asked - granted)].
		low := int64(math.Floor(30 - answered.Sub(before).Seconds()))
		high := int64(math.Floor(30 - asked.Sub(granted).Seconds()))
		if ttl.TTL < low || ttl.TTL > high {
			return fmt.Errorf("remaining at %v: got %d, want %d..%d (truncated seconds)", at, ttl.TTL, low, high)
		}
		seen = append(seen, fmt.Sprintf("%d at %v", ttl.TTL, at))
	}
	e.note = "remaining " + strings.Join(seen, ", ")
	return nil
}
