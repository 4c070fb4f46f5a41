package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// The failover check's own budget: a new leader, then a lease outliving its TTL.
const failoverTimeout = 60 * time.Second

// failoverCheck: a client is given every endpoint, the leader's first, and the member of the
// first endpoint is killed (by the caller, asked on stdout, answering on stdin): the hardest
// case, a client's first endpoint and the cluster's leader at once. Puts, reads and a lease's
// keep-alive stream go on through the others, and the lease outlives its TTL.
func failoverCheck(_ context.Context, e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), failoverTimeout)
	defer cancel()
	eps, err := leaderFirst(ctx, e)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	report := e
	e = &env{cli: cli, endpoints: eps, prefix: e.prefix, stdin: e.stdin}
	const ttl = 5
	grant, err := e.cli.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	k := e.key("alive")
	if _, err := e.cli.Put(ctx, k, "before", clientv3.WithLease(grant.ID)); err != nil {
		return err
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	answers, err := e.cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		return err
	}
	select {
	case <-answers:
	case <-ctx.Done():
		return fmt.Errorf("first keep-alive answer: %v", ctx.Err())
	}

	fmt.Printf("KILL %s\n", e.endpoints[0])
	line, err := e.stdin.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "OK" {
		return fmt.Errorf("the caller did not confirm the kill: %q %v", line, err)
	}
	killed := time.Now()

	// Writes go through once the others have a leader (each try bounded, retried).
	var put error
	for try := 0; ; try++ {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		_, put = e.cli.Put(pctx, e.key("after"), fmt.Sprint(try))
		pcancel()
		if put == nil || ctx.Err() != nil {
			break
		}
	}
	if put != nil {
		return fmt.Errorf("put after the kill: %v", put)
	}
	firstPut := time.Since(killed)
	get, err := e.cli.Get(ctx, e.key("after"))
	if err != nil || get.Count != 1 {
		return fmt.Errorf("get after the kill: %v %v", get, err)
	}

	// The keep-alive stream goes on: answers keep coming until the lease has outlived its TTL
	// counted from the kill (the client renews every TTL/3).
	renewals := 0
	outlived := killed.Add((ttl + 2) * time.Second)
	for time.Now().Before(outlived) {
		select {
		case resp, ok := <-answers:
			if !ok {
				return fmt.Errorf("keep-alive stream closed after %d renewals past the kill", renewals)
			}
			if resp.TTL != ttl {
				return fmt.Errorf("keep-alive answer TTL %d", resp.TTL)
			}
			renewals++
		case <-ctx.Done():
			return fmt.Errorf("%d renewals past the kill: %v", renewals, ctx.Err())
		}
	}
	alive, err := e.cli.TimeToLive(ctx, grant.ID)
	if err != nil {
		return err
	}
	kept, err := e.cli.Get(ctx, k)
	if err != nil {
		return err
	}
	report.note = fmt.Sprintf("killed leader %s; first put %v after the kill; %d renewals in %v",
		eps[0], firstPut.Round(time.Millisecond), renewals, time.Since(killed).Round(time.Millisecond))
	return first(
		boolCheck("renewals past the kill", renewals >= 3, renewals),
		boolCheck("lease alive past its TTL", alive.TTL > 0, alive.TTL),
		expect("leased key kept", kept.Count, 1),
	)
}

// leaderFirst orders the endpoints with the leader's first (every member names the leader in
// its status; they must agree).
func leaderFirst(ctx context.Context, e *env) ([]string, error) {
	var leader uint64
	at := -1
	for i, ep := range e.endpoints {
		status, err := e.cli.Status(ctx, ep)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %v", ep, err)
		}
		if leader != 0 && status.Leader != leader {
			return nil, fmt.Errorf("members disagree on the leader: %x and %x", leader, status.Leader)
		}
		leader = status.Leader
		if status.Header.MemberId == leader {
			at = i
		}
	}
	if at < 0 {
		return nil, fmt.Errorf("no endpoint is the leader %x", leader)
	}
	eps := []string{e.endpoints[at]}
	for i, ep := range e.endpoints {
		if i != at {
			eps = append(eps, ep)
		}
	}
	return eps, nil
}
