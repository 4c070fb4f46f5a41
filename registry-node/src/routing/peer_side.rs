//! The routing layer's answers to the member link: read indexes for followers' reads and the
//! writes they forward (see [`LeaderSide`]).

use std::sync::atomic::Ordering;

use proto::registrypb::{ProposeRequest, ProposeResponse, ReadIndexResponse};
use tonic::Status;

use super::{forward, Redirect, Router};
use crate::errors as error;
use crate::raft::peer::server::LeaderSide;

#[tonic::async_trait]
impl LeaderSide for Router {
    async fn read_index(&self) -> Result<ReadIndexResponse, Status> {
        match self.leader_read_index().await {
            Ok(ri) => {
                self.read_stats
                    .read_index_served
                    .fetch_add(1, Ordering::Relaxed);
                Ok(ReadIndexResponse {
                    index: ri.index,
                    term: ri.term,
                    leader_id: ri.leader_id,
                })
            }
            Err(Redirect::Leader(_)) => Err(error::leader_changed()),
            Err(Redirect::NoLeader) => Err(error::no_leader()),
            Err(Redirect::Fail(s)) => Err(s),
        }
    }

    async fn propose(&self, req: ProposeRequest) -> ProposeResponse {
        forward::serve(self, req).await
    }
}
