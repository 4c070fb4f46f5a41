//! `v3electionpb.Election`: etcd's election service, built as etcd builds it
//! (clientv3/concurrency's Election on this member's own KV, Lease and Watch services; the
//! helpers are [`super::lock`]'s). A campaign of election `n` with lease `L` is the key
//! `n/<L in hex>`; the leader is the oldest key of the prefix, and its value the proclamation.
//! Errors the Go service returns as plain errors are UNKNOWN with the same texts.

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
use proto::mvccpb::event::EventType;
use proto::v3electionpb::election_server::{Election, ElectionServer};
use proto::v3electionpb::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::lock::{
    as_caller, as_go_error, created_at, delete_if_created_at, first_created, owner_key, range_at,
    range_op, session_lease, wait_deletes, watch, Cleanup, Loop,
};

const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER: &str = "\"leader\" field must be provided";

pub(crate) struct ElectionService {
    ch: Channel,
}

impl ElectionService {
    /// The service on `ch`, a channel to this member's own client port.
    pub(crate) fn new(ch: Channel) -> ElectionServer<Self> {
        ElectionServer::new(ElectionService { ch })
    }

    fn prefix(name: &[u8]) -> Vec<u8> {
        [name, b"/"].concat()
    }

    /// Puts `value` on the leader's key if it is still the key created at `leader.rev`.
    async fn proclaim_as(ch: &Loop, leader: &LeaderKey, value: Vec<u8>) -> Result<TxnOk, Status> {
        let txn = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: leader.key.clone(),
                    value,
                    lease: leader.lease,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        };
        let resp = KvClient::new(ch.clone()).txn(txn).await?.into_inner();
        if !resp.succeeded {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(TxnOk(resp.header))
    }
}

struct TxnOk(Option<proto::etcdserverpb::ResponseHeader>);

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        self.campaign_(req).await.map_err(as_go_error)
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        self.proclaim_(req).await.map_err(as_go_error)
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        self.leader_(req).await.map_err(as_go_error)
    }

    type ObserveStream = ReceiverStream<Result<LeaderResponse, Status>>;

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let ch = as_caller(&self.ch, &req);
        let prefix = Self::prefix(&req.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = observe(ch, prefix, &tx) => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        self.resign_(req).await.map_err(as_go_error)
    }
}

impl ElectionService {
    async fn campaign_(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let ch = as_caller(&self.ch, &req);
        let req = req.into_inner();
        let lease = session_lease(&ch, req.lease).await?;
        let prefix = Self::prefix(&req.name);
        let key = owner_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.clone(),
                    value: req.value.clone(),
                    lease,
                    ..Default::default()
                })),
            }],
            failure: vec![range_op(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })],
        };
        let resp = KvClient::new(ch.clone()).txn(txn).await?.into_inner();
        let mut rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        let mut cleanup = Cleanup {
            ch: ch.clone(),
            txn: None,
        };
        let leader = |rev| LeaderKey {
            name: req.name.clone(),
            key: key.clone(),
            rev,
            lease,
        };
        if !resp.succeeded {
            if let Some(kv) = range_at(&resp, 0)?.kvs.first() {
                rev = kv.create_revision;
                if kv.value != req.value {
                    // Resign (delete the key) if the proclamation fails.
                    cleanup.txn = Some(delete_if_created_at(&key, rev));
                    Self::proclaim_as(&ch, &leader(rev), req.value.clone()).await?;
                }
            }
        }
        // A campaign abandoned while it waits resigns.
        cleanup.txn = Some(delete_if_created_at(&key, rev));
        wait_deletes(&ch, &prefix, rev - 1).await?;
        cleanup.txn = None;
        Ok(Response::new(CampaignResponse {
            header: resp.header,
            leader: Some(leader(rev)),
        }))
    }

    async fn proclaim_(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let ch = as_caller(&self.ch, &req);
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let TxnOk(header) = Self::proclaim_as(&ch, &leader, req.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader_(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let ch = as_caller(&self.ch, &req);
        let prefix = Self::prefix(&req.into_inner().name);
        let resp = KvClient::new(ch.clone())
            .range(first_created(&prefix))
            .await?
            .into_inner();
        let kv = resp
            .kvs
            .into_iter()
            .next()
            .ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    async fn resign_(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let ch = as_caller(&self.ch, &req);
        let leader = req
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER))?;
        let resp = KvClient::new(ch.clone())
            .txn(delete_if_created_at(&leader.key, leader.rev))
            .await?
            .into_inner();
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

/// concurrency's `Election.observe`: the leader now (or the first one to come), then each
/// proclamation of that leader until its key is deleted, then the next leader. Ends on any
/// error, as the Go channel closes.
async fn observe(
    ch: Loop,
    prefix: Vec<u8>,
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Option<()> {
    let mut kv_client = KvClient::new(ch.clone());
    loop {
        let resp = kv_client
            .range(first_created(&prefix))
            .await
            .ok()?
            .into_inner();
        let (mut header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header?, kv),
            None => {
                let from = resp.header.as_ref()?.revision;
                let mut events = watch(&ch, &prefix, super::lock::prefix_end(&prefix), from)
                    .await
                    .ok()?;
                loop {
                    let wr = events.next().await?.ok()?;
                    let put = wr
                        .events
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = put {
                        let mut header = wr.header?;
                        header.revision = kv.mod_revision;
                        break (header, kv);
                    }
                }
            }
        };
        let key = kv.key.clone();
        tx.send(Ok(LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        }))
        .await
        .ok()?;
        let mut events = watch(&ch, &key, Vec::new(), header.revision + 1)
            .await
            .ok()?;
        'leader: loop {
            let wr = events.next().await?.ok()?;
            for ev in wr.events {
                if ev.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                header = wr.header?;
                tx.send(Ok(LeaderResponse {
                    header: Some(header),
                    kv: ev.kv,
                }))
                .await
                .ok()?;
            }
        }
    }
}
