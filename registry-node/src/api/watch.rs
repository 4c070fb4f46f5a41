//! `etcdserverpb.Watch`: the service opens a stream and hands it to the watch hub
//! ([`crate::watch`]), which serves every watch of the stream.

use std::sync::Arc;

use proto::etcdserverpb::watch_server::{Watch, WatchServer};
use proto::etcdserverpb::{WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::access::Caller;
use crate::errors as error;
use crate::routing::{requires_leader, Redirect, Router};
use crate::watch::{WatchSettings, WatchStream};

pub(crate) struct WatchService {
    router: Arc<Router>,
    settings: WatchSettings,
}

impl WatchService {
    pub(crate) fn new(router: Arc<Router>, settings: WatchSettings) -> WatchServer<Self> {
        WatchServer::new(WatchService { router, settings })
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        if requires_leader(&req)
            && matches!(self.router.leader_redirect(), Some(Redirect::NoLeader))
        {
            return Err(error::no_leader());
        }
        let needs_leader = requires_leader(&req);
        let (tx, rx) = mpsc::channel(1024);
        let stream = WatchStream::new(
            Caller::of(&req),
            needs_leader,
            self.router.clone(),
            self.settings.clone(),
            tx,
        );
        tokio::spawn(stream.run(req.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
