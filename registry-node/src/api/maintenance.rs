//! `etcdserverpb.Maintenance`: member status (what `etcdctl endpoint status` prints), an
//! always-empty alarm list, Hash and HashKV (computed by the store over what this member has
//! applied, so members at the same revision answer the same), and Defragment (the store is in
//! memory: nothing to rewrite; answered as etcd answers).

use std::sync::Arc;

use proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::node::Core;

/// The etcd version we speak; tools parse it as semver.
pub const ETCD_VERSION: &str = "3.4.23";

pub struct MaintenanceService {
    core: Arc<Core>,
}

impl MaintenanceService {
    pub fn new(core: Arc<Core>) -> MaintenanceServer<Self> {
        MaintenanceServer::new(MaintenanceService { core })
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, _req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let revision = self.core.sm.read(|s| s.revision());
        Ok(Response::new(AlarmResponse {
            header: Some(self.core.header(revision)),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.core.raft.metrics().borrow().clone();
        let revision = self.core.sm.read(|s| s.revision());
        let db_size = self.core.db_size() as i64;
        Ok(Response::new(StatusResponse {
            header: Some(self.core.header(revision)),
            version: ETCD_VERSION.to_owned(),
            db_size,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let revision = self.core.sm.read(|s| s.revision());
        Ok(Response::new(DefragmentResponse {
            header: Some(self.core.header(revision)),
        }))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (hash, revision) = self.core.sm.read(|s| (s.hash(), s.revision()));
        Ok(Response::new(HashResponse {
            header: Some(self.core.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let asked = req.into_inner().revision;
        let (hashed, revision) = self.core.sm.read(|s| {
            let revision = if asked > 0 { asked } else { s.revision() };
            (s.hash_kv(revision), revision)
        });
        let (hash, compact_revision) = hashed.map_err(|e| crate::api::error::status_of(&e))?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.core.header(revision)),
            hash,
            compact_revision,
        }))
    }
}
