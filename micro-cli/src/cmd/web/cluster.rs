//! The registry itself as the dashboard shows it: members (etcd's Cluster.MemberList, then
//! Maintenance.Status on each member: leader, term, revision) and leases (Lease.LeaseLeases,
//! then Lease.TimeToLive with keys on each). Plain etcd v3 calls, so the page reads our registry
//! and a real etcd alike, as `etcdctl member list`, `endpoint status` and `lease timetolive
//! --keys` do.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use micro::registry::normalize;
use micro::Registry;
use proto::etcdserverpb::cluster_client::ClusterClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::{
    LeaseLeasesRequest, LeaseTimeToLiveRequest, Member, MemberListRequest, StatusRequest,
};
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

/// Leases asked for their TTL per refresh; any more are counted, not listed.
const MAX_LEASES: usize = 200;

/// Connections to the configured members and to any member URL the member list names.
pub(crate) struct Cluster {
    configured: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
    timeout: Duration,
}

/// What `/api/registry` answers.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Status {
    members: Vec<MemberStatus>,
    leases: Vec<LeaseStatus>,
    /// Leases not listed (over [`MAX_LEASES`]).
    more_leases: usize,
    /// Whatever could not be read, in words.
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct MemberStatus {
    id: String,
    name: String,
    client_urls: Vec<String>,
    peer_urls: Vec<String>,
    leader: bool,
    term: u64,
    revision: i64,
    raft_index: u64,
    version: String,
    db_size: i64,
    /// Why Maintenance.Status failed on this member (then the numbers above are 0).
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct LeaseStatus {
    id: String,
    ttl: i64,
    granted_ttl: i64,
    keys: Vec<String>,
}

impl Cluster {
    /// Over the member URLs `registry` was configured with.
    pub(crate) fn new(registry: &Registry, timeout: Duration) -> anyhow::Result<Cluster> {
        let cluster = Cluster {
            configured: registry.endpoints(),
            channels: Mutex::default(),
            timeout,
        };
        for url in &cluster.configured {
            // Fails early on a malformed address rather than on every page refresh.
            cluster.channel(url)?;
        }
        Ok(cluster)
    }

    fn channel(&self, url: &str) -> anyhow::Result<Channel> {
        let url = normalize(url);
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| anyhow::anyhow!("connection table poisoned"))?;
        if let Some(channel) = channels.get(&url) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(url.clone())?
            .connect_timeout(self.timeout)
            .connect_lazy();
        channels.insert(url, channel.clone());
        Ok(channel)
    }

    /// `op` on the configured members in turn until one answers.
    async fn first<T, F, Fut>(&self, what: &str, op: F) -> anyhow::Result<T>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut failures = Vec::new();
        for url in &self.configured {
            match self.bounded(self.channel(url)?, &op).await {
                Ok(value) => return Ok(value),
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        anyhow::bail!("{what}: no member answered ({})", failures.join("; "))
    }

    async fn bounded<T, F, Fut>(&self, channel: Channel, op: &F) -> anyhow::Result<T>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout, op(channel)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(status)) => Err(anyhow::anyhow!("{:?}: {}", status.code(), status.message())),
            Err(_) => Err(anyhow::anyhow!("no answer within {:?}", self.timeout)),
        }
    }

    /// Members and leases, each part as far as it could be read.
    pub(crate) async fn status(&self) -> Status {
        let mut status = Status::default();
        let (members, leases) = tokio::join!(self.members(), self.leases());
        match members {
            Ok(members) => status.members = members,
            Err(e) => status.errors.push(format!("{e:#}")),
        }
        match leases {
            Ok((leases, more)) => {
                status.leases = leases;
                status.more_leases = more;
            }
            Err(e) => status.errors.push(format!("{e:#}")),
        }
        status
    }

    async fn members(&self) -> anyhow::Result<Vec<MemberStatus>> {
        let list = self
            .first("member list", |ch| async move {
                ClusterClient::new(ch)
                    .member_list(MemberListRequest::default())
                    .await
            })
            .await?
            .into_inner();
        let mut members = join_all(list.members.into_iter().map(|m| self.member(m))).await;
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(members)
    }

    async fn member(&self, member: Member) -> MemberStatus {
        let mut status = MemberStatus {
            id: format!("{:x}", member.id),
            name: member.name,
            client_urls: member.client_urls,
            peer_urls: member.peer_urls,
            leader: false,
            term: 0,
            revision: 0,
            raft_index: 0,
            version: String::new(),
            db_size: 0,
            error: None,
        };
        let Some(url) = status.client_urls.first() else {
            status.error = Some("no client URL".to_owned());
            return status;
        };
        let answer = match self.channel(url) {
            Ok(channel) => {
                let op = |ch| async move {
                    MaintenanceClient::new(ch)
                        .status(StatusRequest::default())
                        .await
                };
                self.bounded(channel, &op).await
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                status.leader = answer.leader == member.id;
                status.term = answer.raft_term;
                status.revision = answer.header.map(|h| h.revision).unwrap_or_default();
                status.raft_index = answer.raft_index;
                status.version = answer.version;
                status.db_size = answer.db_size;
            }
            Err(e) => status.error = Some(format!("{e:#}")),
        }
        status
    }

    async fn leases(&self) -> anyhow::Result<(Vec<LeaseStatus>, usize)> {
        let mut ids: Vec<i64> = self
            .first("lease list", |ch| async move {
                LeaseClient::new(ch)
                    .lease_leases(LeaseLeasesRequest::default())
                    .await
            })
            .await?
            .into_inner()
            .leases
            .into_iter()
            .map(|l| l.id)
            .collect();
        ids.sort_unstable();
        let more = ids.len().saturating_sub(MAX_LEASES);
        ids.truncate(MAX_LEASES);
        let answers = join_all(ids.into_iter().map(|id| {
            self.first("lease time-to-live", move |ch| async move {
                LeaseClient::new(ch)
                    .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
                    .await
            })
        }))
        .await;
        let leases = answers
            .into_iter()
            .filter_map(Result::ok)
            .map(|a| a.into_inner())
            // TTL -1: revoked or expired between the list and this question.
            .filter(|a| a.ttl >= 0)
            .map(|a| LeaseStatus {
                id: format!("{:x}", a.id),
                ttl: a.ttl,
                granted_ttl: a.granted_ttl,
                keys: a
                    .keys
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect(),
            })
            .collect();
        Ok((leases, more))
    }
}
