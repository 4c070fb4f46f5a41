//! Transactions: revisions, compares, branch execution, validation errors.

use crate::common::*;
use mvcc::{Change, Error, Store};
use proto::etcdserverpb::compare::{CompareResult::*, CompareTarget, TargetUnion};
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::response_op::Response as R;
use proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp};

#[test]
fn read_only_and_no_op_txns_do_not_bump() {
    let mut s = store();
    put(&mut s, "a", "1");
    let (t, a) = txn(&mut s, txn_req(vec![], vec![op_range("a", "")], vec![])).expect("txn");
    assert!(t.succeeded);
    assert_eq!((a.revision, t.header.map(|h| h.revision)), (2, Some(2)));
    let (_, a) = txn(
        &mut s,
        txn_req(
            vec![version_is("a", Equal, 5)],
            vec![op_put("x", "")],
            vec![],
        ),
    )
    .expect("txn");
    assert_eq!(
        (a.revision, a.events.len()),
        (2, 0),
        "failed compare, empty failure branch"
    );
    let (_, a) = txn(&mut s, txn_req(vec![], vec![op_del("nope", "")], vec![])).expect("txn");
    assert_eq!(a.revision, 2, "delete of nothing");
    assert_eq!(s.revision(), 2);
}

#[test]
fn all_writes_share_one_revision_in_order() {
    let mut s = store();
    put(&mut s, "d", "0"); // 2
    let ops = vec![
        op_put("a", "1"),
        op_put("b", "2"),
        op_del("d", ""),
        op_put("c", "3"),
    ];
    let (t, a) = txn(&mut s, txn_req(vec![], ops, vec![])).expect("txn");
    assert_eq!((s.revision(), t.header.map(|h| h.revision)), (3, Some(3)));
    let revs: Vec<(i64, i64)> = a
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::PutKey(r) => Some((r.main, r.sub)),
            _ => None,
        })
        .collect();
    assert_eq!(revs, [(3, 0), (3, 1), (3, 2), (3, 3)]);
    let keys: Vec<_> = a
        .events
        .iter()
        .filter_map(|e| e.kv.as_ref())
        .map(|kv| kv.key.clone())
        .collect();
    assert_eq!(
        keys,
        [b"a".to_vec(), b"b".to_vec(), b"d".to_vec(), b"c".to_vec()]
    );
    assert_eq!(t.responses.len(), 4);
}

#[test]
fn ranges_in_a_txn_see_earlier_writes() {
    let mut s = store();
    put(&mut s, "a", "old"); // 2
    let ops = vec![op_range("a", ""), op_put("a", "new"), op_range("a", "")];
    let (t, _) = txn(&mut s, txn_req(vec![], ops, vec![])).expect("txn");
    let ranges: Vec<_> = t
        .responses
        .iter()
        .filter_map(|r| match &r.response {
            Some(R::ResponseRange(r)) => Some((value(&r.kvs[0]), r.header.map(|h| h.revision))),
            _ => None,
        })
        .collect();
    assert_eq!(ranges, [("old".into(), Some(2)), ("new".into(), Some(3))]);
}

#[test]
fn compares_on_existing_keys() {
    let mut s = store();
    let (lease, _) = grant(&mut s, 5, 77, 60).expect("grant");
    put(&mut s, "k", "v"); // 2
    put_lease(&mut s, "k", "v2", lease).expect("put"); // 3
    let check = |s: &mut Store, c: Compare| {
        txn(s, txn_req(vec![c], vec![], vec![]))
            .expect("txn")
            .0
            .succeeded
    };
    use CompareTarget::*;
    assert!(check(&mut s, version_is("k", Equal, 2)));
    assert!(check(&mut s, version_is("k", Greater, 1)));
    assert!(check(&mut s, version_is("k", Less, 3)));
    assert!(check(&mut s, version_is("k", NotEqual, 1)));
    assert!(!check(&mut s, version_is("k", Less, 2)));
    assert!(check(
        &mut s,
        cmp("k", "", Create, Equal, TargetUnion::CreateRevision(2))
    ));
    assert!(check(
        &mut s,
        cmp("k", "", Mod, Equal, TargetUnion::ModRevision(3))
    ));
    assert!(check(
        &mut s,
        cmp("k", "", Lease, Equal, TargetUnion::Lease(lease))
    ));
    assert!(check(&mut s, value_is("k", Equal, "v2")));
    assert!(check(&mut s, value_is("k", Greater, "v1")));
    assert!(check(&mut s, value_is("k", Less, "v3")));
    // Mismatched target_union: the wanted value counts as 0.
    assert!(check(
        &mut s,
        cmp("k", "", Mod, Greater, TargetUnion::Version(100))
    ));
    // Unknown target compares equal; unknown result holds.
    let mut c = version_is("k", Equal, 99);
    c.target = 42;
    assert!(check(&mut s, c.clone()));
    c.target = CompareTarget::Version as i32;
    c.result = -3;
    assert!(check(&mut s, c));
}

#[test]
fn compares_on_missing_keys() {
    let mut s = store();
    let check = |s: &mut Store, c: Compare| {
        txn(s, txn_req(vec![c], vec![], vec![]))
            .expect("txn")
            .0
            .succeeded
    };
    use CompareTarget::*;
    assert!(check(&mut s, version_is("nope", Equal, 0)));
    assert!(check(
        &mut s,
        cmp("nope", "", Create, Equal, TargetUnion::CreateRevision(0))
    ));
    assert!(check(
        &mut s,
        cmp("nope", "", Mod, Less, TargetUnion::ModRevision(1))
    ));
    assert!(check(
        &mut s,
        cmp("nope", "", Lease, Equal, TargetUnion::Lease(0))
    ));
    assert!(!check(&mut s, value_is("nope", Equal, "")));
    assert!(
        !check(&mut s, value_is("nope", NotEqual, "x")),
        "VALUE on a missing key fails"
    );
    put(&mut s, "k", "v");
    del(&mut s, "k", "");
    assert!(
        check(&mut s, version_is("k", Equal, 0)),
        "deleted = missing"
    );
}

#[test]
fn range_compares_need_every_key() {
    let mut s = store();
    put(&mut s, "p/a", "1");
    put(&mut s, "p/b", "1");
    put(&mut s, "p/b", "2");
    let check = |s: &mut Store, c: Compare| {
        txn(s, txn_req(vec![c], vec![], vec![]))
            .expect("txn")
            .0
            .succeeded
    };
    let mut c = version_is("p/", Greater, 0);
    c.range_end = "p0".into();
    assert!(check(&mut s, c.clone()));
    c.result = Equal as i32;
    c.target_union = Some(TargetUnion::Version(1));
    assert!(!check(&mut s, c.clone()), "p/b has version 2");
    c.key = "q/".into();
    c.range_end = "q0".into();
    c.target_union = Some(TargetUnion::Version(0));
    assert!(check(&mut s, c), "empty range compares as a zero kv");
    let mut v = value_is("q/", NotEqual, "x");
    v.range_end = "q0".into();
    assert!(!check(&mut s, v));
    let mut all = version_is("\0", Greater, 0);
    all.range_end = vec![0];
    assert!(check(&mut s, all));
}

#[test]
fn failure_branch_and_nested_txns() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
                           // Nested compares are evaluated before the txn runs: a still has version 1 then.
    let inner = txn_req(
        vec![version_is("a", Equal, 1)],
        vec![op_put("b", "inner-ok")],
        vec![op_put("b", "inner-else")],
    );
    let outer = txn_req(
        vec![version_is("a", Equal, 9)],
        vec![op_put("x", "wrong")],
        vec![op_put("a", "2"), op_txn(inner)],
    );
    let (t, a) = txn(&mut s, outer).expect("txn");
    assert!(!t.succeeded);
    assert!(get(&s, "x").is_none());
    assert_eq!(get(&s, "b").map(|kv| value(&kv)), Some("inner-ok".into()));
    assert_eq!(get(&s, "a").map(|kv| kv.version), Some(2));
    assert_eq!(a.revision, 3);
    let Some(R::ResponseTxn(nested)) = &t.responses[1].response else {
        panic!()
    };
    assert!(nested.succeeded);
    assert_eq!(nested.responses.len(), 1);
}

#[test]
fn branch_checks_only_apply_to_the_taken_branch() {
    let mut s = store();
    put(&mut s, "a", "1");
    let leased = RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: "x".into(),
            lease: 999,
            ..Default::default()
        })),
    };
    let t = txn_req(vec![], vec![op_put("y", "1")], vec![leased.clone()]);
    txn(&mut s, t).expect("failure branch not taken");
    let t = txn_req(vec![], vec![op_put("z", "1"), leased], vec![]);
    assert_eq!(txn(&mut s, t).err(), Some(Error::LeaseNotFound));
    assert!(get(&s, "z").is_none(), "failed txn changes nothing");
    let ignore = RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: "absent".into(),
            ignore_value: true,
            ..Default::default()
        })),
    };
    let t = txn_req(vec![], vec![op_put("w", "1"), ignore], vec![]);
    assert_eq!(txn(&mut s, t).err(), Some(Error::KeyNotFound));
    let ranged = |rev| RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: "a".into(),
            revision: rev,
            ..Default::default()
        })),
    };
    let rev = s.revision();
    let t = txn_req(vec![], vec![op_put("w", "1"), ranged(rev + 1)], vec![]);
    assert_eq!(txn(&mut s, t).err(), Some(Error::FutureRev));
    put(&mut s, "a", "2");
    let now = s.revision();
    compact(&mut s, now).expect("compact");
    let t = txn_req(vec![], vec![ranged(2)], vec![]);
    assert_eq!(txn(&mut s, t).err(), Some(Error::Compacted));
    assert!(get(&s, "w").is_none());
    let (t, _) = txn(&mut s, txn_req(vec![], vec![ranged(now)], vec![])).expect("txn");
    let Some(R::ResponseRange(r)) = &t.responses[0].response else {
        panic!()
    };
    assert_eq!(r.kvs.len(), 1);
}
