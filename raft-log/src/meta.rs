//! Small metadata files next to the segments.
//!
//! * `meta` — vote and last purged log id. Written atomically and durably (write `meta.tmp`,
//!   fsync, rename, fsync dir) by the writer thread; damage is a hard error on open.
//! * `committed` — last committed log id. Written lazily (tmp + rename, no fsync); damage or
//!   absence just means "unknown" (`None`), which openraft tolerates.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::RaftTypeConfig;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::record::{decode_file, encode_file};
use crate::segment::sync_dir;

/// File name of the durable metadata file.
pub(crate) const META_FILE: &str = "meta";
/// File name of the lazily persisted committed log id.
pub(crate) const COMMITTED_FILE: &str = "committed";

/// Content of the `meta` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Meta<C: RaftTypeConfig> {
    /// Last saved vote.
    pub vote: Option<VoteOf<C>>,
    /// Greatest purged log id.
    pub last_purged: Option<LogIdOf<C>>,
}

/// Read `meta`; a missing file means a fresh store.
pub(crate) fn read_meta<C: RaftTypeConfig>(dir: &Path) -> Result<Meta<C>, Error> {
    let path = dir.join(META_FILE);
    match fs::read(&path) {
        Ok(buf) => {
            decode_file(&buf).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Meta::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Read `committed`; missing or damaged yields `None` (logged).
pub(crate) fn read_committed<C: RaftTypeConfig>(dir: &Path) -> Option<LogIdOf<C>> {
    let path = dir.join(COMMITTED_FILE);
    match fs::read(&path) {
        Ok(buf) => match decode_file::<Option<LogIdOf<C>>>(&buf) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring damaged committed file");
                None
            }
        },
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot read committed file");
            }
            None
        }
    }
}

/// Remove leftovers of interrupted atomic writes.
pub(crate) fn remove_temp_files(dir: &Path) {
    for name in [META_FILE, COMMITTED_FILE] {
        let _ = fs::remove_file(dir.join(format!("{name}.tmp")));
    }
}

/// Replace `dir/name` with `bytes` via a temp file and rename. With `durable`, the temp file
/// and the directory are fsynced so the new content survives a crash once this returns.
pub(crate) fn write_file_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    durable: bool,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Encode the `meta` file content.
pub(crate) fn encode_meta<C: RaftTypeConfig>(meta: &Meta<C>) -> Result<Vec<u8>, Error> {
    encode_file(meta)
}

/// Encode the `committed` file content.
pub(crate) fn encode_committed<C: RaftTypeConfig>(
    c: &Option<LogIdOf<C>>,
) -> Result<Vec<u8>, Error> {
    encode_file(c)
}
