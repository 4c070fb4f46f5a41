//! `etcdserverpb.Cluster`: the member list, from the Raft membership this member knows.

use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;

use proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use proto::etcdserverpb::{Member, MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

use crate::node::Core;

pub struct ClusterService {
    core: Arc<Core>,
}

impl ClusterService {
    pub fn new(core: Arc<Core>) -> ClusterServer<Self> {
        ClusterServer::new(ClusterService { core })
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let metrics = self.core.raft.metrics().borrow_watched().clone();
        let members = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                name: node.name.clone(),
                peer_urls: vec![node.peer_url.clone()],
                client_urls: vec![node.client_url.clone()],
                is_learner: false,
            })
            .collect();
        let revision = self.core.sm.read(|s| s.revision());
        Ok(Response::new(MemberListResponse {
            header: Some(self.core.header(revision)),
            members,
        }))
    }
}
