//! The [`Store`]: revision counters, the key index and the lease table, and `apply`, which
//! dispatches one committed [`InternalRequest`] (KV writes and compaction here, leases in
//! `lease_ops.rs`). Every request is fully validated before anything changes, so a failed
//! request leaves the store untouched and does not bump the revision.

use proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseCheckpointResponse, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use proto::mvccpb::Event;
use proto::registrypb::internal_request::Request;
use proto::registrypb::InternalRequest;

use crate::index::{Index, KeySpan};
use crate::lease::{Lease, LeaseTable};
use crate::snapshot::Change;
use crate::write::Writer;
use crate::{header, range, txn, Config, Error};

/// The response to one applied command; headers carry only `revision`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
    /// The ids of the batch that existed and were revoked, in request order.
    LeaseRevokeBatch {
        revoked: Vec<i64>,
    },
    Alarm(proto::etcdserverpb::AlarmResponse),
    Auth(crate::AuthResponse),
}

/// What applying one command produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub response: Response,
    /// Store revision after this apply.
    pub revision: i64,
    /// Watch events, in (revision, sub) order, `prev_kv` always filled when there was one.
    pub events: Vec<Event>,
    /// `Some(rev)` if this apply compacted the history up to `rev`.
    pub compacted: Option<i64>,
    /// Records to write to / remove from a persistent copy (see [`Change`]).
    pub changes: Vec<Change>,
}

/// etcd's revisioned key space plus lease table.
#[derive(Debug)]
pub struct Store {
    pub(crate) config: Config,
    pub(crate) index: Index,
    pub(crate) leases: LeaseTable,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
    /// Whether applies report [`Applied::changes`] (see [`Store::set_track_changes`]).
    pub(crate) track_changes: bool,
    /// Raised alarms: (member id, `AlarmType`).
    pub(crate) alarms: std::collections::BTreeSet<(u64, i32)>,
    /// Users, roles, permissions and tokens (`auth.rs`).
    pub(crate) auth: crate::Auth,
}

impl Store {
    /// An empty store at revision 1.
    pub fn new(config: Config) -> Self {
        Store {
            config,
            index: Index::default(),
            leases: LeaseTable::default(),
            revision: 1,
            compact_revision: 0,
            track_changes: true,
            alarms: Default::default(),
            auth: Default::default(),
        }
    }

    /// Whether applies report [`Applied::changes`] (on by default). A holder that persists
    /// whole snapshots instead turns it off: each change copies the key and value written.
    pub fn set_track_changes(&mut self, on: bool) {
        self.track_changes = on;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Current revision (1 when nothing was ever written).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Revision of the last compaction, 0 if never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// A read at the current or any retained revision; `header.revision` is the current one.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Error> {
        range::range(&self.index, req, self.revision, self.compact_revision)
    }

    /// Events of every retained revision `>= from_revision` of the keys in
    /// `key`/`range_end` (etcd's convention), in revision order with `prev_kv` filled where
    /// the previous revision is retained: the history a watcher starting in the past needs.
    /// `from_revision < compact_revision` → [`Error::Compacted`] (a delete exactly at the
    /// compact revision is not retained either, as in etcd).
    pub fn events_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        from_revision: i64,
    ) -> Result<Vec<Event>, Error> {
        if from_revision < self.compact_revision {
            return Err(Error::Compacted);
        }
        Ok(self
            .index
            .events_since(&KeySpan::new(key, range_end), from_revision))
    }

    pub fn lease(&self, id: i64) -> Option<&Lease> {
        self.leases.get(id)
    }

    /// All leases, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.iter()
    }

    /// Applies one committed command. `index` is the Raft log index of its entry; a lease
    /// grant with id 0 derives its id from it. An empty `InternalRequest` is rejected with
    /// [`Error::KeyNotFound`] (etcd's answer to an empty op).
    pub fn apply(&mut self, index: u64, req: &InternalRequest) -> Result<Applied, Error> {
        let mut applied = self.dispatch(index, req)?;
        if !self.track_changes {
            applied.changes = Vec::new();
        }
        Ok(applied)
    }

    fn dispatch(&mut self, index: u64, req: &InternalRequest) -> Result<Applied, Error> {
        if let Some(refused) = self.refused(req) {
            return Err(refused);
        }
        match &req.request {
            None => Err(Error::KeyNotFound),
            Some(Request::Put(p)) => self.apply_put(p),
            Some(Request::DeleteRange(d)) => self.apply_delete_range(d),
            Some(Request::Txn(t)) => self.apply_txn(t),
            Some(Request::Compaction(c)) => self.apply_compaction(c),
            Some(Request::LeaseGrant(g)) => self.apply_lease_grant(index, g),
            Some(Request::LeaseRevoke(r)) => self.apply_lease_revoke(r),
            Some(Request::LeaseCheckpoint(c)) => self.apply_lease_checkpoint(c),
            Some(Request::LeaseRevokeBatch(b)) => self.apply_lease_revoke_batch(b),
            Some(Request::Alarm(a)) => Ok(self.apply_alarm(a)),
            Some(auth) => self.apply_auth(index, auth),
        }
    }

    /// Runs `f` on a writer for the next revision and commits what it did.
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&mut Writer<'_>) -> T) -> WriteOutcome<T> {
        let mut w = Writer::new(
            &mut self.index,
            &mut self.leases,
            self.revision,
            self.track_changes,
        );
        let value = f(&mut w);
        let (changed, events, changes) = w.finish();
        if changed {
            self.revision = self.revision.saturating_add(1);
        }
        WriteOutcome {
            value,
            events,
            changes,
        }
    }

    /// An [`Applied`] for a response that changed nothing.
    pub(crate) fn unchanged(&self, response: Response) -> Applied {
        Applied {
            response,
            revision: self.revision,
            events: Vec::new(),
            compacted: None,
            changes: Vec::new(),
        }
    }

    pub(crate) fn applied<T>(
        &self,
        out: WriteOutcome<T>,
        f: impl FnOnce(T) -> Response,
    ) -> Applied {
        Applied {
            response: f(out.value),
            revision: self.revision,
            events: out.events,
            compacted: None,
            changes: out.changes,
        }
    }

    fn apply_put(&mut self, p: &PutRequest) -> Result<Applied, Error> {
        if p.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        txn::check_put(&self.index, &self.leases, p, true)?;
        let out = self.write(|w| w.put(p));
        Ok(self.applied(out, Response::Put))
    }

    fn apply_delete_range(&mut self, d: &DeleteRangeRequest) -> Result<Applied, Error> {
        if d.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        let out = self.write(|w| w.delete_range(d));
        Ok(self.applied(out, Response::DeleteRange))
    }

    fn apply_txn(&mut self, t: &TxnRequest) -> Result<Applied, Error> {
        txn::validate(t, self.config.max_txn_ops)?;
        let path = txn::evaluate(&self.index, t, self.revision);
        txn::check(
            &self.index,
            &self.leases,
            t,
            &path,
            self.revision,
            self.compact_revision,
        )?;
        let compacted = self.compact_revision;
        let out = self.write(|w| txn::execute(w, t, &path, compacted));
        Ok(self.applied(out, Response::Txn))
    }

    fn apply_compaction(&mut self, c: &CompactionRequest) -> Result<Applied, Error> {
        if c.revision <= self.compact_revision {
            return Err(Error::Compacted);
        }
        if c.revision > self.revision {
            return Err(Error::FutureRev);
        }
        let mut removed = Vec::new();
        self.index.compact(c.revision, &mut removed);
        self.compact_revision = c.revision;
        let mut applied = self.unchanged(Response::Compaction(CompactionResponse {
            header: header(self.revision),
        }));
        applied.compacted = Some(c.revision);
        applied.changes = removed.into_iter().map(Change::RemoveKey).collect();
        Ok(applied)
    }
}

/// What a write closure returned, plus the events and changes of the revision.
pub(crate) struct WriteOutcome<T> {
    pub(crate) value: T,
    pub(crate) events: Vec<Event>,
    pub(crate) changes: Vec<Change>,
}
