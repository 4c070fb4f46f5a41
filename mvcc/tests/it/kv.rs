//! Puts and deletes: revision counting, create/mod/version, put options, events, changes.

use crate::common::*;
use mvcc::{Change, Error, Response, Revision};
use proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use proto::mvccpb::event::EventType;
use proto::registrypb::internal_request::Request;
use proto::registrypb::InternalRequest;

#[test]
fn new_store_is_empty_at_revision_1() {
    let s = store();
    assert_eq!(s.revision(), 1);
    assert_eq!(s.compact_revision(), 0);
    let r = range(&s, "\0", "\0");
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 0);
    assert_eq!(r.header.map(|h| h.revision), Some(1));
}

#[test]
fn put_bumps_revision_and_tracks_create_mod_version() {
    let mut s = store();
    let a = put(&mut s, "a", "1");
    assert_eq!((a.revision, s.revision()), (2, 2));
    let Response::Put(p) = &a.response else {
        panic!()
    };
    assert_eq!(p.header.map(|h| h.revision), Some(2));
    put(&mut s, "b", "1");
    put(&mut s, "a", "2");
    let kv = get(&s, "a").expect("a");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, value(&kv)),
        (2, 4, 2, "2".into())
    );
    assert_eq!(s.revision(), 4);
}

#[test]
fn delete_resets_the_generation() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    let d = del(&mut s, "a", ""); // 4
    assert_eq!(d.revision, 4);
    assert!(get(&s, "a").is_none());
    put(&mut s, "a", "3"); // 5
    let kv = get(&s, "a").expect("a");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn deleting_nothing_does_not_bump_the_revision() {
    let mut s = store();
    put(&mut s, "a", "1");
    let d = del(&mut s, "zzz", "");
    assert_eq!((d.revision, s.revision()), (2, 2));
    assert!(d.events.is_empty() && d.changes.is_empty());
    let Response::DeleteRange(r) = &d.response else {
        panic!()
    };
    assert_eq!(r.deleted, 0);
    assert_eq!(r.header.map(|h| h.revision), Some(2));
    del(&mut s, "x", "y");
    del(&mut s, "b", "a"); // range_end before key: empty span, no panic
    assert_eq!(s.revision(), 2);
}

#[test]
fn delete_range_is_one_revision_with_sub_revisions_in_key_order() {
    let mut s = store();
    for k in ["a", "b", "c", "d"] {
        put(&mut s, k, k);
    }
    let d = del(&mut s, "b", "d");
    assert_eq!(d.revision, 6);
    let Response::DeleteRange(r) = &d.response else {
        panic!()
    };
    assert_eq!(r.deleted, 2);
    let prev: Vec<_> = r.prev_kvs.iter().map(value).collect();
    assert_eq!(prev, ["b", "c"]);
    let revs: Vec<Revision> = d
        .changes
        .iter()
        .map(|c| match c {
            Change::PutKey(k) => {
                assert!(k.tombstone);
                k.revision()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        revs,
        [Revision { main: 6, sub: 0 }, Revision { main: 6, sub: 1 }]
    );
    assert_eq!(keys(&range(&s, "\0", "\0")), ["a", "d"]);
    // Without prev_kv, no prev_kvs; from-key delete.
    let a = apply(
        &mut s,
        Request::DeleteRange(DeleteRangeRequest {
            key: "a".into(),
            range_end: vec![0],
            prev_kv: false,
        }),
    )
    .expect("delete");
    let Response::DeleteRange(r) = &a.response else {
        panic!()
    };
    assert_eq!((r.deleted, r.prev_kvs.len()), (2, 0));
    assert_eq!(s.revision(), 7);
}

#[test]
fn events_carry_prev_kv_and_delete_mod_revision() {
    let mut s = store();
    let a = put(&mut s, "k", "v1");
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.events[0].r#type, EventType::Put as i32);
    assert!(a.events[0].prev_kv.is_none());
    let a = put(&mut s, "k", "v2");
    let e = &a.events[0];
    assert_eq!(
        e.kv.as_ref().map(|kv| (kv.version, kv.mod_revision)),
        Some((2, 3))
    );
    assert_eq!(e.prev_kv.as_ref().map(value), Some("v1".into()));
    let d = del(&mut s, "k", "");
    let e = &d.events[0];
    assert_eq!(e.r#type, EventType::Delete as i32);
    let kv = e.kv.as_ref().expect("kv");
    assert_eq!(
        (
            kv.key.as_slice(),
            kv.mod_revision,
            kv.version,
            kv.create_revision
        ),
        (&b"k"[..], 4, 0, 0)
    );
    assert!(kv.value.is_empty());
    assert_eq!(
        e.prev_kv.as_ref().map(|p| (value(p), p.version)),
        Some(("v2".into(), 2))
    );
}

#[test]
fn put_prev_kv() {
    let mut s = store();
    let mut p = put_req("k", "1");
    p.prev_kv = true;
    let a = apply(&mut s, Request::Put(p.clone())).expect("put");
    let Response::Put(r) = &a.response else {
        panic!()
    };
    assert!(r.prev_kv.is_none());
    p.value = "2".into();
    let a = apply(&mut s, Request::Put(p)).expect("put");
    let Response::Put(r) = &a.response else {
        panic!()
    };
    assert_eq!(
        r.prev_kv.as_ref().map(|kv| (value(kv), kv.mod_revision)),
        Some(("1".into(), 2))
    );
    let a = put(&mut s, "k", "3");
    let Response::Put(r) = &a.response else {
        panic!()
    };
    assert!(r.prev_kv.is_none(), "not asked for");
}

#[test]
fn ignore_value_and_ignore_lease() {
    let mut s = store();
    let (id, _) = grant(&mut s, 10, 7, 100).expect("grant");
    put_lease(&mut s, "k", "orig", id).expect("put");
    let ignore_value = PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    };
    apply(&mut s, Request::Put(ignore_value.clone())).expect("put");
    let kv = get(&s, "k").expect("k");
    assert_eq!((value(&kv), kv.lease, kv.version), ("orig".into(), 0, 2));
    assert!(
        s.lease(id).expect("lease").keys.is_empty(),
        "lease 0 detaches"
    );

    put_lease(&mut s, "k", "x", id).expect("put");
    let ignore_lease = PutRequest {
        key: "k".into(),
        value: "new".into(),
        ignore_lease: true,
        ..Default::default()
    };
    apply(&mut s, Request::Put(ignore_lease.clone())).expect("put");
    let kv = get(&s, "k").expect("k");
    assert_eq!((value(&kv), kv.lease), ("new".into(), id));
    assert!(s.lease(id).expect("lease").keys.contains(&b"k"[..]));

    let rev = s.revision();
    for mut p in [ignore_value, ignore_lease] {
        p.key = "absent".into();
        assert_eq!(
            apply(&mut s, Request::Put(p)).err(),
            Some(Error::KeyNotFound)
        );
    }
    del(&mut s, "k", "");
    let p = PutRequest {
        key: "k".into(),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(
        apply(&mut s, Request::Put(p)).err(),
        Some(Error::KeyNotFound)
    );
    assert_eq!(s.revision(), rev + 1);
}

#[test]
fn put_with_unknown_lease_fails_and_changes_nothing() {
    let mut s = store();
    assert_eq!(
        put_lease(&mut s, "k", "v", 42).err(),
        Some(Error::LeaseNotFound)
    );
    // The lease is checked before ignore_value's key check (etcd's order for plain puts).
    let p = PutRequest {
        key: "k".into(),
        lease: 42,
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(
        apply(&mut s, Request::Put(p)).err(),
        Some(Error::LeaseNotFound)
    );
    assert_eq!(s.revision(), 1);
    assert!(get(&s, "k").is_none());
}

#[test]
fn empty_keys_and_empty_requests_are_rejected() {
    let mut s = store();
    assert_eq!(
        apply(&mut s, Request::Put(put_req("", "v"))).err(),
        Some(Error::EmptyKey)
    );
    assert_eq!(
        apply(&mut s, Request::DeleteRange(del_req("", "\0"))).err(),
        Some(Error::EmptyKey)
    );
    assert_eq!(
        s.range(&RangeRequest::default()).err(),
        Some(Error::EmptyKey)
    );
    assert_eq!(
        s.apply(3, &InternalRequest { request: None }).err(),
        Some(Error::KeyNotFound)
    );
    assert_eq!(s.revision(), 1);
}

#[test]
fn changes_describe_the_written_records() {
    let mut s = store();
    let a = put(&mut s, "k", "v");
    assert_eq!(a.changes.len(), 1);
    let Change::PutKey(rec) = &a.changes[0] else {
        panic!()
    };
    assert_eq!((rec.main, rec.sub, rec.tombstone), (2, 0, false));
    let kv = rec.kv.as_ref().expect("kv");
    assert_eq!(
        (kv.key.as_slice(), value(kv), kv.version),
        (&b"k"[..], "v".into(), 1)
    );
    assert_eq!(rec.storage_key()[..8], 2i64.to_be_bytes());
}

#[test]
fn error_texts_are_etcds() {
    assert_eq!(
        Error::EmptyKey.to_string(),
        "etcdserver: key is not provided"
    );
    assert_eq!(Error::KeyNotFound.to_string(), "etcdserver: key not found");
    assert_eq!(
        Error::TooManyOps.to_string(),
        "etcdserver: too many operations in txn request"
    );
    assert_eq!(
        Error::DuplicateKey.to_string(),
        "etcdserver: duplicate key given in txn request"
    );
    assert_eq!(
        Error::Compacted.to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        Error::FutureRev.to_string(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        Error::LeaseNotFound.to_string(),
        "etcdserver: requested lease not found"
    );
    assert_eq!(
        Error::LeaseExists.to_string(),
        "etcdserver: lease already exists"
    );
    assert_eq!(
        Error::LeaseTTLTooLarge.to_string(),
        "etcdserver: too large lease TTL"
    );
}
