//! Txn validation: duplicate keys (etcd's checkIntervals), op limits, empty keys and ops.

use crate::common::*;
use mvcc::{Config, Error, Store};
use proto::etcdserverpb::compare::CompareResult::*;
use proto::etcdserverpb::RequestOp;

#[test]
fn duplicate_keys_are_rejected() {
    let mut s = store();
    let dup = |s: &mut Store, ops: Vec<RequestOp>| txn(s, txn_req(vec![], ops, vec![])).err();
    assert_eq!(
        dup(&mut s, vec![op_put("a", "1"), op_put("a", "2")]),
        Some(Error::DuplicateKey)
    );
    assert_eq!(
        dup(&mut s, vec![op_put("b", "1"), op_del("a", "c")]),
        Some(Error::DuplicateKey)
    );
    assert_eq!(
        dup(&mut s, vec![op_del("b", ""), op_put("b", "1")]),
        Some(Error::DuplicateKey)
    );
    assert_eq!(
        dup(&mut s, vec![op_del("a", "\0"), op_put("z", "1")]),
        Some(Error::DuplicateKey)
    );
    let nested = txn_req(vec![], vec![op_put("a", "1")], vec![]);
    assert_eq!(
        dup(&mut s, vec![op_put("a", "2"), op_txn(nested.clone())]),
        Some(Error::DuplicateKey)
    );
    let nested_del = txn_req(vec![], vec![op_del("a", "b")], vec![]);
    assert_eq!(
        dup(&mut s, vec![op_put("a", "2"), op_txn(nested_del)]),
        Some(Error::DuplicateKey)
    );
    assert_eq!(
        dup(&mut s, vec![op_del("a", ""), op_txn(nested)]),
        Some(Error::DuplicateKey)
    );
    // Failure branch checked too, even when it would not run.
    let t = txn_req(vec![], vec![], vec![op_put("a", "1"), op_put("a", "1")]);
    assert_eq!(txn(&mut s, t).err(), Some(Error::DuplicateKey));
    assert_eq!(s.revision(), 1);
    // Allowed: two deletes overlapping, same key in then and else of one nested txn,
    // the same key in success and failure, puts of distinct keys.
    let ok = txn_req(vec![], vec![op_put("a", "1")], vec![op_put("a", "3")]);
    txn(&mut s, ok).expect("then/else");
    txn(
        &mut s,
        txn_req(vec![], vec![op_del("a", "c"), op_del("b", "d")], vec![]),
    )
    .expect("deletes");
    let both = txn_req(vec![], vec![op_put("k", "1")], vec![op_put("k", "2")]);
    txn(
        &mut s,
        txn_req(vec![], vec![op_txn(both), op_put("j", "1")], vec![]),
    )
    .expect("nested then/else");
    assert_eq!(get(&s, "k").map(|kv| value(&kv)), Some("1".into()));
}

#[test]
fn too_many_ops() {
    let mut s = Store::new(Config {
        max_txn_ops: 4,
        min_lease_ttl: 1,
    });
    let ops = |n: usize| {
        (0..n)
            .map(|i| op_put(&format!("k{i}"), "v"))
            .collect::<Vec<_>>()
    };
    txn(&mut s, txn_req(vec![], ops(4), vec![])).expect("at the limit");
    assert_eq!(
        txn(&mut s, txn_req(vec![], ops(5), vec![])).err(),
        Some(Error::TooManyOps)
    );
    assert_eq!(
        txn(&mut s, txn_req(vec![], vec![], ops(5))).err(),
        Some(Error::TooManyOps)
    );
    let cmps = (0..5).map(|_| version_is("a", Equal, 0)).collect();
    assert_eq!(
        txn(&mut s, txn_req(cmps, vec![], vec![])).err(),
        Some(Error::TooManyOps)
    );
    // A nested txn gets what the outer one leaves: 4 - 2 = 2.
    let nested = |n| op_txn(txn_req(vec![], ops(n), vec![]));
    txn(
        &mut s,
        txn_req(vec![], vec![nested(2), op_range("a", "")], vec![]),
    )
    .expect("nested at limit");
    let r = txn(
        &mut s,
        txn_req(vec![], vec![nested(3), op_range("a", "")], vec![]),
    );
    assert_eq!(r.err(), Some(Error::TooManyOps));
    assert_eq!(Config::default().max_txn_ops, 128);
    let mut d = store();
    let big = (0..129).map(|i| op_put(&format!("k{i}"), "v")).collect();
    assert_eq!(
        txn(&mut d, txn_req(vec![], big, vec![])).err(),
        Some(Error::TooManyOps)
    );
}

#[test]
fn empty_keys_and_empty_ops() {
    let mut s = store();
    for op in [op_put("", "v"), op_range("", "\0"), op_del("", "")] {
        assert_eq!(
            txn(&mut s, txn_req(vec![], vec![], vec![op])).err(),
            Some(Error::EmptyKey)
        );
    }
    let nested = op_txn(txn_req(vec![], vec![op_put("", "v")], vec![]));
    assert_eq!(
        txn(&mut s, txn_req(vec![], vec![nested], vec![])).err(),
        Some(Error::EmptyKey)
    );
    assert_eq!(
        txn(
            &mut s,
            txn_req(vec![version_is("", Equal, 0)], vec![], vec![])
        )
        .err(),
        Some(Error::EmptyKey)
    );
    let empty = RequestOp { request: None };
    assert_eq!(
        txn(&mut s, txn_req(vec![], vec![empty], vec![])).err(),
        Some(Error::KeyNotFound)
    );
}
