//! `etcdserverpb.Maintenance`: member status (what `etcdctl endpoint status` prints), alarms
//! (raised and cleared through Raft, so every member lists the same; [`watch_quota`] raises
//! NOSPACE on the leader), Hash and HashKV (computed by the store over what this member has
//! applied, so members at the same revision answer the same), Defragment (the store is in
//! memory: nothing to rewrite; answered as etcd answers) and Snapshot (a fresh Raft snapshot
//! of this member streamed as `etcdctl snapshot save` expects; the file's shape is in
//! [`crate::restore`]).

use openraft::async_runtime::WatchReceiver;
use std::path::PathBuf;
use std::sync::Arc;

use proto::etcdserverpb::alarm_request::AlarmAction;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use proto::etcdserverpb::AlarmType;
use proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::InternalRequest;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::routing::Router;
use crate::routing::{forwarded_request, CallCtx, Redirect};

mod snapshot;

/// The etcd version we speak; tools parse it as semver.
pub(crate) const ETCD_VERSION: &str = "3.4.23";

pub(crate) struct MaintenanceService {
    router: Arc<Router>,
    /// The member's data directory: its size (Status) and its snapshot file (Snapshot).
    data_dir: PathBuf,
}

impl MaintenanceService {
    pub(crate) fn new(router: Arc<Router>, data_dir: PathBuf) -> MaintenanceServer<Self> {
        MaintenanceServer::new(MaintenanceService { router, data_dir })
    }
}

/// The chunks of a snapshot, then its sha256.
pub(crate) type SnapshotStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    /// etcd streams its backend as it is at the call; this member builds a Raft snapshot that
    /// covers everything it has applied so far and streams that file from disk (memory: a
    /// couple of chunks).
    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        // Root only, answered as etcd 3.4's authMaintenanceServer (UNKNOWN "auth: ...").
        crate::access::Caller::of(&req)
            .admin_raw(&self.router)
            .await?;
        snapshot::fresh(&self.router).await?;
        let (file, revision) = snapshot::open(&self.data_dir).await?;
        let header = self.router.header(revision);
        Ok(Response::new(snapshot::stream(file, header)))
    }

    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let ctx = CallCtx::of(&req);
        // etcd proposes every Alarm call, a Get too, so a bad token is refused for each.
        crate::access::Caller::of(&req)
            .known_raw(&self.router)
            .await?;
        let r = req.into_inner();
        if r.action == AlarmAction::Get as i32 {
            let (revision, alarms) = self.router.sm().read(|s| (s.revision(), s.alarm_list()));
            return Ok(Response::new(AlarmResponse {
                header: Some(self.router.header(revision)),
                alarms,
            }));
        }
        let ir = InternalRequest {
            request: Some(Ir::Alarm(r)),
        };
        let router = &self.router;
        let resp = router
            .route(
                &ctx,
                || async {
                    match &router.propose(&ir).await?.response {
                        mvcc::Response::Alarm(a) => Ok(a.clone()),
                        _ => Err(Redirect::Fail(Status::internal(
                            "mismatched apply response",
                        ))),
                    }
                },
                |ch| {
                    let req = forwarded_request(r, &ctx);
                    async move {
                        MaintenanceClient::new(ch)
                            .alarm(req)
                            .await
                            .map(Response::into_inner)
                    }
                },
            )
            .await?;
        Ok(Response::new(AlarmResponse {
            header: Some(router.restamp(resp.header)),
            alarms: resp.alarms,
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.router.raft().metrics().borrow_watched().clone();
        let revision = self.router.sm().read(|s| s.revision());
        let db_size = crate::store::disk_usage(&self.data_dir) as i64;
        Ok(Response::new(StatusResponse {
            header: Some(self.router.header(revision)),
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
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        // Root only once auth is on, answered as etcd's authMaintenanceServer answers.
        crate::access::Caller::of(&req)
            .admin_raw(&self.router)
            .await?;
        let revision = self.router.sm().read(|s| s.revision());
        Ok(Response::new(DefragmentResponse {
            header: Some(self.router.header(revision)),
        }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        crate::access::Caller::of(&req)
            .admin_raw(&self.router)
            .await?;
        let (hash, revision) = self.router.sm().read(|s| (s.hash(), s.revision()));
        Ok(Response::new(HashResponse {
            header: Some(self.router.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let asked = req.into_inner().revision;
        let (hashed, revision) = self.router.sm().read(|s| {
            let revision = if asked > 0 { asked } else { s.revision() };
            (s.hash_kv(revision), revision)
        });
        let (hash, compact_revision) = hashed.map_err(|e| crate::errors::status_of(&e))?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.router.header(revision)),
            hash,
            compact_revision,
        }))
    }
}

/// How often the leader compares the store's size with the quota.
const QUOTA_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// etcd's backend quota, on the leader: once the store's estimated size passes
/// `quota_backend_bytes` it proposes NOSPACE in its own name; from the entry on, every member
/// refuses writes (`mvcc`'s capped apply). The check runs every [`QUOTA_CHECK`] when the
/// store changed, so writes in that window still pass (etcd checks each request). Runs until
/// `stop`.
pub(crate) async fn watch_quota(router: Arc<Router>, quota: u64, stop: CancellationToken) {
    let mut checked = -1;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(QUOTA_CHECK) => {}
        }
        let leader = router.raft().metrics().borrow_watched().current_leader;
        if leader != Some(router.member_id()) {
            continue;
        }
        let (revision, over) = router.sm().read(|s| {
            let check = s.revision() != checked && !s.no_space();
            (s.revision(), check && s.size_bytes() > quota)
        });
        checked = revision;
        if !over {
            continue;
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: router.member_id(),
            alarm: AlarmType::Nospace as i32,
        };
        let ir = InternalRequest {
            request: Some(Ir::Alarm(raise)),
        };
        match router.propose(&ir).await {
            Ok(_) => tracing::warn!(quota, "alarm NOSPACE raised: the store passed its quota"),
            // Retried on the next change (or by the next leader).
            Err(_) => checked = -1,
        }
    }
}

/// The members whose HashKV contradicts the leader's: same revision and compact revision,
/// another hash (etcd's rule; a member that could not answer, or compacted differently, is
/// not judged).
pub(crate) fn mismatched(local: (u32, i64), answers: &[(u64, Option<(u32, i64)>)]) -> Vec<u64> {
    answers
        .iter()
        .filter_map(|&(id, answer)| match answer {
            Some((hash, compact)) if compact == local.1 && hash != local.0 => Some(id),
            _ => None,
        })
        .collect()
}

/// etcd's periodic corruption check, on the leader: every `every` it asks every other member
/// of the Raft membership (members added at run time included) for its HashKV at the leader's
/// revision and raises CORRUPT (through Raft) for each member whose hash differs. Runs until
/// `stop`; off when the interval is 0.
pub(crate) async fn check_corruption(
    router: Arc<Router>,
    every: std::time::Duration,
    stop: CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if router.raft().metrics().borrow_watched().current_leader != Some(router.member_id()) {
            continue;
        }
        let (revision, local) = router.sm().read(|s| (s.revision(), s.hash_kv(0)));
        let Ok(local) = local else { continue };
        let mut answers = Vec::new();
        for (id, url) in router.other_members() {
            let Ok(ch) = router.client_channel(&url) else {
                continue;
            };
            let mut client = MaintenanceClient::new(ch);
            let ask = client.hash_kv(HashKvRequest { revision });
            let answer = match tokio::time::timeout(std::time::Duration::from_secs(2), ask).await {
                Ok(Ok(r)) => Some((r.get_ref().hash, r.get_ref().compact_revision)),
                _ => None,
            };
            answers.push((id, answer));
        }
        for id in mismatched(local, &answers) {
            tracing::error!(member = %format!("{id:x}"), revision, "HashKV differs from the leader's: raising CORRUPT");
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: id,
                alarm: AlarmType::Corrupt as i32,
            };
            let ir = InternalRequest {
                request: Some(Ir::Alarm(raise)),
            };
            // Not the leader any more, or no quorum: the next leader's check raises it.
            if router.propose(&ir).await.is_err() {
                tracing::warn!("could not raise CORRUPT");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mismatched;

    #[test]
    fn only_a_different_hash_at_the_same_compaction_is_corruption() {
        let answers = [
            (1, Some((7, 3))), // agrees
            (2, Some((8, 3))), // differs
            (3, Some((8, 4))), // compacted elsewhere: not judged
            (4, None),         // did not answer
        ];
        assert_eq!(mismatched((7, 3), &answers), vec![2]);
        assert!(mismatched((8, 4), &answers[..1]).is_empty());
    }
}
