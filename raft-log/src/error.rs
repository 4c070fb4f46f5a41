//! Error type of the crate and its mapping into openraft's `StorageError`.
//!
//! Owns [`Error`] and the small helpers that turn it (or an `io::Error` reported by the
//! background writer) into `openraft::StorageError<NID>` values with the right subject/verb.

use std::io;
use std::path::PathBuf;

use openraft::{AnyError, NodeId, StorageError, StorageIOError};

/// Everything that can go wrong in the log store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// File or directory the operation was about.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },

    /// On-disk data is damaged somewhere it cannot be repaired automatically
    /// (i.e. anywhere except the torn tail of the last segment).
    #[error("corrupt write-ahead log: {0}")]
    Corrupt(String),

    /// An entry could not be serialized.
    #[error("failed to encode record: {0}")]
    Encode(#[from] bincode::error::EncodeError),

    /// A record passed its checksum but could not be deserialized.
    #[error("failed to decode record: {0}")]
    Decode(#[from] bincode::error::DecodeError),

    /// A previous write failed; the store refuses further writes (restart to recover).
    #[error("log writer failed earlier, store is read-only: {0}")]
    WriterFailed(String),

    /// The background writer thread is gone.
    #[error("log writer thread has stopped")]
    WriterGone,

    /// Another `LogStore` (in this or another process) has the directory open.
    #[error("log directory {0} is locked by another LogStore")]
    Locked(PathBuf),

    /// An internal lock was poisoned by a panic in another thread.
    #[error("internal lock poisoned")]
    Poisoned,
}

impl Error {
    /// Build an [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Convert into an `io::Error` (used for `LogFlushed` callbacks).
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        }
    }

    /// Map to a storage error about writing logs.
    pub(crate) fn write_logs<NID: NodeId>(self) -> StorageError<NID> {
        StorageIOError::write_logs(AnyError::new(&self)).into()
    }

    /// Map to a storage error about reading logs.
    pub(crate) fn read_logs<NID: NodeId>(self) -> StorageError<NID> {
        StorageIOError::read_logs(AnyError::new(&self)).into()
    }

    /// Map to a storage error about writing the vote.
    pub(crate) fn write_vote<NID: NodeId>(self) -> StorageError<NID> {
        StorageIOError::write_vote(AnyError::new(&self)).into()
    }

    /// Map to a storage error about reading the vote.
    pub(crate) fn read_vote<NID: NodeId>(self) -> StorageError<NID> {
        StorageIOError::read_vote(AnyError::new(&self)).into()
    }

    /// Map to a generic storage write error (used for `save_committed`).
    pub(crate) fn write<NID: NodeId>(self) -> StorageError<NID> {
        StorageIOError::write(AnyError::new(&self)).into()
    }
}

impl<T> From<std::sync::PoisonError<T>> for Error {
    fn from(_: std::sync::PoisonError<T>) -> Self {
        Error::Poisoned
    }
}

/// Clone an `io::Error` (it is not `Clone`) so one failure can be reported to many waiters.
pub(crate) fn clone_io(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}
