//! Range reads: key spans, limit/more/count, keys_only/count_only, sorting, filters,
//! historical revisions and hostile option values.

use crate::common::*;
use mvcc::{Error, Store};
use proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use proto::etcdserverpb::RangeRequest;

/// a..e with values so that each sort target orders differently.
fn sample() -> Store {
    let mut s = store();
    put(&mut s, "c", "3"); // 2
    put(&mut s, "a", "5"); // 3
    put(&mut s, "e", "1"); // 4
    put(&mut s, "b", "4"); // 5
    put(&mut s, "d", "2"); // 6
    put(&mut s, "a", "9"); // 7: a version 2
    put(&mut s, "a", "0"); // 8: a version 3
    put(&mut s, "d", "2"); // 9: d version 2
    s
}

fn sorted(s: &Store, order: SortOrder, target: SortTarget, limit: i64) -> (Vec<String>, bool, i64) {
    let mut r = rr("\0", "\0");
    r.sort_order = order as i32;
    r.sort_target = target as i32;
    r.limit = limit;
    let resp = s.range(&r).expect("range");
    (keys(&resp), resp.more, resp.count)
}

#[test]
fn key_spans() {
    let mut s = sample();
    put(&mut s, "ab", "x");
    assert_eq!(keys(&range(&s, "a", "")), ["a"]);
    assert_eq!(keys(&range(&s, "a", "b")), ["a", "ab"]);
    assert_eq!(keys(&range(&s, "a", "c")), ["a", "ab", "b"]);
    assert_eq!(keys(&range(&s, "c", "\0")), ["c", "d", "e"]);
    assert_eq!(
        keys(&range(&s, "\0", "\0")),
        ["a", "ab", "b", "c", "d", "e"]
    );
    assert!(range(&s, "d", "b").kvs.is_empty());
    assert!(range(&s, "d", "d").kvs.is_empty());
    assert!(range(&s, "zz", "").kvs.is_empty());
}

#[test]
fn limit_more_and_count() {
    let s = sample();
    let mut r = rr("\0", "\0");
    r.limit = 2;
    let resp = s.range(&r).expect("range");
    assert_eq!(
        (keys(&resp), resp.more, resp.count),
        (vec!["a".into(), "b".into()], true, 5)
    );
    r.limit = 5;
    let resp = s.range(&r).expect("range");
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (5, false, 5));
    for limit in [0, -1, i64::MIN, i64::MAX] {
        r.limit = limit;
        let resp = s.range(&r).expect("range");
        assert_eq!((resp.kvs.len(), resp.more), (5, false));
    }
}

#[test]
fn keys_only_and_count_only() {
    let s = sample();
    let mut r = rr("a", "c");
    r.keys_only = true;
    let resp = s.range(&r).expect("range");
    assert_eq!(keys(&resp), ["a", "b"]);
    assert!(resp
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.mod_revision > 0));
    r.keys_only = false;
    r.count_only = true;
    r.limit = 1;
    let resp = s.range(&r).expect("range");
    assert_eq!((resp.kvs.len(), resp.count, resp.more), (0, 2, false));
}

#[test]
fn sorting_by_every_target() {
    let s = sample();
    use SortOrder::*;
    use SortTarget::*;
    let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(sorted(&s, Ascend, Key, 0).0, k(&["a", "b", "c", "d", "e"]));
    assert_eq!(sorted(&s, Descend, Key, 0).0, k(&["e", "d", "c", "b", "a"]));
    assert_eq!(
        sorted(&s, Ascend, Value, 0).0,
        k(&["a", "e", "d", "c", "b"])
    );
    assert_eq!(
        sorted(&s, Descend, Value, 0).0,
        k(&["b", "c", "d", "e", "a"])
    );
    assert_eq!(
        sorted(&s, Ascend, Create, 0).0,
        k(&["c", "a", "e", "b", "d"])
    );
    assert_eq!(
        sorted(&s, Descend, Create, 0).0,
        k(&["d", "b", "e", "a", "c"])
    );
    assert_eq!(sorted(&s, Ascend, Mod, 0).0, k(&["c", "e", "b", "a", "d"]));
    assert_eq!(sorted(&s, Descend, Mod, 0).0, k(&["d", "a", "b", "e", "c"]));
    // Ties keep key order: versions are a=3, d=2, others 1.
    assert_eq!(
        sorted(&s, Ascend, Version, 0).0,
        k(&["b", "c", "e", "d", "a"])
    );
    assert_eq!(
        sorted(&s, Descend, Version, 0).0,
        k(&["a", "d", "b", "c", "e"])
    );
    // NONE with a non-key target sorts ascending; NONE with KEY is key order.
    assert_eq!(sorted(&s, None, Mod, 0).0, k(&["c", "e", "b", "a", "d"]));
    assert_eq!(sorted(&s, None, Key, 0).0, k(&["a", "b", "c", "d", "e"]));
}

#[test]
fn limit_applies_after_sorting() {
    let s = sample();
    let (k, more, count) = sorted(&s, SortOrder::Descend, SortTarget::Key, 2);
    assert_eq!((k, more, count), (vec!["e".into(), "d".into()], true, 5));
    let (k, more, _) = sorted(&s, SortOrder::Ascend, SortTarget::Mod, 3);
    assert_eq!((k, more), (vec!["c".into(), "e".into(), "b".into()], true));
    let (k, more, _) = sorted(&s, SortOrder::Ascend, SortTarget::Mod, 5);
    assert_eq!((k.len(), more), (5, false));
}

#[test]
fn revision_filters_prune_but_count_does_not() {
    let s = sample();
    let run = |f: &dyn Fn(&mut RangeRequest)| {
        let mut r = rr("\0", "\0");
        f(&mut r);
        let resp = s.range(&r).expect("range");
        (keys(&resp), resp.count, resp.more)
    };
    let (k, count, _) = run(&|r| r.min_mod_revision = 7);
    assert_eq!((k, count), (vec!["a".into(), "d".into()], 5));
    let (k, _, _) = run(&|r| r.max_mod_revision = 4);
    assert_eq!(k, ["c", "e"]);
    let (k, _, _) = run(&|r| r.min_create_revision = 5);
    assert_eq!(k, ["b", "d"]);
    let (k, _, _) = run(&|r| r.max_create_revision = 3);
    assert_eq!(k, ["a", "c"]);
    let (k, _, more) = run(&|r| {
        r.min_create_revision = 3;
        r.limit = 2;
    });
    assert_eq!((k, more), (vec!["a".into(), "b".into()], true));
    let (k, _, more) = run(&|r| {
        r.max_create_revision = 3;
        r.limit = 2;
    });
    assert_eq!((k, more), (vec!["a".into(), "c".into()], false));
}

#[test]
fn reads_at_old_revisions() {
    let s = sample();
    assert_eq!(get_at(&s, "a", 2).expect("read"), None);
    let a3 = get_at(&s, "a", 3).expect("read").expect("a@3");
    assert_eq!(
        (value(&a3), a3.version, a3.mod_revision),
        ("5".into(), 1, 3)
    );
    let a7 = get_at(&s, "a", 7).expect("read").expect("a@7");
    assert_eq!((value(&a7), a7.version), ("9".into(), 2));
    let mut r = rr("\0", "\0");
    r.revision = 4;
    let resp = s.range(&r).expect("range");
    assert_eq!(
        (keys(&resp), resp.count),
        (vec!["a".into(), "c".into(), "e".into()], 3)
    );
    assert_eq!(
        resp.header.map(|h| h.revision),
        Some(9),
        "header is the current revision"
    );
    r.revision = 1;
    assert!(s.range(&r).expect("range").kvs.is_empty());
    r.revision = 10;
    assert_eq!(s.range(&r).err(), Some(Error::FutureRev));
    r.revision = i64::MAX;
    assert_eq!(s.range(&r).err(), Some(Error::FutureRev));
    for rev in [0, -1, i64::MIN] {
        r.revision = rev;
        assert_eq!(s.range(&r).expect("range").kvs.len(), 5);
    }
}

#[test]
fn deleted_keys_are_visible_at_earlier_revisions() {
    let mut s = sample();
    del(&mut s, "a", "c"); // 10
    assert_eq!(keys(&range(&s, "\0", "\0")), ["c", "d", "e"]);
    assert_eq!(
        get_at(&s, "b", 9).expect("read").map(|kv| value(&kv)),
        Some("4".into())
    );
    put(&mut s, "a", "new"); // 11
    let a = get_at(&s, "a", 11).expect("read").expect("a");
    assert_eq!((a.create_revision, a.version), (11, 1));
    assert!(get_at(&s, "a", 10).expect("read").is_none());
}

#[test]
fn hostile_enum_values_do_not_panic() {
    let s = sample();
    for (order, target) in [(7, 0), (1, 99), (-1, -1), (2, 42), (i32::MAX, i32::MIN)] {
        let mut r = rr("\0", "\0");
        r.sort_order = order;
        r.sort_target = target;
        r.limit = 2;
        let resp = s.range(&r).expect("range");
        assert_eq!(
            (keys(&resp), resp.more),
            (vec!["a".into(), "b".into()], true)
        );
    }
    let mut r = rr("\0", "\0");
    r.min_mod_revision = i64::MIN;
    r.max_mod_revision = i64::MAX;
    r.min_create_revision = -5;
    r.max_create_revision = -5;
    assert!(s.range(&r).expect("range").kvs.is_empty());
}
