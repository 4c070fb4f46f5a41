//! Snapshots in one plain file per member, `<state dir>/snapshot`, replaced atomically and
//! durably: written to a temporary file, `fsync`ed, renamed over the old one, and the folder
//! `fsync`ed, before a snapshot counts as saved (the Raft log behind it is purged afterwards).
//!
//! ```text
//!  "RSNAP001" | meta len u32 | meta (bincode) | data len u64 | data | crc32 of all before, u32
//! ```
//!
//! (Snapshots used to live in a sled tree; sled kept the whole encoded snapshot in its cache
//! and ~13 MiB of page table and buffers besides, for a single key. A state folder still
//! holding that database is refused rather than silently ignored.)

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::types::codec;
use crate::types::{LogId, SnapshotMeta};

/// A saved snapshot: its metadata and the encoded store.
pub(super) type Saved = (SnapshotMeta, Vec<u8>);

const MAGIC: &[u8; 8] = b"RSNAP001";
const FILE: &str = "snapshot";
const TEMP: &str = "snapshot.tmp";
/// Files only an old sled database in the state folder has.
const SLED_FILES: [&str; 2] = ["conf", "db"];

/// The snapshot file of a member's state machine.
#[derive(Clone)]
pub(crate) struct SnapshotStore {
    dir: PathBuf,
    /// Serialises saves, and remembers the last log id of the snapshot on disk so that a
    /// build that finishes after a newer snapshot was installed does not replace it.
    saved: Arc<Mutex<Option<LogId>>>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot file: {what}"))
}

impl SnapshotStore {
    /// Opens (creating it if needed) the state folder `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        if SLED_FILES.iter().any(|f| dir.join(f).exists()) && !dir.join(FILE).exists() {
            return Err(io_err(format!(
                "{} holds a sled snapshot database of an older version; start this member \
                 from an empty data folder",
                dir.display()
            )));
        }
        let store = SnapshotStore {
            dir: dir.to_owned(),
            saved: Arc::new(Mutex::new(None)),
        };
        if let Some((meta, _)) = store.load()? {
            *store.lock() = meta.last_log_id;
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<LogId>> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest saved snapshot.
    pub(crate) fn load(&self) -> io::Result<Option<Saved>> {
        let fail = |e: io::Error| io::Error::new(e.kind(), format!("read snapshot: {e}"));
        let mut file = match File::open(self.dir.join(FILE)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(fail)?;
        decode(bytes).map(Some).map_err(fail)
    }

    /// Saves `meta` + `data` atomically and durably, unless the snapshot on disk is newer.
    pub(crate) fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let fail = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("write snapshot at {:?}: {e}", meta.last_log_id),
            )
        };
        let mut saved = self.lock();
        if saved.is_some() && *saved > meta.last_log_id {
            tracing::info!(last = ?meta.last_log_id, "not saved: a newer snapshot is on disk");
            return Ok(());
        }
        let meta_bytes =
            bincode::serde::encode_to_vec(meta, codec()).map_err(|e| fail(io_err(e)))?;
        let meta_len = u32::try_from(meta_bytes.len()).map_err(|e| fail(io_err(e)))?;
        let temp = self.dir.join(TEMP);
        let mut file = File::create(&temp).map_err(fail)?;
        let mut crc = crc32fast::Hasher::new();
        let data_len = (data.len() as u64).to_le_bytes();
        let meta_len = meta_len.to_le_bytes();
        for part in [&MAGIC[..], &meta_len, &meta_bytes, &data_len, data] {
            crc.update(part);
            file.write_all(part).map_err(fail)?;
        }
        file.write_all(&crc.finalize().to_le_bytes())
            .map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        fs::rename(&temp, self.dir.join(FILE)).map_err(fail)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
        *saved = meta.last_log_id;
        Ok(())
    }

    /// Bytes of the snapshot file (0 before the first snapshot).
    #[cfg(test)]
    fn size_on_disk(&self) -> u64 {
        fs::metadata(self.dir.join(FILE)).map_or(0, |m| m.len())
    }
}

/// Splits and checks a snapshot file's bytes; the data is moved out without a copy.
fn decode(mut bytes: Vec<u8>) -> io::Result<Saved> {
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or_else(|| invalid("too short"))?;
    let (body, tail) = bytes.split_at(body_len);
    let stored = u32::from_le_bytes(tail.try_into().map_err(|_| invalid("too short"))?);
    if crc32fast::hash(body) != stored {
        return Err(invalid("checksum mismatch"));
    }
    let rest = body
        .strip_prefix(&MAGIC[..])
        .ok_or_else(|| invalid("bad magic"))?;
    let (meta_len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| invalid("too short"))?;
    let meta_len = u32::from_le_bytes(*meta_len) as usize;
    if rest.len() < meta_len {
        return Err(invalid("meta truncated"));
    }
    let (meta_bytes, rest) = rest.split_at(meta_len);
    let (meta, _): (SnapshotMeta, _) =
        bincode::serde::decode_from_slice(meta_bytes, codec()).map_err(io_err)?;
    let (data_len, data) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| invalid("too short"))?;
    if u64::from_le_bytes(*data_len) != data.len() as u64 {
        return Err(invalid("data length mismatch"));
    }
    let start = body_len - data.len();
    bytes.truncate(body_len);
    bytes.drain(..start);
    Ok((meta, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StoredMembership;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(
                openraft::impls::leader_id_adv::LeaderId {
                    term: 1,
                    node_id: 7,
                },
                index,
            )),
            last_membership: StoredMembership::default(),
        }
    }

    #[test]
    fn saves_loads_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        assert!(store.load().expect("load").is_none());
        assert_eq!(store.size_on_disk(), 0);
        store.save(&meta(10), b"ten").expect("save");
        store.save(&meta(20), b"twenty").expect("save");
        let reopened = SnapshotStore::open(dir.path()).expect("reopen");
        let (m, data) = reopened.load().expect("load").expect("a snapshot");
        assert_eq!((m, data.as_slice()), (meta(20), &b"twenty"[..]));
        assert!(reopened.size_on_disk() > 6);
    }

    #[test]
    fn an_older_snapshot_does_not_replace_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(&meta(20), b"new").expect("save");
        store.save(&meta(10), b"old").expect("save");
        let (m, data) = store.load().expect("load").expect("a snapshot");
        assert_eq!(
            (m.last_log_id, data),
            (meta(20).last_log_id, b"new".to_vec())
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        store.save(&meta(10), b"some data").expect("save");
        let path = dir.path().join(FILE);
        let mut bytes = fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        assert!(store.load().is_err());
        fs::write(&path, &bytes[..5]).expect("write");
        assert!(store.load().is_err());
    }

    #[test]
    fn an_old_sled_state_folder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("conf"), b"segment_size: 524288").expect("write");
        let e = SnapshotStore::open(dir.path()).err().expect("refused");
        assert!(e.to_string().contains("sled"), "{e}");
    }
}
