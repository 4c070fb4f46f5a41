//! The snapshot file of `etcdctl snapshot save` and `registry-node --restore FILE`.
//!
//! `Maintenance.Snapshot` (api/maintenance.rs) streams a member's Raft snapshot file as it is on
//! disk (store/snapshot.rs: `"RSNAP001" | meta | data | crc32`, the data being mvcc's snapshot
//! encoding: every key revision, the current and compacted revision, the leases with their
//! TTLs, the alarms), then zeros up to a multiple of [`SECTOR`] bytes, then the sha256 of all of
//! that, in [`CHUNK`]-byte messages. That is etcd 3.4's shape: its file is a bolt database (a
//! multiple of 512 bytes) plus the sha256, and `etcdctl snapshot save` refuses a stream whose
//! length is not `512 k + 32` ("sha256 checksum not found").
//!
//! A restore (as `etcdctl snapshot restore --initial-cluster ...`) checks the sha256 (a
//! truncated or damaged file is refused), then writes each member's fresh data directory: the
//! same store under a Raft snapshot whose membership is the cluster file's, so the new cluster
//! has the file's ids and members, not the old one's. Every key revision, the store's revision
//! and the leases (their keys still attached; etcd's restore keeps its lease bucket too) come
//! back; the Raft log starts empty after the snapshot, as etcd's restored WAL holds only the
//! new membership.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::ClusterState;
use crate::config::NodeConfig;
use crate::store::SnapshotStore;
use crate::types::{LogId, SnapshotMeta, StoredMembership};

/// The file is padded to a multiple of this (etcd: "a minimum disk sector size").
pub(crate) const SECTOR: u64 = 512;
/// Bytes of blob per `SnapshotResponse`, as etcd's `snapshotSendBufferSize`.
pub(crate) const CHUNK: usize = 32 * 1024;
/// Length of the sha256 that ends the file.
pub(crate) const SHA_LEN: usize = 32;
/// store/snapshot.rs's magic: the file a member keeps its Raft snapshot in starts with it.
const MAGIC: &[u8; 8] = b"RSNAP001";
/// Bytes of the snapshot file before the meta: magic and the meta's length.
const HEAD: usize = MAGIC.len() + 4;

/// Zeros that bring a payload of `len` bytes to a multiple of [`SECTOR`].
pub(crate) fn padding(len: u64) -> u64 {
    (SECTOR - len % SECTOR) % SECTOR
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreError {
    #[error("cannot read snapshot file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "snapshot file {path} has no sha256 at its end ({size} bytes is not a multiple of 512 \
         plus 32): it is truncated, or not a file of `etcdctl snapshot save`"
    )]
    MissingHash { path: PathBuf, size: u64 },
    #[error(
        "snapshot file {path} is damaged or truncated: its sha256 is {expected}, its content \
         hashes to {got}"
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error(
        "snapshot file {path} is not a registry snapshot ({reason}); a real etcd's file is \
         restored with `etcdctl snapshot restore`"
    )]
    NotOurs { path: PathBuf, reason: String },
    #[error("snapshot file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "data dir {path} is not empty: a restore creates a new member's data; remove it or \
         choose another --data-dir"
    )]
    NotEmpty { path: PathBuf },
    #[error(
        "--restore makes a new cluster from the file; member {name} cannot also join an \
         existing one (--initial-cluster-state existing)"
    )]
    JoinsExisting { name: String },
    #[error("cannot write data dir {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a restore wrote for one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restored {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    /// The store's revision in the file (writes continue at the next one).
    pub(crate) revision: i64,
}

/// Restores `file` into a fresh data directory for each of `configs` (their cluster's members
/// become the new membership). Nothing is written unless every data directory is absent or
/// empty and the file is whole.
pub(crate) fn restore(file: &Path, configs: &[NodeConfig]) -> Result<Vec<Restored>, RestoreError> {
    for c in configs {
        if c.initial_cluster_state == ClusterState::Existing {
            return Err(RestoreError::JoinsExisting {
                name: c.name.clone(),
            });
        }
        if !is_empty_dir(&c.data_dir) {
            return Err(RestoreError::NotEmpty {
                path: c.data_dir.clone(),
            });
        }
    }
    let Some(first) = configs.first() else {
        return Ok(Vec::new());
    };
    let (meta, data) = read_file(file)?;
    // Decoded once, to refuse a file whose store does not decode before any member has it.
    let invalid = |reason: String| RestoreError::Invalid {
        path: file.to_owned(),
        reason,
    };
    let store = mvcc::Store::decode_snapshot(mvcc_config(first), &data)
        .map_err(|e| invalid(format!("the store does not decode: {e}")))?;
    let revision = store.revision();
    drop(store);
    // The same log id on every member (their snapshots must agree on it): the old index, so
    // lease ids seeded from log indexes keep growing, under a leader id no term reaches (as
    // openraft's own first entry), so the new cluster's first election starts at term 1.
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0).max(1);
    let log_id = LogId::new(
        openraft::impls::leader_id_adv::LeaderId {
            term: 0,
            node_id: 0,
        },
        index,
    );
    let members = crate::types::initial_members(&first.members);
    let new_meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), openraft::Membership::from(members)),
    };
    let mut out = Vec::new();
    for c in configs {
        // Node::serve keeps the state machine under `<data dir>/state`.
        let state = c.data_dir.join("state");
        let write = |source| RestoreError::Write {
            path: c.data_dir.clone(),
            source,
        };
        SnapshotStore::open(&state)
            .and_then(|s| s.save(&new_meta, &data))
            .map_err(write)?;
        tracing::info!(member = %c.name, data_dir = %c.data_dir.display(), revision, index,
            "restored snapshot {}", file.display());
        out.push(Restored {
            name: c.name.clone(),
            data_dir: c.data_dir.clone(),
            revision,
        });
    }
    Ok(out)
}

/// A missing directory counts as empty (it is created).
fn is_empty_dir(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn mvcc_config(c: &NodeConfig) -> mvcc::Config {
    mvcc::Config {
        max_txn_ops: c.raft.max_txn_ops,
        min_lease_ttl: c.min_lease_ttl(),
    }
}

/// Checks the file's sha256 and framing and returns the Raft snapshot it holds.
fn read_file(path: &Path) -> Result<(SnapshotMeta, Vec<u8>), RestoreError> {
    let mut bytes = std::fs::read(path).map_err(|source| RestoreError::Read {
        path: path.to_owned(),
        source,
    })?;
    let len = snapshot_len(path, &bytes)?;
    bytes.truncate(len);
    // store/snapshot.rs reads (and checks the crc32 of) its own file: the snapshot goes
    // through it from a scratch folder rather than being parsed a second way here.
    let scratch = tempfile::tempdir().map_err(|source| RestoreError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |e: std::io::Error| RestoreError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::write(scratch.path().join("snapshot"), &bytes).map_err(invalid)?;
    drop(bytes);
    SnapshotStore::open(scratch.path())
        .and_then(|s| s.load())
        .map_err(invalid)?
        .ok_or_else(|| invalid(std::io::Error::other("no snapshot in the file")))
}

/// The length of the Raft snapshot file at the start of `bytes` (a whole save), after checking
/// the sha256 at the end and that only padding lies between the two.
pub(crate) fn snapshot_len(path: &Path, bytes: &[u8]) -> Result<usize, RestoreError> {
    let size = bytes.len() as u64;
    if size % SECTOR != SHA_LEN as u64 {
        return Err(RestoreError::MissingHash {
            path: path.to_owned(),
            size,
        });
    }
    let (payload, expected) = bytes.split_at(bytes.len() - SHA_LEN);
    let got = Sha256::digest(payload);
    if got.as_slice() != expected {
        return Err(RestoreError::HashMismatch {
            path: path.to_owned(),
            expected: hex(expected),
            got: hex(&got),
        });
    }
    let not_ours = |reason: &str| RestoreError::NotOurs {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !payload.starts_with(MAGIC) {
        return Err(not_ours("no RSNAP001 header"));
    }
    let u32_at = |at: usize| -> Option<u64> {
        let b = payload.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes(b.try_into().ok()?)))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            payload.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let end = u32_at(MAGIC.len())
        .and_then(|meta| {
            let data_at = HEAD as u64 + meta;
            let data = u64_at(usize::try_from(data_at).ok()?)?;
            // The data, then the crc32.
            data_at.checked_add(8)?.checked_add(data)?.checked_add(4)
        })
        .and_then(|end| usize::try_from(end).ok())
        .filter(|&end| end <= payload.len())
        .ok_or_else(|| not_ours("lengths past the end of the file"))?;
    let pad = &payload[end..];
    if pad.len() as u64 >= SECTOR || pad.iter().any(|&b| b != 0) {
        return Err(not_ours("bytes after the snapshot that are not padding"));
    }
    Ok(end)
}

/// The store revision recorded at the start of a snapshot file's data (0 if absent, as
/// proto3 leaves it out): mvcc's encoding writes field 1, the revision, first. `head` is the
/// file's first bytes, at least up to the data's first 11.
pub(crate) fn revision_in(head: &[u8]) -> Option<i64> {
    let meta = u32::from_le_bytes(head.get(MAGIC.len()..HEAD)?.try_into().ok()?);
    let data_at = HEAD.checked_add(usize::try_from(meta).ok()?)?;
    let data_len = u64::from_le_bytes(head.get(data_at..data_at + 8)?.try_into().ok()?);
    let mut data = head.get(data_at + 8..)?;
    if data_len == 0 || data.first() != Some(&0x08) {
        return Some(0);
    }
    data = &data[1..];
    prost::encoding::decode_varint(&mut data)
        .ok()
        .map(|v| v as i64)
}

/// Bytes [`revision_in`] needs past the meta's length.
pub(crate) fn head_len(meta_len: u32) -> usize {
    HEAD + meta_len as usize + 8 + 11
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests;
