//! Persistence: full snapshots and incremental change records rebuild identical stores.

use std::collections::BTreeMap;

use crate::common::*;
use mvcc::{Change, Config, KeyRecord, LeaseRecord, Snapshot, Store};
use proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
};
use proto::mvccpb::KeyValue;
use proto::registrypb::internal_request::Request;

/// A persistent copy kept only from `Applied::changes`, like the node's sled trees.
#[derive(Default)]
struct Disk {
    keys: BTreeMap<[u8; 16], Vec<u8>>,
    leases: BTreeMap<[u8; 8], Vec<u8>>,
    revision: i64,
    compact_revision: i64,
}

impl Disk {
    fn record(&mut self, a: &mvcc::Applied) {
        for c in &a.changes {
            match c {
                Change::PutKey(k) => {
                    self.keys.insert(k.storage_key(), k.to_bytes());
                }
                Change::RemoveKey(rev) => {
                    self.keys.remove(&mvcc::revision_key(*rev));
                }
                Change::PutLease(l) => {
                    self.leases.insert(l.storage_key(), l.to_bytes());
                }
                Change::RemoveLease(id) => {
                    self.leases.remove(&id.to_be_bytes());
                }
            }
        }
        self.revision = a.revision;
        if let Some(c) = a.compacted {
            self.compact_revision = c;
        }
    }

    fn restore(&self) -> Store {
        Store::restore(
            Config::default(),
            self.revision,
            self.compact_revision,
            self.keys
                .values()
                .map(|b| KeyRecord::from_bytes(b).expect("key record")),
            self.leases
                .values()
                .map(|b| LeaseRecord::from_bytes(b).expect("lease record")),
        )
    }
}

/// A history touching every kind of command; every apply is recorded on `disk`.
fn busy_store(disk: &mut Disk) -> Store {
    busy_store_with(disk, true)
}

/// [`busy_store`], with change tracking as given.
fn busy_store_with(disk: &mut Disk, track_changes: bool) -> Store {
    let mut s = store();
    s.set_track_changes(track_changes);
    let g = proto::registrypb::InternalRequest {
        request: Some(Request::LeaseGrant(LeaseGrantRequest { ttl: 30, id: 0 })),
    };
    let a = s.apply(9, &g).expect("grant");
    disk.record(&a);
    let mvcc::Response::LeaseGrant(LeaseGrantResponse { id: lease, .. }) = a.response else {
        panic!()
    };
    let mut run = |s: &mut Store, r: Request| {
        if let Ok(a) = apply(s, r) {
            disk.record(&a);
        }
    };
    for i in 0..20 {
        let mut p = put_req(&format!("k{}", i % 7), &format!("v{i}"));
        if i % 3 == 0 {
            p.lease = lease;
        }
        run(&mut s, Request::Put(p));
        if i % 5 == 4 {
            run(
                &mut s,
                Request::DeleteRange(del_req(&format!("k{}", i % 4), "")),
            );
        }
    }
    run(
        &mut s,
        Request::Txn(txn_req(
            vec![],
            vec![op_put("t1", "x"), op_del("k1", "k3")],
            vec![],
        )),
    );
    let cp = LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id: lease,
            remaining_ttl: 12,
        }],
    };
    run(&mut s, Request::LeaseCheckpoint(cp));
    run(
        &mut s,
        Request::Compaction(proto::etcdserverpb::CompactionRequest {
            revision: 10,
            physical: true,
        }),
    );
    run(&mut s, Request::Put(put_req("late", "1")));
    s
}

fn assert_same(a: &Store, b: &Store) {
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.compact_revision(), b.compact_revision());
    assert_eq!(all_answers(a, 1), all_answers(b, 1));
    assert_eq!(
        a.leases().collect::<Vec<_>>(),
        b.leases().collect::<Vec<_>>()
    );
    assert_eq!(
        a.events_since(b"\0", b"\0", 0),
        b.events_since(b"\0", b"\0", 0)
    );
}

#[test]
fn snapshot_round_trip_reproduces_every_answer() {
    let mut disk = Disk::default();
    let s = busy_store(&mut disk);
    let bytes = s.encode_snapshot();
    let r = Store::decode_snapshot(Config::default(), &bytes).expect("decode");
    assert_same(&s, &r);
    assert_eq!(r.snapshot(), s.snapshot());
    let r2 = Store::from_snapshot(Config::default(), s.snapshot());
    assert_same(&s, &r2);
}

#[test]
fn streamed_encoding_is_byte_for_byte_the_message_encoding() {
    use prost::Message;
    let mut disk = Disk::default();
    let s = busy_store(&mut disk);
    assert_eq!(s.encode_snapshot(), s.snapshot().encode_to_vec());
    let empty = store();
    assert_eq!(empty.encode_snapshot(), empty.snapshot().encode_to_vec());
}

#[test]
fn with_change_tracking_off_the_store_is_the_same_and_reports_no_changes() {
    let mut tracked_disk = Disk::default();
    let tracked = busy_store(&mut tracked_disk);
    let mut quiet_disk = Disk::default();
    let quiet = busy_store_with(&mut quiet_disk, false);
    assert_same(&tracked, &quiet);
    assert!(!tracked_disk.keys.is_empty() && !tracked_disk.leases.is_empty());
    assert!(quiet_disk.keys.is_empty() && quiet_disk.leases.is_empty());
}

#[test]
fn incremental_changes_rebuild_the_same_store() {
    let mut disk = Disk::default();
    let s = busy_store(&mut disk);
    let r = disk.restore();
    assert_same(&s, &r);
    assert!(s
        .leases()
        .next()
        .is_some_and(|l| !l.keys.is_empty() && l.remaining_ttl == 12));
}

#[test]
fn restored_stores_continue_identically() {
    let mut disk = Disk::default();
    let mut s = busy_store(&mut disk);
    let mut r = Store::decode_snapshot(Config::default(), &s.encode_snapshot()).expect("decode");
    let lease = s.leases().next().map(|l| l.id).expect("lease");
    for st in [&mut s, &mut r] {
        put(st, "k2", "after");
        revoke(st, lease).expect("revoke");
        grant(st, 1000, 0, 5).expect("grant");
    }
    assert_same(&s, &r);
}

#[test]
fn garbage_and_inconsistent_snapshots_do_not_panic() {
    assert!(Store::decode_snapshot(Config::default(), &[0xff, 0xff, 0xff]).is_err());
    let snap = Snapshot {
        revision: -5,
        compact_revision: -3,
        keys: vec![
            KeyRecord {
                main: 7,
                sub: 0,
                tombstone: false,
                kv: None,
            },
            KeyRecord {
                main: 4,
                sub: 0,
                tombstone: false,
                kv: Some(KeyValue {
                    key: b"x".to_vec(),
                    lease: 77,
                    version: 1,
                    create_revision: 4,
                    ..Default::default()
                }),
            },
            KeyRecord {
                main: 4,
                sub: 0,
                tombstone: true,
                kv: Some(KeyValue {
                    key: b"x".to_vec(),
                    ..Default::default()
                }),
            },
            KeyRecord {
                main: 2,
                sub: 0,
                tombstone: false,
                kv: Some(KeyValue {
                    key: b"y".to_vec(),
                    lease: 5,
                    ..Default::default()
                }),
            },
        ],
        leases: vec![LeaseRecord {
            id: 5,
            ttl: 10,
            remaining_ttl: 0,
        }],
        alarms: Vec::new(),
        auth: None,
    };
    let mut s = Store::from_snapshot(Config::default(), snap);
    assert_eq!((s.revision(), s.compact_revision()), (4, 0));
    assert!(
        get(&s, "x").is_none(),
        "the later duplicate (tombstone) wins"
    );
    assert_eq!(s.lease(5).map(|l| l.keys.len()), Some(1));
    put(&mut s, "z", "1");
    assert_eq!(s.revision(), 5);
}
