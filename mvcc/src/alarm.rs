//! etcd's alarms in the state machine: raised and cleared by committed `AlarmRequest`s, so
//! every member agrees on them, and the capped apply of etcd (`applierV3Capped`): while
//! NOSPACE is raised, puts, txns that write and lease grants fail with `database space
//! exceeded`; reads, deletes, compaction and revokes still pass, so space can be freed.

use proto::etcdserverpb::alarm_request::AlarmAction;
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest};
use proto::registrypb::internal_request::Request;
use proto::registrypb::InternalRequest;

use crate::store::{Applied, Response};
use crate::Store;

/// Whether a txn writes in either branch (etcd's `isTxnReadonly`, negated).
fn txn_writes(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(Op::RequestPut(_)) | Some(Op::RequestDeleteRange(_)) => true,
            Some(Op::RequestTxn(inner)) => txn_writes(inner),
            _ => false,
        })
}

impl Store {
    /// Raised alarms in (member, type) order, as `Maintenance.Alarm` lists them.
    pub fn alarm_list(&self) -> Vec<AlarmMember> {
        self.alarms
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether NOSPACE is raised.
    pub fn no_space(&self) -> bool {
        self.alarms
            .iter()
            .any(|&(_, a)| a == AlarmType::Nospace as i32)
    }

    /// etcd's capped applier: what fails while NOSPACE is raised.
    pub(crate) fn capped(&self, req: &InternalRequest) -> bool {
        if !self.no_space() {
            return false;
        }
        match &req.request {
            Some(Request::Put(_)) | Some(Request::LeaseGrant(_)) => true,
            Some(Request::Txn(t)) => txn_writes(t),
            _ => false,
        }
    }

    /// ACTIVATE raises `(member, alarm)`, DEACTIVATE clears it, GET lists; the answer lists
    /// the alarms concerned, as etcd's: GET all, ACTIVATE the new one, DEACTIVATE the one
    /// cleared (none if it was not raised). Never changes the revision.
    pub(crate) fn apply_alarm(&mut self, a: &AlarmRequest) -> Applied {
        let pair = (a.member_id, a.alarm);
        let listed = match AlarmAction::try_from(a.action) {
            Ok(AlarmAction::Activate) if a.alarm != AlarmType::None as i32 => {
                self.alarms.insert(pair);
                vec![pair]
            }
            Ok(AlarmAction::Deactivate) => {
                if self.alarms.remove(&pair) {
                    vec![pair]
                } else {
                    Vec::new()
                }
            }
            Ok(AlarmAction::Get) => self.alarms.iter().copied().collect(),
            _ => Vec::new(),
        };
        Applied {
            response: Response::Alarm(AlarmResponse {
                header: crate::header(self.revision),
                alarms: listed
                    .into_iter()
                    .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
                    .collect(),
            }),
            revision: self.revision,
            events: Vec::new(),
            compacted: None,
            changes: Vec::new(),
        }
    }
}
