//! Alarms applied through the log and etcd's capped apply while NOSPACE is raised.

mod common;

use common::*;
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
