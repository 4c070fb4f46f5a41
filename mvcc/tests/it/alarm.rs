//! Alarms applied through the log and etcd's capped apply while NOSPACE is raised.

use crate::common::*;
use mvcc::{Error, Response, Store};
use proto::etcdserverpb::alarm_request::AlarmAction;
use proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType};
use proto::registrypb::internal_request::Request;

fn alarm(s: &mut Store, action: AlarmAction, member: u64, kind: AlarmType) -> Vec<AlarmMember> {
    let a = apply(
        s,
        Request::Alarm(AlarmRequest {
            action: action as i32,
            member_id: member,
            alarm: kind as i32,
        }),
    )
    .expect("alarm applies");
    let Response::Alarm(r) = a.response else {
        panic!("an alarm response")
    };
    r.alarms
}

#[test]
fn nospace_caps_writes_until_cleared_and_survives_a_snapshot() {
    let mut s = store();
    put(&mut s, "a", "1");
    let raised = alarm(&mut s, AlarmAction::Activate, 7, AlarmType::Nospace);
    assert_eq!(raised.len(), 1);
    assert_eq!(s.revision(), 2, "alarms do not bump the revision");
    assert!(s.no_space());
    assert_eq!(
        apply(&mut s, Request::Put(put_req("b", "2"))).err(),
        Some(Error::NoSpace)
    );
    assert_eq!(grant(&mut s, 9, 5, 60).err(), Some(Error::NoSpace));
    let write = txn_req(vec![], vec![op_put("c", "3")], vec![]);
    assert_eq!(txn(&mut s, write).err(), Some(Error::NoSpace));
    let read = txn_req(vec![], vec![op_range("a", "")], vec![]);
    assert!(txn(&mut s, read).is_ok(), "read-only txns pass");
    del(&mut s, "a", ""); // deletes free space
    assert!(compact(&mut s, 3).is_ok());
    assert_eq!(
        Error::NoSpace.to_string(),
        "etcdserver: mvcc: database space exceeded"
    );

    let restored =
        Store::decode_snapshot(Default::default(), &s.encode_snapshot()).expect("decode");
    assert_eq!(restored.alarm_list(), s.alarm_list());
    assert_eq!(restored.snapshot(), s.snapshot());

    assert_eq!(alarm(&mut s, AlarmAction::Get, 0, AlarmType::None).len(), 1);
    assert!(alarm(&mut s, AlarmAction::Deactivate, 8, AlarmType::Nospace).is_empty());
    assert_eq!(
        alarm(&mut s, AlarmAction::Deactivate, 7, AlarmType::Nospace).len(),
        1
    );
    assert!(!s.no_space());
    put(&mut s, "b", "2");
}

#[test]
fn corrupt_refuses_everything_raft_applies_but_reads_and_alarms() {
    let mut s = store();
    put(&mut s, "a", "1");
    let (lease, _) = grant(&mut s, 5, 9, 60).expect("grant");
    alarm(&mut s, AlarmAction::Activate, 7, AlarmType::Nospace);
    alarm(&mut s, AlarmAction::Activate, 8, AlarmType::Corrupt);
    assert!(s.corrupt());
    let before = s.revision();
    let refused = [
        apply(&mut s, Request::Put(put_req("b", "2"))).err(),
        apply(&mut s, Request::DeleteRange(del_req("a", ""))).err(),
        txn(&mut s, txn_req(vec![], vec![op_put("c", "3")], vec![])).err(),
        // A nested txn is not read-only for etcd, even with only ranges in it.
        txn(
            &mut s,
            txn_req(
                vec![],
                vec![op_txn(txn_req(vec![], vec![op_range("a", "")], vec![]))],
                vec![],
            ),
        )
        .err(),
        compact(&mut s, 2).err(),
        grant(&mut s, 6, 10, 60).err(),
        revoke(&mut s, lease).err(),
        apply(
            &mut s,
            Request::LeaseRevokeBatch(proto::registrypb::LeaseRevokeBatch { ids: vec![lease] }),
        )
        .err(),
    ];
    for (i, r) in refused.iter().enumerate() {
        assert_eq!(
            *r,
            Some(Error::Corrupt),
            "request {i}: CORRUPT wins over NOSPACE"
        );
    }
    assert_eq!(s.revision(), before, "nothing written");
    assert!(s.lease(lease).is_some(), "the lease is not revoked");
    let read = txn_req(vec![], vec![op_range("a", "")], vec![op_range("b", "")]);
    assert!(txn(&mut s, read).is_ok(), "read-only txns pass");
    assert_eq!(get(&s, "a").map(|kv| value(&kv)), Some("1".into()));
    assert_eq!(Error::Corrupt.to_string(), "etcdserver: corrupt cluster");

    let restored =
        Store::decode_snapshot(Default::default(), &s.encode_snapshot()).expect("decode");
    assert!(restored.corrupt(), "the alarm survives a snapshot");

    // Disarmed: back to NOSPACE's capped apply, which lets deletes through.
    alarm(&mut s, AlarmAction::Deactivate, 8, AlarmType::Corrupt);
    assert!(!s.corrupt());
    del(&mut s, "a", "");
    assert_eq!(
        apply(&mut s, Request::Put(put_req("b", "2"))).err(),
        Some(Error::NoSpace)
    );
    alarm(&mut s, AlarmAction::Deactivate, 7, AlarmType::Nospace);
    put(&mut s, "b", "2");
}
