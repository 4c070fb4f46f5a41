//! Snapshots in sled, made durable for real: sled 0.34's `flush` only `sync_file_range`s, so
//! after it every file of the database is `fsync`ed before a snapshot counts as saved (the
//! Raft log behind it is purged afterwards).

use std::fs::File;
use std::path::{Path, PathBuf};

use openraft::{SnapshotMeta, StorageError, StorageIOError};

use crate::raft::{codec, MemberNode, NodeId};

const META: &[u8] = b"meta";

/// A saved snapshot: its metadata and the encoded store.
pub type Saved = (SnapshotMeta<NodeId, MemberNode>, Vec<u8>);
const DATA: &[u8] = b"data";

/// The sled database of a member's state machine.
#[derive(Clone)]
pub struct SnapshotStore {
    db: sled::Db,
    tree: sled::Tree,
    dir: PathBuf,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl SnapshotStore {
    pub fn open(dir: &Path) -> Result<Self, StorageError<NodeId>> {
        let fail = |e: std::io::Error| -> StorageError<NodeId> {
            StorageIOError::read_state_machine(&e).into()
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 * 1024 * 1024)
            .open()
            .map_err(|e| fail(io_err(e)))?;
        let tree = db.open_tree("snapshot").map_err(|e| fail(io_err(e)))?;
        Ok(SnapshotStore {
            db,
            tree,
            dir: dir.to_owned(),
        })
    }

    /// The latest saved snapshot.
    pub fn load(&self) -> Result<Option<Saved>, StorageError<NodeId>> {
        let fail = |e: std::io::Error| -> StorageError<NodeId> {
            StorageIOError::read_snapshot(None, &e).into()
        };
        let Some(meta) = self.tree.get(META).map_err(|e| fail(io_err(e)))? else {
            return Ok(None);
        };
        let (meta, _): (SnapshotMeta<NodeId, MemberNode>, _) =
            bincode::serde::decode_from_slice(&meta, codec()).map_err(|e| fail(io_err(e)))?;
        let data = self.tree.get(DATA).map_err(|e| fail(io_err(e)))?;
        let data = data.ok_or_else(|| fail(io_err("snapshot meta without data")))?;
        Ok(Some((meta, data.to_vec())))
    }

    /// Saves `meta` + `data` atomically and durably.
    pub fn save(
        &self,
        meta: &SnapshotMeta<NodeId, MemberNode>,
        data: &[u8],
    ) -> Result<(), StorageError<NodeId>> {
        let fail = |e: std::io::Error| -> StorageError<NodeId> {
            StorageIOError::write_snapshot(Some(meta.signature()), &e).into()
        };
        let meta_bytes =
            bincode::serde::encode_to_vec(meta, codec()).map_err(|e| fail(io_err(e)))?;
        let mut batch = sled::Batch::default();
        batch.insert(META, meta_bytes);
        batch.insert(DATA, data);
        self.tree.apply_batch(batch).map_err(|e| fail(io_err(e)))?;
        self.db.flush().map_err(|e| fail(io_err(e)))?;
        sync_tree(&self.dir).map_err(fail)
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// fsync every file below `dir`, then the folders themselves.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            sync_tree(&path)?;
        } else {
            match File::open(&path) {
                Ok(f) => f.sync_all()?,
                // sled may remove a file between the listing and the open.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    File::open(dir)?.sync_all()
}
