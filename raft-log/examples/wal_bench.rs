//! Latency benchmark of the durable log (run with
//! `cargo run -p raft-log --release --example wal_bench [-- <dir>]`).
//!
//! (a) raw: one 256-byte framed record + `fdatasync` per append, 1 writer;
//! (b) `LogStore::append_with`, callback awaited, 1 writer;
//! (c) `LogStore` with 64 concurrent writers (group commit), throughput + syncs.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::type_config::alias::{EntryOf, LogIdOf};
use raft_log::{LogOptions, LogStore};
use serde::{Deserialize, Serialize};

/// An opaque payload (openraft 0.10's `AppData` must be `Display`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Blob(Vec<u8>);

impl std::fmt::Display for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Bench type config: 256-byte opaque payloads.
    pub BenchConfig: D = Blob, R = ()
);

const PAYLOAD: usize = 256;

fn entry(index: u64) -> EntryOf<BenchConfig> {
    let log_id = LogIdOf::<BenchConfig>::new(
        LeaderId {
            term: 1,
            node_id: 0,
        },
        index,
    );
    EntryOf::<BenchConfig>::new_normal(log_id, Blob(vec![0x5a; PAYLOAD]))
}

fn report(name: &str, mut lat: Vec<Duration>, wall: Duration, extra: &str) {
    lat.sort();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i).copied().unwrap_or_default()
    };
    println!(
        "{name:<34} n={:<6} p50={:>8.1?} p99={:>8.1?} max={:>8.1?} ops/s={:>9.0} {extra}",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or_default(),
        lat.len() as f64 / wall.as_secs_f64(),
    );
}

fn raw_fdatasync(dir: &std::path::Path, n: usize) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw.wal"))?;
    let payload = vec![0x5a; PAYLOAD];
    let crc = crc32fast::hash(&payload);
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let mut rec = Vec::with_capacity(PAYLOAD + 8);
        rec.extend_from_slice(&(PAYLOAD as u32).to_le_bytes());
        rec.extend_from_slice(&crc.to_le_bytes());
        rec.extend_from_slice(&payload);
        f.write_all(&rec)?;
        f.sync_data()?;
        lat.push(t.elapsed());
    }
    report(
        "(a) raw write+fdatasync, 1 writer",
        lat,
        start.elapsed(),
        "",
    );
    Ok(())
}

async fn store_one_writer(dir: &std::path::Path, n: u64) -> Result<(), raft_log::Error> {
    let store = LogStore::<BenchConfig>::open(dir, LogOptions::default())?;
    let mut lat = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        store.append_with([entry(i)], move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .map_err(|_| raft_log::Error::WriterGone)?
            .map_err(|e| raft_log::Error::Corrupt(e.to_string()))?;
        lat.push(t.elapsed());
    }
    let wall = start.elapsed();
    let s = store.stats();
    let extra = format!("syncs={}", s.syncs);
    report("(b) LogStore append, 1 writer", lat, wall, &extra);
    Ok(())
}

async fn store_concurrent(
    dir: &std::path::Path,
    writers: usize,
    per_writer: usize,
) -> Result<(), raft_log::Error> {
    let store = LogStore::<BenchConfig>::open(dir, LogOptions::default())?;
    let next = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_writer);
            for _ in 0..per_writer {
                let t = Instant::now();
                let (tx, rx) = tokio::sync::oneshot::channel();
                {
                    // Index assignment + enqueue must be atomic (like RaftCore's single task).
                    let mut n = next.lock().map_err(|_| raft_log::Error::Poisoned)?;
                    store.append_with([entry(*n)], move |r| {
                        let _ = tx.send(r);
                    })?;
                    *n += 1;
                }
                rx.await
                    .map_err(|_| raft_log::Error::WriterGone)?
                    .map_err(|e| raft_log::Error::Corrupt(e.to_string()))?;
                lat.push(t.elapsed());
            }
            Ok::<_, raft_log::Error>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => lat.extend(r?),
            Err(e) => return Err(raft_log::Error::Corrupt(format!("task failed: {e}"))),
        }
    }
    let wall = start.elapsed();
    let s = store.stats();
    let extra = format!(
        "syncs={} batches={} appends/sync={:.1}",
        s.syncs,
        s.batches,
        lat.len() as f64 / s.syncs.max(1) as f64
    );
    report(
        &format!("(c) LogStore append, {writers} writers"),
        lat,
        wall,
        &extra,
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = match std::env::args().nth(1) {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    println!("dir: {} ({PAYLOAD}-byte payloads)", base.path().display());
    let rt = tokio::runtime::Runtime::new()?;

    raw_fdatasync(base.path(), 2000)?;
    rt.block_on(store_one_writer(&base.path().join("one"), 2000))?;
    rt.block_on(store_concurrent(&base.path().join("many"), 64, 300))?;
    Ok(())
}
