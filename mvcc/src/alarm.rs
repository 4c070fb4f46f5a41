//! etcd's alarms in the state machine: raised and cleared by committed `AlarmRequest`s, so
//! every member agrees on them, and the appliers etcd 3.4 swaps in while one is raised:
//!
//! - NOSPACE, the capped apply (`applierV3Capped`): puts, txns that write and lease grants
//!   fail with `database space exceeded`; reads, deletes, compaction and revokes still pass,
//!   so space can be freed.
//! - CORRUPT (`applierV3Corrupt`, etcd's `corrupt.go`): everything that goes through Raft
//!   fails with `corrupt cluster` (puts, deletes, txns, compaction, lease grants and revokes,
//!   the lessor's expiry revokes included), so nothing more is written to a store that
//!   diverged. What etcd serves without Raft still works: ranges and read-only txns (etcd
//!   answers them from its base applier; ours go through Raft, so they are let through here),
//!   keep-alives, TTLs, and the Alarm call itself, so `etcdctl alarm disarm` lifts it.

use proto::etcdserverpb::alarm_request::AlarmAction;
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest};
use proto::registrypb::internal_request::Request;
use proto::registrypb::InternalRequest;

use crate::store::{Applied, Response};
use crate::{Error, Store};

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

/// etcd's `isTxnReadonly`: every op of both branches is a range (a nested txn is not). Such a
/// txn never reaches etcd's applier chain, so CORRUPT does not refuse it.
fn txn_readonly(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| matches!(op.request, Some(Op::RequestRange(_))))
}

/// What etcd's `applierV3Corrupt` refuses among the commands that reach our state machine.
fn corrupt_refuses(req: &InternalRequest) -> bool {
    match &req.request {
        Some(Request::Txn(t)) => !txn_readonly(t),
        Some(Request::Put(_))
        | Some(Request::DeleteRange(_))
        | Some(Request::Compaction(_))
        | Some(Request::LeaseGrant(_))
        | Some(Request::LeaseRevoke(_))
        | Some(Request::LeaseRevokeBatch(_)) => true,
        // Checkpoints, alarms and whatever else (auth, in etcd) pass: etcd's corrupt applier
        // does not override them.
        _ => false,
    }
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

    /// Whether CORRUPT is raised.
    pub fn corrupt(&self) -> bool {
        self.alarms
            .iter()
            .any(|&(_, a)| a == AlarmType::Corrupt as i32)
    }

    /// Why `req` is refused under the raised alarms, if it is. CORRUPT first: etcd installs
    /// its corrupt applier over the others, and it refuses a superset of what NOSPACE caps.
    pub(crate) fn refused(&self, req: &InternalRequest) -> Option<Error> {
        if self.corrupt() && corrupt_refuses(req) {
            return Some(Error::Corrupt);
        }
        self.capped(req).then_some(Error::NoSpace)
    }

    /// etcd's capped applier: what fails while NOSPACE is raised.
    fn capped(&self, req: &InternalRequest) -> bool {
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
