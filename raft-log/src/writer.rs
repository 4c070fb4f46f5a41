//! The single background writer thread: owns all file mutations and does group commit.
//!
//! Callers (the store) push [`Job`]s onto an unbounded channel, in the same order in which
//! they changed the in-memory state. The thread takes everything that is queued, applies the
//! operations in order, issues ONE `fdatasync` for the data written by the whole batch (plus
//! the few extra syncs ordering requires: before switching to a new segment, around a
//! truncation, before a metadata write), then fires every completion of the batch. A
//! completion is therefore never invoked before the data it covers is on stable storage.
//!
//! After the first I/O error the writer becomes "failed": every later job completes with an
//! error and nothing more is written (the on-disk state is uncertain; restart to recover).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::clone_io;
use crate::meta::{write_file_atomic, COMMITTED_FILE, META_FILE};
use crate::segment::{segment_path, sync_dir};

/// Completion callback, invoked on the writer thread after the job is durable (or failed).
pub(crate) type Done = Box<dyn FnOnce(io::Result<()>) + Send + 'static>;

/// One file operation.
pub(crate) enum Op {
    /// Write `data` at `offset` of segment `seg`; `create` makes a fresh (truncated) file.
    Write {
        seg: u64,
        create: bool,
        offset: u64,
        data: Vec<u8>,
    },
    /// Delete segments `delete` (newest first), then cut segment `keep.0` to `keep.1` bytes.
    /// Durable before the next operation runs.
    Truncate {
        keep: Option<(u64, u64)>,
        delete: Vec<u64>,
    },
    /// Durably replace the `meta` file (after syncing pending log data).
    SaveMeta(Vec<u8>),
    /// Delete whole segments (purge). Runs after the `SaveMeta` recording the purge.
    DeleteSegments(Vec<u64>),
    /// Lazily persist the committed log id (no fsync, rate limited).
    SaveCommitted(Vec<u8>),
}

/// A unit of work submitted by the store.
pub(crate) struct Job {
    /// Monotonic sequence number assigned by the store.
    pub seq: u64,
    /// Operations, applied in order.
    pub ops: Vec<Op>,
    /// Called once everything up to and including this job is durable.
    pub done: Option<Done>,
}

/// Counters shared between the writer and [`crate::LogStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub syncs: AtomicU64,
    pub dir_syncs: AtomicU64,
    pub meta_writes: AtomicU64,
    pub batches: AtomicU64,
    pub jobs: AtomicU64,
    pub bytes_written: AtomicU64,
    /// How long each segment `fdatasync` took (etcd's WAL fsync histogram).
    pub fsync: Arc<crate::timing::FsyncTimes>,
}

/// Hook the writer calls after each batch: `(last seq of the batch, failure message)`.
pub(crate) type Progress = Box<dyn Fn(u64, Option<String>) + Send + 'static>;

/// Stop collecting more jobs into a batch beyond this many bytes of data.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Minimum interval between two lazy writes of the committed file.
const COMMITTED_INTERVAL: Duration = Duration::from_millis(100);

struct Current {
    seg: u64,
    file: File,
    dirty: bool,
}

struct Writer {
    dir: PathBuf,
    progress: Progress,
    cur: Option<Current>,
    dir_dirty: bool,
    pending_committed: Option<Vec<u8>>,
    last_committed_write: Instant,
    failed: Option<String>,
    counters: Arc<Counters>,
}

/// Start the writer thread. It exits (after a final sync) when all senders are dropped.
pub(crate) fn spawn(
    dir: PathBuf,
    rx: Receiver<Job>,
    counters: Arc<Counters>,
    progress: Progress,
) -> io::Result<JoinHandle<()>> {
    let w = Writer {
        dir,
        progress,
        cur: None,
        dir_dirty: false,
        pending_committed: None,
        last_committed_write: Instant::now(),
        failed: None,
        counters,
    };
    std::thread::Builder::new()
        .name("raft-log-writer".to_string())
        .spawn(move || run(w, rx))
}

fn run(mut w: Writer, rx: Receiver<Job>) {
    loop {
        let first = match rx.recv_timeout(COMMITTED_INTERVAL) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                w.flush_committed(false);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        let mut bytes = batch_bytes(&batch[0]);
        while bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += batch_bytes(&job);
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        w.process(batch);
    }
    // Channel closed: make everything durable before exiting.
    if w.failed.is_none() {
        if let Err(e) = w.sync_all() {
            tracing::error!(error = %e, "final raft log sync failed");
        }
        w.flush_committed(true);
    }
}

impl Writer {
    /// Applies a batch of consecutive jobs with one sync, reports progress and calls their
    /// callbacks.
    fn process(&mut self, mut batch: Vec<Job>) {
        let result = match &self.failed {
            Some(msg) => Err(io::Error::other(format!(
                "log writer failed earlier: {msg}"
            ))),
            None => self.apply_batch(&mut batch),
        };
        if let Err(e) = &result {
            if self.failed.is_none() {
                tracing::error!(error = %e, "raft log write failed; log store is now read-only");
                self.failed = Some(e.to_string());
            }
        }
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .jobs
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let last_seq = batch.last().map(|j| j.seq).unwrap_or(0);
        (self.progress)(last_seq, self.failed.clone());
        for job in batch {
            if let Some(done) = job.done {
                done(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(clone_io(e)),
                });
            }
        }
        self.flush_committed(false);
    }

    /// Apply all ops of the batch, then make them durable with one data sync.
    fn apply_batch(&mut self, batch: &mut [Job]) -> io::Result<()> {
        for job in batch.iter_mut() {
            for op in job.ops.drain(..) {
                self.apply(op)?;
            }
        }
        self.sync_all()
    }

    fn apply(&mut self, op: Op) -> io::Result<()> {
        match op {
            Op::Write {
                seg,
                create,
                offset,
                data,
            } => {
                let file = self.file_for_write(seg, create)?;
                file.write_all_at(&data, offset)?;
                self.counters
                    .bytes_written
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Op::Truncate { keep, delete } => self.truncate(keep, &delete),
            Op::SaveMeta(bytes) => {
                // Serialize with earlier log writes: they become durable first.
                self.sync_data()?;
                write_file_atomic(&self.dir, META_FILE, &bytes, true)?;
                self.counters.meta_writes.fetch_add(1, Ordering::Relaxed);
                self.dir_dirty = false;
                Ok(())
            }
            Op::DeleteSegments(segs) => {
                for seg in segs {
                    self.remove_segment(seg)?;
                }
                Ok(())
            }
            Op::SaveCommitted(bytes) => {
                self.pending_committed = Some(bytes);
                Ok(())
            }
        }
    }

    /// Return the open file for `seg`, switching (and syncing the previous one) if needed.
    fn file_for_write(&mut self, seg: u64, create: bool) -> io::Result<&File> {
        let switch = match &self.cur {
            Some(c) => c.seg != seg || create,
            None => true,
        };
        if switch {
            // A segment must be durable before a later one can exist / be written: recovery
            // treats damage in a non-last segment as fatal.
            self.sync_data()?;
            if create {
                // ...and the directory entries of earlier segments too.
                self.sync_dir()?;
            }
            self.cur = None;
            let path = segment_path(&self.dir, seg);
            let file = if create {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                self.dir_dirty = true;
                f
            } else {
                OpenOptions::new().read(true).write(true).open(&path)?
            };
            self.cur = Some(Current {
                seg,
                file,
                dirty: false,
            });
        }
        match &mut self.cur {
            Some(c) => {
                c.dirty = true;
                Ok(&c.file)
            }
            None => Err(io::Error::other("no current segment")),
        }
    }

    fn truncate(&mut self, keep: Option<(u64, u64)>, delete: &[u64]) -> io::Result<()> {
        let mut newest_first = delete.to_vec();
        newest_first.sort_unstable_by(|a, b| b.cmp(a));
        for seg in newest_first {
            self.remove_segment(seg)?;
        }
        if let Some((seg, len)) = keep {
            match &mut self.cur {
                Some(c) if c.seg == seg => {
                    c.file.set_len(len)?;
                    timed_sync(&self.counters, &c.file)?;
                    c.dirty = false;
                }
                _ => {
                    self.sync_data()?;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(segment_path(&self.dir, seg))?;
                    f.set_len(len)?;
                    timed_sync(&self.counters, &f)?;
                }
            }
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        }
        // The truncation must be durable before anything is written after it, otherwise a
        // crash could leave stale records behind newer ones.
        self.dir_dirty = true;
        self.sync_dir()
    }

    fn remove_segment(&mut self, seg: u64) -> io::Result<()> {
        if self.cur.as_ref().is_some_and(|c| c.seg == seg) {
            self.cur = None;
        }
        match std::fs::remove_file(segment_path(&self.dir, seg)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.dir_dirty = true;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if let Some(c) = &mut self.cur {
            if c.dirty {
                timed_sync(&self.counters, &c.file)?;
                c.dirty = false;
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
            self.counters.dir_syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()?;
        self.sync_dir()
    }

    /// Write the committed file if one is pending and the rate limit allows (or `force`).
    fn flush_committed(&mut self, force: bool) {
        if self.failed.is_some() || self.pending_committed.is_none() {
            return;
        }
        if !force && self.last_committed_write.elapsed() < COMMITTED_INTERVAL {
            return;
        }
        if let Some(bytes) = self.pending_committed.take() {
            if let Err(e) = write_file_atomic(&self.dir, COMMITTED_FILE, &bytes, false) {
                tracing::warn!(error = %e, "failed to persist committed log id");
            }
            self.last_committed_write = Instant::now();
        }
    }
}

/// One segment `fdatasync`, timed.
fn timed_sync(counters: &Counters, f: &File) -> io::Result<()> {
    let start = Instant::now();
    let r = f.sync_data();
    counters.fsync.record(start.elapsed());
    r
}

fn batch_bytes(job: &Job) -> usize {
    job.ops
        .iter()
        .map(|op| match op {
            Op::Write { data, .. } => data.len(),
            _ => 0,
        })
        .sum()
}
