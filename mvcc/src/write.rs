//! One write revision under construction (etcd's `storeTxnWrite`): every change it makes
//! gets revision `(main, sub)` with `main` = store revision + 1 and `sub` counting up from 0.
//! It keeps the lease key sets in step and records watch events and persistence changes.
//! Its operations are infallible: callers validate requests before creating a `Writer`.

use proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse};
use proto::mvccpb::{Event, KeyValue};

use crate::index::{Index, KeySpan, Record, Revision};
use crate::lease::LeaseTable;
use crate::snapshot::{Change, KeyRecord};
use crate::{count_i64, header};

pub(crate) struct Writer<'a> {
    index: &'a mut Index,
    pub(crate) leases: &'a mut LeaseTable,
    main: i64,
    sub: i64,
    pub(crate) events: Vec<Event>,
    pub(crate) changes: Vec<Change>,
    /// Whether key records go to `changes` (each one copies the key and value).
    track_changes: bool,
}

impl<'a> Writer<'a> {
    /// Starts the revision after `current`.
    pub(crate) fn new(
        index: &'a mut Index,
        leases: &'a mut LeaseTable,
        current: i64,
        track_changes: bool,
    ) -> Self {
        Writer {
            index,
            leases,
            main: current.saturating_add(1),
            sub: 0,
            events: Vec::new(),
            changes: Vec::new(),
            track_changes,
        }
    }

    /// The store revision as readers inside this write see it: the new one once anything
    /// changed, the previous one before.
    pub(crate) fn rev(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.main - 1
        }
    }

    pub(crate) fn index(&self) -> &Index {
        self.index
    }

    fn next_rev(&mut self) -> Revision {
        let rev = Revision {
            main: self.main,
            sub: self.sub,
        };
        self.sub += 1;
        rev
    }

    /// Puts one key. `ignore_value`/`ignore_lease` on an absent key (rejected by validation)
    /// fall back to the request's value/lease.
    pub(crate) fn put(&mut self, req: &PutRequest) -> PutResponse {
        let key = req.key.as_slice();
        let prev = self.index.latest(key).cloned();
        let value = match &prev {
            Some(p) if req.ignore_value => p.value(),
            _ => &req.value,
        };
        let lease = match &prev {
            Some(p) if req.ignore_lease => p.lease,
            _ => req.lease,
        };
        let rev = self.next_rev();
        let record = Record::put(
            rev,
            prev.as_ref().map_or(rev.main, |p| p.create_revision),
            prev.as_ref().map_or(1, |p| p.version.saturating_add(1)),
            lease,
            value.into(),
        );
        if let Some(p) = prev.as_ref().filter(|p| p.lease != 0) {
            self.leases.detach(p.lease, key);
        }
        if lease != 0 {
            self.leases.attach(lease, key);
        }
        self.events.push(record.to_event(key, prev.as_ref()));
        if self.track_changes {
            self.changes
                .push(Change::PutKey(KeyRecord::new(key, &record)));
        }
        self.index.push(key, record);
        PutResponse {
            header: header(rev.main),
            prev_kv: prev.filter(|_| req.prev_kv).map(|p| p.to_kv(key, false)),
        }
    }

    /// Deletes one key if it is live; returns its last value.
    pub(crate) fn delete_key(&mut self, key: &[u8]) -> Option<KeyValue> {
        let prev = self.index.latest(key)?.clone();
        let record = Record::tombstone(self.next_rev());
        if prev.lease != 0 {
            self.leases.detach(prev.lease, key);
        }
        self.events.push(record.to_event(key, Some(&prev)));
        if self.track_changes {
            self.changes
                .push(Change::PutKey(KeyRecord::new(key, &record)));
        }
        self.index.push(key, record);
        Some(prev.to_kv(key, false))
    }

    /// Deletes every live key of the request's range, in key order.
    pub(crate) fn delete_range(&mut self, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let span = KeySpan::new(&req.key, &req.range_end);
        let keys: Vec<Vec<u8>> = self
            .index
            .range(&span, i64::MAX)
            .map(|(k, _)| k.to_vec())
            .collect();
        let mut deleted = 0usize;
        let mut prev_kvs = Vec::new();
        for key in keys {
            if let Some(prev) = self.delete_key(&key) {
                deleted += 1;
                if req.prev_kv {
                    prev_kvs.push(prev);
                }
            }
        }
        DeleteRangeResponse {
            header: header(self.rev()),
            deleted: count_i64(deleted),
            prev_kvs,
        }
    }

    /// Ends the write: whether anything changed, and what it produced.
    pub(crate) fn finish(self) -> (bool, Vec<Event>, Vec<Change>) {
        (self.sub > 0, self.events, self.changes)
    }
}
