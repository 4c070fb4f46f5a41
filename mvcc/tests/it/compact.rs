//! Compaction and retained history (events_since).

use crate::common::*;
use mvcc::{Change, Error, Response, Revision};
use proto::etcdserverpb::RangeRequest;
use proto::mvccpb::event::EventType;

#[test]
fn compaction_errors() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    assert_eq!(compact(&mut s, 4).err(), Some(Error::FutureRev));
    assert_eq!(compact(&mut s, 0).err(), Some(Error::Compacted));
    assert_eq!(compact(&mut s, -7).err(), Some(Error::Compacted));
    let a = compact(&mut s, 2).expect("compact");
    assert_eq!(
        (a.compacted, a.revision, s.revision(), s.compact_revision()),
        (Some(2), 3, 3, 2)
    );
    let Response::Compaction(c) = &a.response else {
        panic!()
    };
    assert_eq!(c.header.map(|h| h.revision), Some(3));
    assert_eq!(compact(&mut s, 2).err(), Some(Error::Compacted));
    assert_eq!(compact(&mut s, 1).err(), Some(Error::Compacted));
    compact(&mut s, 3).expect("compact to current");
    assert_eq!(s.revision(), 3, "compaction never bumps the revision");
}

#[test]
fn reads_below_the_compact_revision_fail() {
    let mut s = store();
    for v in ["1", "2", "3", "4"] {
        put(&mut s, "a", v); // 2..5
    }
    compact(&mut s, 4).expect("compact");
    assert_eq!(get_at(&s, "a", 3).err(), Some(Error::Compacted));
    assert_eq!(get_at(&s, "a", 1).err(), Some(Error::Compacted));
    let a4 = get_at(&s, "a", 4).expect("at compact rev").expect("a");
    assert_eq!(
        (value(&a4), a4.version, a4.create_revision),
        ("3".into(), 3, 2)
    );
    assert_eq!(
        get_at(&s, "a", 5).expect("read").map(|kv| value(&kv)),
        Some("4".into())
    );
    assert_eq!(
        get(&s, "a").map(|kv| kv.version),
        Some(4),
        "versions survive compaction"
    );
    let mut r = RangeRequest {
        key: "a".into(),
        revision: 3,
        count_only: true,
        ..Default::default()
    };
    assert_eq!(s.range(&r).err(), Some(Error::Compacted));
    r.revision = 0;
    assert_eq!(s.range(&r).expect("range").count, 1);
}

#[test]
fn history_is_dropped_and_tombstones_vanish() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "b", "1"); // 3
    put(&mut s, "a", "2"); // 4
    del(&mut s, "b", ""); // 5
    put(&mut s, "c", "1"); // 6
    del(&mut s, "c", ""); // 7
    put(&mut s, "c", "2"); // 8
    let a = compact(&mut s, 7).expect("compact");
    let mut removed: Vec<Revision> = a
        .changes
        .iter()
        .map(|c| match c {
            Change::RemoveKey(r) => *r,
            other => panic!("{other:?}"),
        })
        .collect();
    removed.sort();
    let r = |main| Revision { main, sub: 0 };
    // a@2 superseded; b's whole generation (3, 5 tombstone); c's first generation (6, 7).
    assert_eq!(removed, [r(2), r(3), r(5), r(6), r(7)]);
    let snap = s.snapshot();
    let mut kept: Vec<i64> = snap.keys.iter().map(|k| k.main).collect();
    kept.sort();
    assert_eq!(kept, [4, 8]);
    assert_eq!(keys(&range(&s, "\0", "\0")), ["a", "c"]);
    let mut at7 = rr("\0", "\0");
    at7.revision = 7;
    assert_eq!(keys(&s.range(&at7).expect("range")), ["a"]);
}

#[test]
fn compaction_keeps_what_later_revisions_need() {
    let mut s = store();
    put(&mut s, "k", "1"); // 2
    put(&mut s, "k", "2"); // 3
    put(&mut s, "k", "3"); // 4
    compact(&mut s, 3).expect("compact");
    assert_eq!(
        get_at(&s, "k", 3).expect("read").map(|kv| value(&kv)),
        Some("2".into())
    );
    assert_eq!(
        get_at(&s, "k", 4).expect("read").map(|kv| value(&kv)),
        Some("3".into())
    );
    put(&mut s, "k", "4"); // 5
    compact(&mut s, 5).expect("compact");
    assert_eq!(s.snapshot().keys.len(), 1);
    assert_eq!(
        get(&s, "k").map(|kv| (kv.version, kv.create_revision)),
        Some((4, 2))
    );
}

#[test]
fn events_since_replays_retained_history() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "b", "1"); // 3
    put(&mut s, "a", "2"); // 4
    del(&mut s, "b", ""); // 5
    let ev = s.events_since(b"a", b"c", 3).expect("events");
    let summary: Vec<_> = ev
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().expect("kv");
            (
                e.r#type,
                kv.key.clone(),
                kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    let put = EventType::Put as i32;
    let delete = EventType::Delete as i32;
    assert_eq!(
        summary,
        [
            (put, b"b".to_vec(), 3, None),
            (put, b"a".to_vec(), 4, Some(2)),
            (delete, b"b".to_vec(), 5, Some(3)),
        ]
    );
    assert_eq!(s.events_since(b"a", b"", 0).expect("events").len(), 2);
    assert!(s.events_since(b"a", b"", 6).expect("events").is_empty());
    compact(&mut s, 4).expect("compact");
    assert_eq!(s.events_since(b"a", b"\0", 3).err(), Some(Error::Compacted));
    let ev = s.events_since(b"a", b"\0", 4).expect("events");
    assert_eq!(ev.len(), 2);
    assert!(
        ev[1].prev_kv.is_some(),
        "b@3 is retained: it is b's latest at the compact rev"
    );
}
