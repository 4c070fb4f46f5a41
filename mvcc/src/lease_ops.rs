//! Applying the lease commands: grant, revoke (its keys deleted in one revision, in key
//! order), checkpoint, and the batch revoke the node proposes for expired leases.

use proto::etcdserverpb::{
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse,
};
use proto::registrypb::LeaseRevokeBatch;

use crate::snapshot::{Change, LeaseRecord};
use crate::store::{Applied, Response};
use crate::write::Writer;
use crate::{header, Error, Store};

/// Deletes the keys of lease `id` (key order) and removes it; false if it does not exist.
fn revoke(w: &mut Writer<'_>, id: i64) -> bool {
    let Some(lease) = w.leases.remove(id) else {
        return false;
    };
    for key in &lease.keys {
        w.delete_key(key);
    }
    w.changes.push(Change::RemoveLease(id));
    true
}

impl Store {
    pub(crate) fn apply_lease_grant(
        &mut self,
        index: u64,
        g: &LeaseGrantRequest,
    ) -> Result<Applied, Error> {
        let lease = self
            .leases
            .prepare_grant(index, g.id, g.ttl, self.config.min_lease_ttl)?;
        let response = LeaseGrantResponse {
            header: header(self.revision),
            id: lease.id,
            ttl: lease.ttl,
            error: String::new(),
        };
        let record = LeaseRecord::new(&lease);
        self.leases.insert(lease);
        let mut applied = self.unchanged(Response::LeaseGrant(response));
        applied.changes.push(Change::PutLease(record));
        Ok(applied)
    }

    pub(crate) fn apply_lease_revoke(&mut self, r: &LeaseRevokeRequest) -> Result<Applied, Error> {
        if self.leases.get(r.id).is_none() {
            return Err(Error::LeaseNotFound);
        }
        let out = self.write(|w| revoke(w, r.id));
        let revision = self.revision;
        Ok(self.applied(out, |_| {
            Response::LeaseRevoke(LeaseRevokeResponse {
                header: header(revision),
            })
        }))
    }

    pub(crate) fn apply_lease_checkpoint(
        &mut self,
        c: &LeaseCheckpointRequest,
    ) -> Result<Applied, Error> {
        let mut changes = Vec::new();
        for cp in &c.checkpoints {
            if self.leases.checkpoint(cp.id, cp.remaining_ttl) {
                if let Some(l) = self.leases.get(cp.id) {
                    changes.push(Change::PutLease(LeaseRecord::new(l)));
                }
            }
        }
        let mut applied = self.unchanged(Response::LeaseCheckpoint(LeaseCheckpointResponse {
            header: header(self.revision),
        }));
        applied.changes = changes;
        Ok(applied)
    }

    pub(crate) fn apply_lease_revoke_batch(
        &mut self,
        b: &LeaseRevokeBatch,
    ) -> Result<Applied, Error> {
        let out = self.write(|w| {
            let mut revoked = Vec::new();
            for &id in &b.ids {
                if revoke(w, id) {
                    revoked.push(id);
                }
            }
            revoked
        });
        Ok(self.applied(out, |revoked| Response::LeaseRevokeBatch { revoked }))
    }
}
