//! The Raft side of starting a member: openraft's configuration from ours, and forming the
//! cluster on a first start.

use crate::config::NodeConfig;
use crate::raft::Raft;

/// On a member's first start (empty log) every member of the file is written into the initial
/// membership; every member doing so with the same list is safe in openraft.
pub(super) async fn form_cluster(raft: &Raft, config: &NodeConfig) {
    match raft.is_initialized().await {
        Ok(true) | Err(_) => return,
        Ok(false) => {}
    }
    let members = crate::types::initial_members(&config.members);
    if let Err(e) = raft.initialize(members).await {
        tracing::debug!(error = %e, "cluster already formed");
    }
}

pub(super) fn raft_config(config: &NodeConfig) -> Result<openraft::Config, openraft::ConfigError> {
    let r = &config.raft;
    openraft::Config {
        cluster_name: format!("registry-{:x}", config.cluster_id),
        heartbeat_interval: r.heartbeat_ms,
        // etcd's --election-timeout E: a follower that hears nothing for a random [E, 2E)
        // campaigns. openraft (0.9 and 0.10) makes a follower that had a leader wait its leader lease
        // (= election_timeout_max) plus its election timeout (random in [min, max), drawn once
        // per process; checked on a tick of 1.5 heartbeats), and a voter refuses a candidate
        // within that lease. With both taken as E (the old setting) failover took 2.5–3 s
        // where etcd takes 1–2 s. With max = 3E/5 and min = 2E/5 a follower campaigns after
        // [E, 1.2E): never before etcd's earliest, the timeouts of two members still differ by
        // up to E/5 (so they rarely split a vote), and the lease is 6 heartbeats by default.
        election_timeout_min: (r.election_timeout_ms * 2 / 5).max(r.heartbeat_ms + 1),
        election_timeout_max: (r.election_timeout_ms * 3 / 5).max(r.heartbeat_ms + 2),
        install_snapshot_timeout: 10_000,
        max_payload_entries: 1_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_logs),
        max_in_snapshot_log_to_keep: r.logs_to_keep,
        purge_batch_size: 256,
        // The leader replicates its entries as soon as they are submitted to its log, not
        // after its own fsync (leader and follower syncs overlap); the leader still counts
        // itself toward a commit only once its flush is done.
        broadcast_submitted_on_append: Some(true),
        // A member that was leader when it stopped comes back as a follower and must win an
        // election before it leads again. A restored leader may lack entries of its own term
        // that followers hold and acknowledged (it replicated them before its own flush): it
        // would serve linearizable reads at a stale committed index (found by the fault suite,
        // issue 13) and could append entries whose (term, index) collide with those.
        enable_leader_restore: Some(false),
        ..Default::default()
    }
    .validate()
}
