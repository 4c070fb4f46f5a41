//! [`LogStore`]: the public handle, opening/recovery wiring, reads and write submission.
//!
//! Owns the shared state (`RwLock<State>`), the channel to the writer thread and the cache of
//! read-only file handles. Every mutation takes the state write lock, updates the in-memory
//! view, and enqueues the matching file operations while still holding the lock, so the
//! writer applies them in state order. Reads take the read lock and are served from the
//! entry cache or by `pread` from the segment files (`read.rs`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use openraft::entry::RaftEntry;
use openraft::storage::LogState;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::RaftTypeConfig;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::meta::Meta;
use crate::meta::{encode_committed, encode_meta, read_committed, read_meta, remove_temp_files};
use crate::options::{LogOptions, LogStats};
use crate::record::encode_record;
use crate::recovery::recover;
use crate::state::State;
use crate::writer::{self, Counters, Done, Job, Op};

mod read;

pub(crate) struct Shared<C: RaftTypeConfig> {
    pub dir: PathBuf,
    pub opts: LogOptions,
    pub state: RwLock<State<C>>,
    readers: Mutex<HashMap<u64, Arc<File>>>,
    counters: Arc<Counters>,
    disk_reads: AtomicU64,
}

struct Inner<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
    tx: Option<Sender<Job>>,
    handle: Option<JoinHandle<()>>,
    /// Holds the exclusive lock on `<dir>/LOCK`; released after the writer exited.
    _lock: File,
}

impl<C: RaftTypeConfig> Drop for Inner<C> {
    fn drop(&mut self) {
        // Closing the channel makes the writer finish queued work, sync and exit.
        self.tx = None;
        if let Some(h) = self.handle.take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// Durable Raft log + vote store (segmented WAL with group commit). Cheap to clone.
///
/// Memory: an index entry (24 bytes) per live log entry plus a bounded cache of recent
/// entries (see [`LogOptions`]); older entries are read from the segment files.
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> std::fmt::Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Clone,
{
    /// Open (creating if needed) the log in `dir`, recovering from a crash if necessary.
    ///
    /// Blocking: scans all segments. Call it before starting Raft (or via `spawn_blocking`).
    pub fn open(dir: &Path, opts: LogOptions) -> Result<Self, Error> {
        let mut opts = opts;
        opts.segment_bytes = opts.segment_bytes.max(1);
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = lock_dir(dir)?;
        remove_temp_files(dir);
        let meta: Meta<C> = read_meta(dir)?;
        let committed = read_committed::<C>(dir);
        let state = recover::<C>(dir, meta, committed)?;

        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts,
            state: RwLock::new(state),
            readers: Mutex::new(HashMap::new()),
            counters: counters.clone(),
            disk_reads: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let hook_shared = shared.clone();
        let progress = Box::new(move |seq: u64, failed: Option<String>| {
            if let Ok(mut st) = hook_shared.state.write() {
                if failed.is_none() {
                    // Only successfully synced jobs may let their entries leave the cache.
                    st.completed_seq = st.completed_seq.max(seq);
                } else if st.failed.is_none() {
                    st.failed = failed;
                }
                let o = &hook_shared.opts;
                st.evict(o.cache_entries, o.cache_bytes);
            }
        });
        let handle = writer::spawn(dir.to_path_buf(), rx, counters, progress)
            .map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                tx: Some(tx),
                handle: Some(handle),
                _lock: lock,
            }),
        })
    }

    /// Directory of this log.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// The durations of this log's `fdatasync`s so far, shared with the writer thread (read
    /// it for etcd's `etcd_disk_wal_fsync_duration_seconds`).
    pub fn fsync_times(&self) -> Arc<crate::timing::FsyncTimes> {
        self.inner.shared.counters.fsync.clone()
    }

    /// Append `entries` and call `on_durable` on the writer thread once they are on stable
    /// storage (or with the error if writing failed). Callbacks fire in submission order.
    ///
    /// Returns as soon as the entries are queued; they are readable immediately. Entries
    /// should continue the log; a non-consecutive index truncates first (see `plan_append`).
    /// `on_durable` must not block for long: it runs on the writer thread.
    ///
    /// Every append goes through the writer thread, a follower's too: openraft 0.10's
    /// `IOFlushed` no longer says whether RaftCore waits for the flush (0.9's fork had
    /// `LogFlushed::is_awaited`, which let an idle writer be bypassed), and a hand-off costs
    /// little next to the `fdatasync`.
    pub fn append_with<I, F>(&self, entries: I, on_durable: F) -> Result<(), Error>
    where
        I: IntoIterator<Item = C::Entry>,
        F: FnOnce(io::Result<()>) + Send + 'static,
    {
        let mut items = Vec::new();
        for e in entries {
            let rec = encode_record(&e)?;
            items.push((e, rec));
        }
        let shared = &self.inner.shared;
        let mut st = shared.state.write()?;
        st.check_writable()?;
        let seq = st.next_seq;
        let ops = st.plan_append(items, seq, shared.opts.segment_bytes);
        for op in &ops {
            if let Op::Truncate { delete, .. } = op {
                self.forget_readers(delete)?;
            }
        }
        self.submit(&mut st, ops, Some(Box::new(on_durable)))
    }

    /// Wait until everything submitted so far is durable.
    pub async fn sync(&self) -> Result<(), Error> {
        let rx = {
            let mut st = self.inner.shared.state.write()?;
            self.submit_waiting(&mut st, Vec::new())?
        };
        wait(self.inner.shared.dir.clone(), rx).await
    }

    /// Counters and sizes.
    pub fn stats(&self) -> LogStats {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let mut s = LogStats {
            syncs: c.syncs.load(Ordering::Relaxed),
            dir_syncs: c.dir_syncs.load(Ordering::Relaxed),
            meta_writes: c.meta_writes.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            jobs: c.jobs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            disk_reads: shared.disk_reads.load(Ordering::Relaxed),
            ..LogStats::default()
        };
        if let Ok(st) = shared.state.read() {
            s.segments = st.segments.len();
            s.entries = st.slots.len();
            s.cached_entries = st.cache.len();
            s.cached_bytes = st.cache_bytes;
        }
        s
    }

    /// Entries with index in `[start, end)` that are present (purged/absent ones are skipped).
    pub fn read_range(&self, start: u64, end: u64) -> Result<Vec<C::Entry>, Error> {
        let st = self.inner.shared.state.read()?;
        self.read_locked(&st, start, end)
    }

    /// Last purged log id and last log id (= last purged when the log is empty).
    pub fn log_state(&self) -> Result<LogState<C>, Error> {
        let st = self.inner.shared.state.read()?;
        Ok(LogState {
            last_purged_log_id: st.last_purged.clone(),
            last_log_id: st.last_log_id.clone(),
        })
    }

    /// Durably save the vote (returns after it is on stable storage).
    pub async fn write_vote(&self, vote: &VoteOf<C>) -> Result<(), Error> {
        let rx = {
            let mut st = self.inner.shared.state.write()?;
            st.check_writable()?;
            let meta = encode_meta(&Meta::<C> {
                vote: Some(vote.clone()),
                last_purged: st.last_purged.clone(),
            })?;
            st.vote = Some(vote.clone());
            self.submit_waiting(&mut st, vec![Op::SaveMeta(meta)])?
        };
        wait(self.inner.shared.dir.clone(), rx).await
    }

    /// Last saved vote.
    pub fn vote(&self) -> Result<Option<VoteOf<C>>, Error> {
        Ok(self.inner.shared.state.read()?.vote.clone())
    }

    /// Record the committed log id; persisted lazily (not synced).
    pub fn set_committed(&self, committed: Option<LogIdOf<C>>) -> Result<(), Error> {
        let mut st = self.inner.shared.state.write()?;
        st.check_writable()?;
        let bytes = encode_committed::<C>(&committed)?;
        st.committed = committed;
        self.submit(&mut st, vec![Op::SaveCommitted(bytes)], None)
    }

    /// Last recorded committed log id.
    pub fn committed(&self) -> Result<Option<LogIdOf<C>>, Error> {
        Ok(self.inner.shared.state.read()?.committed.clone())
    }

    /// Remove entries with index `>= index`; durable when this returns.
    pub async fn truncate_from(&self, index: u64) -> Result<(), Error> {
        let rx = {
            let shared = &self.inner.shared;
            let mut st = shared.state.write()?;
            st.check_writable()?;
            let target = index.max(st.first_index);
            if target >= st.end_index() {
                return Ok(());
            }
            let new_last = if target > st.first_index {
                let prev = self.read_locked(&st, target - 1, target)?;
                match prev.first() {
                    Some(e) => Some(e.log_id()),
                    None => return Err(Error::Corrupt(format!("entry {} missing", target - 1))),
                }
            } else {
                st.last_purged.clone()
            };
            let Some(op) = st.plan_truncate(target, new_last) else {
                return Ok(());
            };
            if let Op::Truncate { delete, .. } = &op {
                self.forget_readers(delete)?;
            }
            self.submit_waiting(&mut st, vec![op])?
        };
        wait(self.inner.shared.dir.clone(), rx).await
    }

    /// Purge entries `<= upto.index` and record `upto` durably as the last purged log id.
    pub async fn purge_upto(&self, upto: LogIdOf<C>) -> Result<(), Error> {
        let rx = {
            let mut st = self.inner.shared.state.write()?;
            st.check_writable()?;
            if st.last_purged.as_ref() >= Some(&upto) {
                return Ok(());
            }
            let meta = encode_meta(&Meta::<C> {
                vote: st.vote.clone(),
                last_purged: Some(upto.clone()),
            })?;
            let delete = st.plan_purge(upto);
            self.forget_readers(&delete)?;
            let ops = vec![Op::SaveMeta(meta), Op::DeleteSegments(delete)];
            self.submit_waiting(&mut st, ops)?
        };
        wait(self.inner.shared.dir.clone(), rx).await
    }

    fn submit(&self, st: &mut State<C>, ops: Vec<Op>, done: Option<Done>) -> Result<(), Error> {
        let seq = st.take_seq();
        let tx = self.inner.tx.as_ref().ok_or(Error::WriterGone)?;
        if tx.send(Job { seq, ops, done }).is_err() {
            st.failed = Some("writer thread is gone".to_string());
            return Err(Error::WriterGone);
        }
        Ok(())
    }

    fn submit_waiting(
        &self,
        st: &mut State<C>,
        ops: Vec<Op>,
    ) -> Result<oneshot::Receiver<io::Result<()>>, Error> {
        let (tx, rx) = oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.submit(st, ops, Some(done))?;
        Ok(rx)
    }
}

/// Take an exclusive advisory lock on `<dir>/LOCK` so only one store uses the directory.
fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join("LOCK");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

async fn wait(dir: PathBuf, rx: oneshot::Receiver<io::Result<()>>) -> Result<(), Error> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::io(dir, e)),
        Err(_) => Err(Error::WriterGone),
    }
}
