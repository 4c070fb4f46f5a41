//! The lease table: grants, revokes (single and batch), key attachment, checkpoints.

use crate::common::*;
use mvcc::{Change, Config, Error, Response, Store, MAX_LEASE_TTL};
use proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, PutRequest};
use proto::mvccpb::event::EventType;
use proto::registrypb::internal_request::Request;

fn lease_keys(s: &Store, id: i64) -> Vec<String> {
    s.lease(id)
        .expect("lease")
        .keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn grant_with_id_zero_picks_a_deterministic_positive_id() {
    let mut s1 = store();
    let mut s2 = store();
    let (a, ttl) = grant(&mut s1, 42, 0, 10).expect("grant");
    let (b, _) = grant(&mut s2, 42, 0, 10).expect("grant");
    assert!(a > 0);
    assert_eq!(
        (a, ttl),
        (b, 10),
        "same log index, same id on every replica"
    );
    let (c, _) = grant(&mut s1, 43, 0, 10).expect("grant");
    assert!(c > 0 && c != a);
    // Even if a client took the id the index maps to, a free one is found.
    let mut s3 = store();
    grant(&mut s3, 1, a, 10).expect("explicit id");
    let (d, _) = grant(&mut s3, 42, 0, 10).expect("grant");
    assert!(d > 0 && d != a);
    assert_eq!(s1.revision(), 1, "grants do not bump the revision");
}

#[test]
fn grant_errors_and_minimum_ttl() {
    let mut s = Store::new(Config {
        max_txn_ops: 128,
        min_lease_ttl: 5,
    });
    assert_eq!(grant(&mut s, 1, 7, 1).expect("grant"), (7, 5));
    assert_eq!(grant(&mut s, 2, 7, 100), Err(Error::LeaseExists));
    assert_eq!(
        grant(&mut s, 3, 8, MAX_LEASE_TTL + 1),
        Err(Error::LeaseTTLTooLarge)
    );
    assert_eq!(grant(&mut s, 3, 8, MAX_LEASE_TTL), Ok((8, MAX_LEASE_TTL)));
    assert_eq!(grant(&mut s, 4, 9, -100), Ok((9, 5)));
    let l = s.lease(7).expect("lease");
    assert_eq!((l.id, l.ttl, l.remaining_ttl), (7, 5, 0));
    let ids: Vec<i64> = s.leases().map(|l| l.id).collect();
    assert_eq!(ids, [7, 8, 9]);
}

#[test]
fn keys_follow_their_lease() {
    let mut s = store();
    grant(&mut s, 1, 1, 60).expect("grant");
    grant(&mut s, 2, 2, 60).expect("grant");
    put_lease(&mut s, "a", "v", 1).expect("put");
    put_lease(&mut s, "b", "v", 1).expect("put");
    assert_eq!(lease_keys(&s, 1), ["a", "b"]);
    put_lease(&mut s, "a", "v", 2).expect("move to lease 2");
    assert_eq!(
        (lease_keys(&s, 1), lease_keys(&s, 2)),
        (vec!["b".into()], vec!["a".into()])
    );
    put(&mut s, "a", "no lease");
    assert!(lease_keys(&s, 2).is_empty());
    del(&mut s, "b", "");
    assert!(lease_keys(&s, 1).is_empty());
}

#[test]
fn revoke_deletes_the_keys_in_one_revision() {
    let mut s = store();
    grant(&mut s, 1, 5, 60).expect("grant");
    for k in ["c", "a", "b"] {
        put_lease(&mut s, k, k, 5).expect("put");
    }
    put(&mut s, "other", "x"); // 5
    let a = revoke(&mut s, 5).expect("revoke");
    assert_eq!((a.revision, s.revision()), (6, 6));
    let Response::LeaseRevoke(r) = &a.response else {
        panic!()
    };
    assert_eq!(r.header.map(|h| h.revision), Some(6));
    let deleted: Vec<_> = a
        .events
        .iter()
        .map(|e| {
            assert_eq!(e.r#type, EventType::Delete as i32);
            let kv = e.kv.as_ref().expect("kv");
            assert_eq!(kv.mod_revision, 6);
            String::from_utf8_lossy(&kv.key).into_owned()
        })
        .collect();
    assert_eq!(deleted, ["a", "b", "c"]);
    assert!(a.changes.contains(&Change::RemoveLease(5)));
    assert!(s.lease(5).is_none());
    assert_eq!(keys(&range(&s, "\0", "\0")), ["other"]);
    assert_eq!(revoke(&mut s, 5).err(), Some(Error::LeaseNotFound));
    assert_eq!(s.revision(), 6);
}

#[test]
fn revoking_a_lease_without_keys_does_not_bump() {
    let mut s = store();
    grant(&mut s, 1, 5, 60).expect("grant");
    let a = revoke(&mut s, 5).expect("revoke");
    assert_eq!((a.revision, a.events.len()), (1, 0));
    assert!(s.lease(5).is_none());
}

#[test]
fn batch_revoke_is_one_revision_and_skips_unknown_ids() {
    let mut s = store();
    for id in [1, 2, 3] {
        grant(&mut s, id as u64, id, 60).expect("grant");
    }
    put_lease(&mut s, "x1", "v", 1).expect("put");
    put_lease(&mut s, "x2", "v", 2).expect("put");
    put_lease(&mut s, "y2", "v", 2).expect("put"); // 4
    let a = revoke_batch(&mut s, vec![2, 99, 1, 2]);
    assert_eq!(a.revision, 5);
    let Response::LeaseRevokeBatch { revoked } = &a.response else {
        panic!()
    };
    assert_eq!(revoked, &[2, 1]);
    let subs: Vec<_> = a
        .events
        .iter()
        .filter_map(|e| e.kv.as_ref())
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            )
        })
        .collect();
    assert_eq!(subs, [("x2".into(), 5), ("y2".into(), 5), ("x1".into(), 5)]);
    assert!(range(&s, "\0", "\0").kvs.is_empty());
    assert_eq!(s.leases().map(|l| l.id).collect::<Vec<_>>(), [3]);
    let a = revoke_batch(&mut s, vec![42, 3]);
    assert_eq!(a.revision, 5, "no keys deleted, no revision");
    assert!(s.leases().next().is_none());
}

#[test]
fn checkpoints_record_remaining_ttl() {
    let mut s = store();
    grant(&mut s, 1, 1, 60).expect("grant");
    let cp = LeaseCheckpointRequest {
        checkpoints: vec![
            LeaseCheckpoint {
                id: 1,
                remaining_ttl: 17,
            },
            LeaseCheckpoint {
                id: 404,
                remaining_ttl: 3,
            },
        ],
    };
    let a = apply(&mut s, Request::LeaseCheckpoint(cp)).expect("checkpoint");
    assert_eq!(a.revision, 1);
    assert_eq!(s.lease(1).map(|l| l.remaining_ttl), Some(17));
    assert!(s.lease(404).is_none());
    assert_eq!(a.changes.len(), 1);
}

#[test]
fn ignore_lease_keeps_attachment_and_txn_puts_attach() {
    let mut s = store();
    grant(&mut s, 1, 1, 60).expect("grant");
    put_lease(&mut s, "a", "v", 1).expect("put");
    let p = PutRequest {
        key: "a".into(),
        value: "w".into(),
        ignore_lease: true,
        ..Default::default()
    };
    apply(&mut s, Request::Put(p)).expect("put");
    assert_eq!(lease_keys(&s, 1), ["a"]);
    let mut op = op_put("t", "v");
    if let Some(proto::etcdserverpb::request_op::Request::RequestPut(p)) = &mut op.request {
        p.lease = 1;
    }
    txn(&mut s, txn_req(vec![], vec![op, op_del("a", "")], vec![])).expect("txn");
    assert_eq!(lease_keys(&s, 1), ["t"]);
}
