//! Maintenance.Snapshot's work: a Raft snapshot that covers everything this member had applied
//! when the call came, and that file streamed as etcd streams its backend: [`CHUNK`]-byte blobs
//! with the bytes still to come, padding to a multiple of 512, then the sha256 of it all (the
//! shape is described in [`crate::restore`], which reads it back).

use std::fs::File;
use std::io::{self, Read, Seek};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use proto::etcdserverpb::{ResponseHeader, SnapshotResponse};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use super::SnapshotStream;
use crate::restore::{head_len, padding, revision_in, CHUNK};
use crate::routing::Router;

/// How long a call waits for this member's snapshot to be built.
const BUILD_WAIT: Duration = Duration::from_secs(60);
/// openraft drops a trigger while a build is running: it is repeated this often.
const RETRIGGER: Duration = Duration::from_secs(2);
/// A snapshot file's meta (log id and membership) is far smaller; more means a damaged file.
const MAX_META: u32 = 1 << 20;

fn stopped() -> Status {
    Status::unavailable("etcdserver: server stopped")
}

fn covered(router: &Router, target: u64) -> bool {
    let m = router.raft().metrics();
    let snapshot = m.borrow_watched().snapshot;
    snapshot.is_some_and(|s| s.index >= target)
}

/// Waits until this member has a snapshot on disk at or past what it had applied at the call
/// (building one if needed), so the stream holds every write the member had acknowledged.
pub(super) async fn fresh(router: &Router) -> Result<(), Status> {
    let target = *router.sm().applied_index().borrow();
    let mut metrics = router.raft().metrics();
    let deadline = Instant::now() + BUILD_WAIT;
    let mut retrigger = Instant::now();
    loop {
        if covered(router, target) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Status::unavailable("etcdserver: request timed out"));
        }
        if now >= retrigger {
            router
                .raft()
                .trigger()
                .snapshot()
                .await
                .map_err(|_| stopped())?;
            retrigger = now + RETRIGGER;
        }
        if let Ok(Err(_)) =
            tokio::time::timeout_at(retrigger.min(deadline), metrics.changed()).await
        {
            return Err(stopped());
        }
    }
}

/// Opens the member's snapshot file and reads the store revision it was taken at. The file is
/// replaced by rename, never rewritten, so the open handle keeps one whole snapshot.
pub(super) async fn open(data_dir: &std::path::Path) -> Result<(File, i64), Status> {
    // Node::serve keeps the state machine in `<data dir>/state`, store/snapshot.rs its
    // snapshot in the file `snapshot` there.
    let path = data_dir.join("state").join("snapshot");
    let opened = tokio::task::spawn_blocking(move || -> io::Result<(File, i64)> {
        let mut file = File::open(&path)?;
        let mut head = [0u8; 12];
        file.read_exact(&mut head)?;
        let meta_len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if meta_len > MAX_META {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "meta too long"));
        }
        let mut head = vec![0u8; head_len(meta_len)];
        file.rewind()?;
        let n = read_full(&mut file, &mut head)?;
        head.truncate(n);
        let revision = revision_in(&head)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no revision"))?;
        file.rewind()?;
        Ok((file, revision))
    });
    opened
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(format!("etcdserver: snapshot file: {e}")))
}

/// The stream of `file`'s chunks; the header (the snapshot's revision) rides on the first, as
/// etcd's API documents it ("the first header in the snapshot stream indicates the point in
/// time of the snapshot"). Reading runs on a blocking thread, at most two chunks ahead of the
/// client.
pub(super) fn stream(file: File, header: ResponseHeader) -> SnapshotStream {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = send(file, header, &tx) {
            tracing::warn!(error = %e, "snapshot stream failed");
            let msg = format!("etcdserver: snapshot: {e}");
            let _ = tx.blocking_send(Err(Status::internal(msg)));
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

type Sender = mpsc::Sender<Result<SnapshotResponse, Status>>;

fn send(file: File, header: ResponseHeader, tx: &Sender) -> io::Result<()> {
    let len = file.metadata()?.len();
    let pad = padding(len);
    let total = len + pad;
    let mut reader = file.take(len).chain(io::repeat(0).take(pad));
    let mut sha = Sha256::new();
    let mut header = Some(header);
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    tracing::info!(bytes = total, "sending snapshot to client");
    while sent < total {
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "snapshot file ended early",
            ));
        }
        sent += n as u64;
        sha.update(&buf[..n]);
        let msg = SnapshotResponse {
            header: header.take(),
            remaining_bytes: total - sent,
            blob: buf[..n].to_vec(),
        };
        if tx.blocking_send(Ok(msg)).is_err() {
            // The client went away.
            return Ok(());
        }
    }
    let sum = SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: sha.finalize().to_vec(),
    };
    let _ = tx.blocking_send(Ok(sum));
    Ok(())
}

/// Reads until `buf` is full or the input ends (Go's `io.ReadFull`, as etcd fills its chunks).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
