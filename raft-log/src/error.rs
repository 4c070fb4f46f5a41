//! Error type of the crate and its mapping into `std::io::Error`, the error type of
//! openraft 0.10's storage traits.

use std::io;
use std::path::PathBuf;

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

    /// Convert into an `io::Error` (what openraft's storage traits and the durability
    /// callbacks report); see the `From` impl.
    pub fn into_io(self) -> io::Error {
        self.into()
    }
}

/// openraft 0.10's storage traits speak `io::Error`. The message keeps the whole context
/// (path, what is corrupt, why writes are refused), since openraft logs it as the cause of
/// a fatal storage error; the kind is the underlying one for I/O errors and `InvalidData`
/// for damaged or undecodable data.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::Corrupt(_) | Error::Decode(_) | Error::Encode(_) => io::ErrorKind::InvalidData,
            Error::Locked(_) => io::ErrorKind::WouldBlock,
            Error::WriterFailed(_) | Error::WriterGone | Error::Poisoned => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
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
