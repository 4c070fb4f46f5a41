package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
)

func sessions(ctx context.Context, e *env) (*concurrency.Session, *concurrency.Session, error) {
	s1, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	s2, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		s1.Close()
		return nil, nil, err
	}
	return s1, s2, nil
}

// waitKeys waits until `n` keys exist under `prefix` (a contender has queued).
func waitKeys(ctx context.Context, e *env, prefix string, n int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := e.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-ch
	for {
		get, err := e.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if get.Count >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%d keys under the lock: %v", get.Count, ctx.Err())
		}
	}
}

func mutexTwo(ctx context.Context, e *env) error {
	s1, s2, err := sessions(ctx, e)
	if err != nil {
		return err
	}
	defer s1.Close()
	defer s2.Close()
	lock := e.key("lock/")
	m1, m2 := concurrency.NewMutex(s1, lock), concurrency.NewMutex(s2, lock)
	if err := m1.Lock(ctx); err != nil {
		return err
	}
	acquired := make(chan error, 1)
	go func() { acquired <- m2.Lock(ctx) }()
	// Once the second contender's key is there, it must be waiting for the first's.
	if err := waitKeys(ctx, e, lock, 2); err != nil {
		return err
	}
	select {
	case err := <-acquired:
		return fmt.Errorf("second contender got the lock while the first held it (%v)", err)
	default:
	}
	if err := m1.Unlock(ctx); err != nil {
		return err
	}
	select {
	case err := <-acquired:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("second contender never got the lock: %v", ctx.Err())
	}
	owner, err := e.cli.Txn(ctx).If(m2.IsOwner()).Commit()
	if err != nil {
		return err
	}
	if err := m2.Unlock(ctx); err != nil {
		return err
	}
	left, err := e.cli.Get(ctx, lock, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	return first(expect("second is owner", owner.Succeeded, true), expect("keys left", left.Count, 0))
}

// Two sessions take the lock in turn; a holder that finds the other inside breaks exclusion.
func mutexContention(ctx context.Context, e *env) error {
	s1, s2, err := sessions(ctx, e)
	if err != nil {
		return err
	}
	defer s1.Close()
	defer s2.Close()
	lock := e.key("lock/")
	var inside, overlaps, entries int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range []*concurrency.Session{s1, s2} {
		m := concurrency.NewMutex(s, lock)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				if err := m.Lock(ctx); err != nil {
					errs <- err
					return
				}
				if atomic.AddInt64(&inside, 1) != 1 {
					atomic.AddInt64(&overlaps, 1)
				}
				atomic.AddInt64(&entries, 1)
				// A round trip inside the critical section gives the other a chance to enter.
				if _, err := e.cli.Put(ctx, e.key("counter"), fmt.Sprint(i)); err != nil {
					errs <- err
					return
				}
				atomic.AddInt64(&inside, -1)
				if err := m.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err, ok := <-errs; ok {
		return err
	}
	return first(expect("overlapping holders", overlaps, 0), expect("entries", entries, 30))
}

func election(ctx context.Context, e *env) error {
	s1, s2, err := sessions(ctx, e)
	if err != nil {
		return err
	}
	defer s1.Close()
	defer s2.Close()
	pfx := e.key("election/")
	e1, e2 := concurrency.NewElection(s1, pfx), concurrency.NewElection(s2, pfx)
	if err := e1.Campaign(ctx, "one"); err != nil {
		return err
	}
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	observed := e1.Observe(octx)
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "two") }()
	if err := waitKeys(ctx, e, pfx, 2); err != nil {
		return err
	}
	select {
	case err := <-won:
		return fmt.Errorf("second candidate won while the first leads (%v)", err)
	default:
	}
	leader, err := e2.Leader(ctx)
	if err != nil {
		return err
	}
	if err := expect("leader", string(leader.Kvs[0].Value), "one"); err != nil {
		return err
	}
	if err := e1.Resign(ctx); err != nil {
		return err
	}
	select {
	case err := <-won:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("no handover after resign: %v", ctx.Err())
	}
	leader, err = e1.Leader(ctx)
	if err != nil {
		return err
	}
	// The observer saw "one", then "two".
	var seen []string
	for len(seen) == 0 || seen[len(seen)-1] != "two" {
		select {
		case resp, ok := <-observed:
			if !ok {
				return fmt.Errorf("observer closed after %v", seen)
			}
			v := string(resp.Kvs[0].Value)
			if len(seen) == 0 || seen[len(seen)-1] != v {
				seen = append(seen, v)
			}
		case <-ctx.Done():
			return fmt.Errorf("observed %v: %v", seen, ctx.Err())
		}
	}
	return first(expect("leader after handover", string(leader.Kvs[0].Value), "two"),
		expect("observed", seen, []string{"one", "two"}),
		e2.Resign(ctx))
}
