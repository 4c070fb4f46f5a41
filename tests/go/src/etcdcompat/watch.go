package main

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/mvcc/mvccpb"
)

// A watch event as "PUT key=value (prev value)".
func describe(prefix string, ev *clientv3.Event) string {
	prev := "-"
	if ev.PrevKv != nil {
		prev = string(ev.PrevKv.Value)
	}
	kind := "PUT"
	if ev.Type == mvccpb.DELETE {
		kind = "DELETE"
	}
	return fmt.Sprintf("%s %s=%s (%s)", kind, ev.Kv.Key[len(prefix):], ev.Kv.Value, prev)
}

// collect reads `n` events from `ch`, within the context.
func collect(ctx context.Context, ch clientv3.WatchChan, prefix string, n int) ([]string, error) {
	var got []string
	for len(got) < n {
		select {
		case resp, ok := <-ch:
			if !ok {
				return got, fmt.Errorf("watch closed after %v", got)
			}
			if err := resp.Err(); err != nil {
				return got, err
			}
			for _, ev := range resp.Events {
				got = append(got, describe(prefix, ev))
			}
		case <-ctx.Done():
			return got, fmt.Errorf("events so far %v: %v", got, ctx.Err())
		}
	}
	return got, nil
}

func watchFromRevision(ctx context.Context, e *env) error {
	first, err := e.cli.Put(ctx, e.key("w/a"), "1")
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { _, err := e.cli.Put(ctx, e.key("w/a"), "2"); return err },
		func() error { _, err := e.cli.Put(ctx, e.key("other"), "x"); return err },
		func() error { _, err := e.cli.Put(ctx, e.key("w/b"), "3"); return err },
		func() error { _, err := e.cli.Delete(ctx, e.key("w/a")); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := e.cli.Watch(wctx, e.key("w/"), clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision), clientv3.WithPrevKV())
	got, err := collect(ctx, ch, e.prefix, 4)
	if err != nil {
		return err
	}
	// The deleted key's event carries its key only; its last value is in prev_kv.
	return expect("events", got, []string{"PUT w/a=1 (-)", "PUT w/a=2 (1)", "PUT w/b=3 (-)", "DELETE w/a= (2)"})
}

func watchLiveCancel(ctx context.Context, e *env) error {
	wctx, cancel := context.WithCancel(ctx)
	ch := e.cli.Watch(wctx, e.key("live"), clientv3.WithCreatedNotify())
	select {
	case resp, ok := <-ch:
		if !ok || !resp.Created {
			cancel()
			return fmt.Errorf("first answer is not the creation: %v %v", ok, resp)
		}
	case <-ctx.Done():
		cancel()
		return fmt.Errorf("watch not created: %v", ctx.Err())
	}
	now, err := e.cli.Put(ctx, e.key("live"), "now")
	if err != nil {
		cancel()
		return err
	}
	got, err := collect(ctx, ch, e.prefix, 1)
	if err != nil {
		cancel()
		return err
	}
	if err := expect("live event", got, []string{"PUT live=now (-)"}); err != nil {
		cancel()
		return err
	}
	// Cancelling the watch closes its channel; a new watch on the same client still works.
	cancel()
	for closed := false; !closed; {
		select {
		case _, ok := <-ch:
			closed = !ok
		case <-ctx.Done():
			return fmt.Errorf("watch channel not closed after cancel: %v", ctx.Err())
		}
	}
	// From the revision after "now": a watch without a revision starts at the answering
	// member's own current revision, which on a follower may still be before "now".
	again := e.cli.Watch(ctx, e.key("live"), clientv3.WithRev(now.Header.Revision+1), clientv3.WithCreatedNotify())
	if resp, ok := <-again; !ok || !resp.Created {
		return fmt.Errorf("second watch not created: %v", resp.Err())
	}
	if _, err := e.cli.Put(ctx, e.key("live"), "later"); err != nil {
		return err
	}
	got, err = collect(ctx, again, e.prefix, 1)
	if err != nil {
		return err
	}
	return expect("event after a cancel", got, []string{"PUT live=later (-)"})
}
