//! Public configuration ([`LogOptions`]) and statistics ([`LogStats`]) types of the store.

/// Tuning knobs of a [`LogStore`](crate::LogStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Roll to a new segment once the current one reaches this size (default 64 MiB).
    pub segment_bytes: u64,
    /// Keep at most this many recent entries in memory (default 8192). Entries not yet
    /// written are always kept, whatever the budget.
    pub cache_entries: usize,
    /// Keep at most this many bytes (encoded size) of recent entries in memory (default 64 MiB).
    pub cache_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            cache_entries: 8192,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A snapshot of the store's counters and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// `fdatasync` calls on segment files.
    pub syncs: u64,
    /// `fsync` calls on the directory.
    pub dir_syncs: u64,
    /// Durable rewrites of the `meta` file (vote / purge).
    pub meta_writes: u64,
    /// Writer batches (group commits).
    pub batches: u64,
    /// Jobs (append / truncate / purge / vote / sync requests) processed by the writer.
    pub jobs: u64,
    /// Bytes written to segment files.
    pub bytes_written: u64,
    /// Record-group reads served from disk rather than the cache.
    pub disk_reads: u64,
    /// Number of live segment files.
    pub segments: usize,
    /// Number of live (non-purged) entries.
    pub entries: usize,
    /// Entries currently held in the in-memory cache.
    pub cached_entries: usize,
    /// Encoded bytes held in the in-memory cache.
    pub cached_bytes: usize,
}
