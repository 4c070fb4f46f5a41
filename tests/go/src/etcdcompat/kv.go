package main

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/clientv3"
)

func kvPutGet(ctx context.Context, e *env) error {
	k := e.key("k")
	put, err := e.cli.Put(ctx, k, "v1")
	if err != nil {
		return err
	}
	if _, err := e.cli.Put(ctx, k, "v2"); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, k)
	if err != nil {
		return err
	}
	if len(get.Kvs) != 1 {
		return fmt.Errorf("get: %d kvs", len(get.Kvs))
	}
	kv := get.Kvs[0]
	// The value as of the first put's revision is still readable.
	old, err := e.cli.Get(ctx, k, clientv3.WithRev(put.Header.Revision))
	if err != nil {
		return err
	}
	if len(old.Kvs) != 1 {
		return fmt.Errorf("get at revision %d: %d kvs", put.Header.Revision, len(old.Kvs))
	}
	missing, err := e.cli.Get(ctx, e.key("missing"))
	if err != nil {
		return err
	}
	return first(
		expect("value", string(kv.Value), "v2"),
		expect("version", kv.Version, 2),
		expect("create revision", kv.CreateRevision, put.Header.Revision),
		expect("old value", string(old.Kvs[0].Value), "v1"),
		expect("missing key count", missing.Count, 0),
	)
}

func kvRangePrefix(ctx context.Context, e *env) error {
	for _, s := range []string{"p/c", "p/a", "p/b", "q"} {
		if _, err := e.cli.Put(ctx, e.key(s), "x"+s); err != nil {
			return err
		}
	}
	all, err := e.cli.Get(ctx, e.key("p/"), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	var keys []string
	for _, kv := range all.Kvs {
		keys = append(keys, string(kv.Key[len(e.prefix):]))
	}
	limited, err := e.cli.Get(ctx, e.key("p/"), clientv3.WithPrefix(), clientv3.WithLimit(2))
	if err != nil {
		return err
	}
	count, err := e.cli.Get(ctx, e.key("p/"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	desc, err := e.cli.Get(ctx, e.key("p/"), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	ranged, err := e.cli.Get(ctx, e.key("p/a"), clientv3.WithRange(e.key("p/c")))
	if err != nil {
		return err
	}
	return first(
		expect("prefix keys", keys, []string{"p/a", "p/b", "p/c"}),
		expect("limit kvs", len(limited.Kvs), 2),
		expect("limit more", limited.More, true),
		expect("limit count", limited.Count, 3),
		expect("count only", count.Count, 3),
		expect("count only kvs", len(count.Kvs), 0),
		expect("descending first", string(desc.Kvs[0].Key[len(e.prefix):]), "p/c"),
		expect("keys only value", len(desc.Kvs[0].Value), 0),
		expect("range [p/a, p/c)", ranged.Count, 2),
	)
}

func kvDelete(ctx context.Context, e *env) error {
	for _, s := range []string{"d/a", "d/b", "d/c"} {
		if _, err := e.cli.Put(ctx, e.key(s), "v"); err != nil {
			return err
		}
	}
	one, err := e.cli.Delete(ctx, e.key("d/a"))
	if err != nil {
		return err
	}
	rest, err := e.cli.Delete(ctx, e.key("d/"), clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil {
		return err
	}
	none, err := e.cli.Delete(ctx, e.key("d/"), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	left, err := e.cli.Get(ctx, e.key("d/"), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	return first(
		expect("deleted one", one.Deleted, 1),
		expect("deleted prefix", rest.Deleted, 2),
		expect("prev kvs", len(rest.PrevKvs), 2),
		expect("deleted again", none.Deleted, 0),
		expect("left", left.Count, 0),
	)
}

// Every transaction here has an operation in a branch: etcd 3.4 serves a transaction whose
// branches are empty as a serializable read (isTxnSerializable holds for no ops), from the
// answering member's applied state, so a compare-only transaction on a follower may see a
// write the client already had answered as not there yet.

func txnValue(ctx context.Context, e *env) error {
	k := e.key("t")
	if _, err := e.cli.Put(ctx, k, "v1"); err != nil {
		return err
	}
	swap := func() (*clientv3.TxnResponse, error) {
		return e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(k), "=", "v1")).
			Then(clientv3.OpPut(k, "v2")).
			Else(clientv3.OpGet(k)).
			Commit()
	}
	yes, err := swap()
	if err != nil {
		return err
	}
	no, err := swap()
	if err != nil {
		return err
	}
	if len(no.Responses) != 1 || no.Responses[0].GetResponseRange() == nil {
		return fmt.Errorf("else branch: %v", no.Responses)
	}
	got := no.Responses[0].GetResponseRange().Kvs
	greater, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), ">", "v1")).Then(clientv3.OpGet(k)).Commit()
	if err != nil {
		return err
	}
	return first(
		expect("first swap", yes.Succeeded, true),
		expect("second swap", no.Succeeded, false),
		expect("else get", len(got), 1),
		expect("else value", string(got[0].Value), "v2"),
		expect("value > v1", greater.Succeeded, true),
	)
}

func txnVersion(ctx context.Context, e *env) error {
	k := e.key("t")
	for _, v := range []string{"a", "b"} {
		if _, err := e.cli.Put(ctx, k, v); err != nil {
			return err
		}
	}
	two, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(k), "=", 2)).
		Then(clientv3.OpPut(k, "c"), clientv3.OpGet(k)).Commit()
	if err != nil {
		return err
	}
	stale, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(k), "=", 2)).Then(clientv3.OpGet(k)).Commit()
	if err != nil {
		return err
	}
	absent, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(e.key("none")), "=", 0)).Then(clientv3.OpGet(k)).Commit()
	if err != nil {
		return err
	}
	if len(two.Responses) != 2 {
		return fmt.Errorf("then responses: %d", len(two.Responses))
	}
	kvs := two.Responses[1].GetResponseRange().Kvs
	return first(
		expect("version 2", two.Succeeded, true),
		expect("then get value", string(kvs[0].Value), "c"),
		expect("then get version", kvs[0].Version, 3),
		expect("stale version", stale.Succeeded, false),
		expect("absent key version 0", absent.Succeeded, true),
	)
}

func txnCreateRevision(ctx context.Context, e *env) error {
	k := e.key("c")
	created, err := e.cli.Put(ctx, k, "a")
	if err != nil {
		return err
	}
	rev := created.Header.Revision
	modified, err := e.cli.Put(ctx, k, "b")
	if err != nil {
		return err
	}
	// The concurrency package's own idiom: create only if absent.
	create := func(key string) (*clientv3.TxnResponse, error) {
		return e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, "new")).Else(clientv3.OpGet(key)).Commit()
	}
	exists, err := create(k)
	if err != nil {
		return err
	}
	fresh, err := create(e.key("fresh"))
	if err != nil {
		return err
	}
	same, err := e.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(k), "=", rev),
		clientv3.Compare(clientv3.ModRevision(k), "=", modified.Header.Revision),
	).Then(clientv3.OpGet(k)).Commit()
	if err != nil {
		return err
	}
	older, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "<", rev)).Then(clientv3.OpGet(k)).Commit()
	if err != nil {
		return err
	}
	return first(
		expect("create on existing key", exists.Succeeded, false),
		expect("else create revision", exists.Responses[0].GetResponseRange().Kvs[0].CreateRevision, rev),
		expect("create on absent key", fresh.Succeeded, true),
		expect("create and mod revision", same.Succeeded, true),
		expect("create revision < own", older.Succeeded, false),
	)
}
