//! Starting a member as etcd does: `--initial-cluster NAME=URL,...` and
//! `--initial-cluster-state new|existing`. A `new` member forms the cluster with the others
//! listed (the cluster file's behaviour); an `existing` one was added with `member add` first:
//! it asks the running members, on their peer URLs, for the member list
//! (etcd's `GetClusterFromRemotePeers`), takes the id the member whose peer URL is its own has
//! and the cluster id, remembers both in its data directory (`member.json`), and does not
//! initialize Raft: the leader brings it up to date by snapshot and log. Once in the
//! membership, [`publish_loop`] records its name and client URL there (etcd's publish), which
//! makes it "started" in `etcdctl member list`.

use openraft::async_runtime::WatchReceiver;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proto::etcdserverpb::cluster_client::ClusterClient;
use proto::etcdserverpb::{Member, MemberListRequest};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::config::{
    ClusterFile, ClusterState, ConfigError, MemberSection, MemberSpec, NodeConfig,
};
use crate::raft::NodeId;
use crate::routing::Router;
use crate::tls::ClientTls;

/// How long a joining member keeps asking the running members for the member list.
const DISCOVERY: Duration = Duration::from_secs(30);

/// What a joined member keeps in its data directory: ids it cannot derive from its flags.
#[derive(Debug, Serialize, Deserialize)]
struct Joined {
    id: NodeId,
    cluster_id: u64,
}

const JOINED_FILE: &str = "member.json";

/// The config of member `name` under `--initial-cluster` (etcd's `name=peerURL,...`): the
/// cluster file gives the token, data dir and timers; client URLs come from the file's member
/// of the same name if any, else this member's own listen address, else they are published
/// by each member when it starts.
pub(crate) fn config_with_initial_cluster(
    file: &ClusterFile,
    path: &Path,
    name: &str,
    initial_cluster: &str,
    listen_client: Option<std::net::SocketAddr>,
) -> Result<NodeConfig, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        path: path.to_owned(),
        key: "--initial-cluster".into(),
        reason,
    };
    let mut members: Vec<MemberSection> = Vec::new();
    for part in initial_cluster.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((n, url)) = part.trim().split_once('=') else {
            return Err(invalid(format!("{part:?} is not NAME=PEER_URL")));
        };
        if n.is_empty() || members.iter().any(|m| m.name == n) {
            return Err(invalid(format!(
                "{n:?}: each member once, with one peer URL, and a non-empty name"
            )));
        }
        crate::config::url_addr(url).map_err(invalid)?;
        let known = file.members.iter().find(|m| m.name == n);
        let client_url = match (known, listen_client) {
            (Some(m), _) => m.client_url.clone(),
            (None, Some(a)) if n == name => format!("http://{a}"),
            _ => String::new(),
        };
        if n == name && client_url.is_empty() {
            return Err(invalid(format!(
                "member {name:?} is not in the cluster file: give --listen-client"
            )));
        }
        members.push(MemberSection {
            name: n.to_owned(),
            client_url,
            peer_url: url.to_owned(),
        });
    }
    if !members.iter().any(|m| m.name == name) {
        return Err(invalid(format!(
            "couldn't find local name {name:?} in the initial cluster configuration"
        )));
    }
    let file = ClusterFile {
        members,
        ..file.clone()
    };
    file.node_config(path, name)
}

/// Before Raft starts: a member started with `existing` takes its id and cluster id from its
/// data directory or, on its first start, from the running cluster.
pub(crate) async fn prepare(mut config: NodeConfig) -> Result<NodeConfig, String> {
    if config.initial_cluster_state != ClusterState::Existing {
        return Ok(config);
    }
    let saved = config.data_dir.join(JOINED_FILE);
    let mut listed = None;
    let joined = match std::fs::read(&saved) {
        Ok(bytes) => serde_json::from_slice::<Joined>(&bytes)
            .map_err(|e| format!("{}: {e}", saved.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (joined, members) = discover(&config).await?;
            let bytes = serde_json::to_vec(&joined).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&config.data_dir)
                .and_then(|()| std::fs::write(&saved, bytes))
                .map_err(|e| format!("{}: {e}", saved.display()))?;
            listed = Some(members);
            joined
        }
        Err(e) => return Err(format!("{}: {e}", saved.display())),
    };
    let me = config.member(config.id).cloned();
    config.id = joined.id;
    config.cluster_id = joined.cluster_id;
    // The running cluster's ids replace the provisional ones derived from the flags (the peer
    // link accepts calls from these before the Raft membership reaches this member); this
    // member keeps its own name and client URL, which it publishes once it runs.
    if let Some(members) = listed {
        config.members = members
            .iter()
            .filter(|m| m.id != joined.id)
            .map(|m| MemberSpec {
                id: m.id,
                name: m.name.clone(),
                client_url: m.client_urls.first().cloned().unwrap_or_default(),
                peer_url: m.peer_urls.first().cloned().unwrap_or_default(),
            })
            .collect();
    } else if let Some(me) = &me {
        config.members.retain(|m| m.peer_url != me.peer_url);
    }
    // Members whose client URL is not known here (unstarted, or not in the cluster file) are
    // left to the Raft membership, which has them (TLS setup checks every listed URL).
    config.members.retain(|m| !m.client_url.is_empty());
    if let Some(me) = me {
        config.members.push(MemberSpec {
            id: joined.id,
            ..me
        });
    }
    tracing::info!(id = %format!("{:x}", joined.id), cluster = %format!("{:x}", joined.cluster_id), "joining a running cluster");
    Ok(config)
}

/// Asks the other members listed, on their peer URLs, which member has this member's peer URL.
async fn discover(config: &NodeConfig) -> Result<(Joined, Vec<Member>), String> {
    let Some(me) = config.member(config.id) else {
        return Err("this member is not in its own member list".into());
    };
    let peers: Vec<&MemberSpec> = config.members.iter().filter(|m| m.id != me.id).collect();
    if peers.is_empty() {
        return Err(
            "--initial-cluster-state existing needs the running members in --initial-cluster"
                .into(),
        );
    }
    // The peer link's TLS: https:// peer URLs are asked over it, as the member link will be.
    let tls = crate::tls::Tls::build(config)?;
    let deadline = Instant::now() + DISCOVERY;
    let mut last = String::new();
    loop {
        for peer in &peers {
            match member_list(&tls.peer_client, &peer.peer_url).await {
                Ok((cluster_id, members)) => {
                    match members.iter().find(|m| m.peer_urls.contains(&me.peer_url)) {
                        Some(m) => {
                            let joined = Joined {
                                id: m.id,
                                cluster_id,
                            };
                            return Ok((joined, members));
                        }
                        None => {
                            last = format!(
                                "member {} lists no member with peer URL {} (add it first: \
                             etcdctl member add {} --peer-urls={})",
                                peer.name, me.peer_url, me.name, me.peer_url
                            )
                        }
                    }
                }
                Err(e) => last = format!("{}: {e}", peer.peer_url),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "could not retrieve cluster information from the given URLs: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The member list a running member serves on its peer URL.
async fn member_list(tls: &ClientTls, peer_url: &str) -> Result<(u64, Vec<Member>), String> {
    let endpoint = tls
        .endpoint(peer_url)?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let resp = ClusterClient::new(channel)
        .member_list(MemberListRequest::default())
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    let cluster_id = resp.header.map(|h| h.cluster_id).unwrap_or_default();
    Ok((cluster_id, resp.members))
}

/// What a member publishes and how: `publish` records (id, name, client URL) in the
/// membership through the leader. It is the cluster service's (`api::cluster::publish`),
/// handed in by `node.rs` so that membership does not depend on the API layer.
pub(crate) struct Publish {
    pub(crate) name: String,
    pub(crate) client_url: String,
    pub(crate) publish: PublishFn,
}

/// Records (id, name, client URL) in the membership; see [`Publish`].
pub(crate) type PublishFn = Box<
    dyn Fn(NodeId, String, String) -> futures::future::BoxFuture<'static, Result<(), Status>>
        + Send
        + Sync,
>;

/// Keeps this member's name and client URL in the Raft membership (etcd's publish): a member
/// added by `member add` is listed unstarted until it runs this; a member restarted with
/// another client URL updates it. Initial members of the cluster file are already recorded,
/// so this does nothing for them. A member the committed membership no longer holds, once it
/// was in it, has been removed: it stops (cancels `stop`, the member's shutdown), as etcd's removed member
/// does, instead of serving reads it can no longer keep up to date.
pub(crate) async fn publish_loop(
    router: Arc<Router>,
    me: Publish,
    peer_tls: ClientTls,
    stop: CancellationToken,
) {
    let Publish {
        name,
        client_url,
        publish,
    } = me;
    let me = router.member_id();
    let mut metrics = router.raft().metrics();
    let mut was_member = false;
    loop {
        let (due, ask) = {
            let m = metrics.borrow_watched();
            // Only after it was in it: a joining member replays memberships from before it
            // was added.
            let committed = m
                .committed_membership_config
                .membership()
                .get_node(&me)
                .is_some();
            let effective = m.membership_config.membership();
            let removed = was_member
                && ((!committed && m.committed_membership_config.log_id().is_some())
                    || effective.get_node(&me).is_none());
            was_member |= committed;
            let listed = effective.get_node(&me);
            let due = m.current_leader.is_some()
                && listed.is_some_and(|n| n.name != name || n.client_url != client_url);
            // A removed member may never hear of its removal (the leader stops replicating to
            // it): without a leader, it asks the others, as etcd learns it from its peers.
            let ask = (removed || (was_member && m.current_leader.is_none())).then(|| {
                effective
                    .nodes()
                    .filter(|(id, _)| **id != me)
                    .map(|(_, n)| n.peer_url.clone())
                    .collect::<Vec<_>>()
            });
            (due, ask)
        };
        if let Some(peers) = ask {
            if removed_by_peers(&peer_tls, me, &peers).await {
                tracing::error!("the member has been permanently removed from the cluster");
                stop.cancel();
                return;
            }
        }
        if due {
            match publish(me, name.clone(), client_url.clone()).await {
                Ok(()) => tracing::info!(%name, %client_url, "published to the cluster"),
                Err(s) => tracing::debug!(error = %s.message(), "publish failed; retrying"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = metrics.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Whether most of the other members answer, on their peer URLs, with a member list that
/// lacks `me`. A lagging member may still list it, a cut-off one answers nothing: neither
/// counts as removal.
async fn removed_by_peers(tls: &ClientTls, me: NodeId, peers: &[String]) -> bool {
    let mut without_me = 0;
    for url in peers {
        if let Ok((_, members)) = member_list(tls, url).await {
            if !members.iter().any(|m| m.id == me) {
                without_me += 1;
            }
        }
    }
    !peers.is_empty() && without_me > peers.len() / 2
}

/// Resolves once any of `members` stops by itself (removed from the cluster); never if none.
pub(crate) async fn any_stopped(members: Vec<CancellationToken>) {
    if members.is_empty() {
        return std::future::pending().await;
    }
    let stops = members.into_iter().map(|t| Box::pin(t.cancelled_owned()));
    futures::future::select_all(stops).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[cluster]
token = "t"
data_dir = "data"

[[member]]
name = "cd0"
client_url = "http://127.0.0.1:2379"
peer_url = "http://127.0.0.1:2380"
"#;

    #[test]
    fn initial_cluster_is_etcds_syntax_with_clear_errors() {
        let p = Path::new("c.toml");
        let f = ClusterFile::parse(p, FILE).expect("valid file");
        let ic = "cd0=http://127.0.0.1:2380,cd3=http://127.0.0.1:2390";
        let listen = Some("127.0.0.1:2389".parse().expect("addr"));
        let c = config_with_initial_cluster(&f, p, "cd3", ic, listen).expect("valid");
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.peer_addr, "127.0.0.1:2390".parse().expect("addr"));
        let me = c.member(c.id).expect("listed");
        assert_eq!(me.client_url, "http://127.0.0.1:2389");
        let cd0 = c.members.iter().find(|m| m.name == "cd0").expect("cd0");
        assert_eq!(cd0.client_url, "http://127.0.0.1:2379", "from the file");
        let e = config_with_initial_cluster(&f, p, "cd4", ic, listen).expect_err("not listed");
        assert!(
            e.to_string().contains("couldn't find local name \"cd4\""),
            "{e}"
        );
        let e = config_with_initial_cluster(&f, p, "cd3", ic, None).expect_err("no client");
        assert!(e.to_string().contains("--listen-client"), "{e}");
        let e = config_with_initial_cluster(&f, p, "cd3", "cd3", listen).expect_err("no url");
        assert!(e.to_string().contains("NAME=PEER_URL"), "{e}");
        let twice = format!("{ic},cd3=http://127.0.0.1:2391");
        assert!(config_with_initial_cluster(&f, p, "cd3", &twice, listen).is_err());
    }
}
