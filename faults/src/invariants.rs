//! The invariants besides linearizability, observed by background tasks during the run:
//!
//! - a key attached to a lease that a keeper keeps alive (a keep-alive stream, re-opened on
//!   another member after any error) never disappears;
//! - a watcher that reconnects from its last seen revision + 1 after each error sees every
//!   revision of the workload's prefix exactly once, in order (compared at the end with a
//!   fresh watch over the whole run), and every acknowledged write's value.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, WatchCreateRequest, WatchRequest,
};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Recorder;
use crate::history::{Kind, Op, Outcome};
use crate::ops::{self, Conn, Failed};

/// TTL of the kept-alive lease.
pub const LEASE_TTL: i64 = 5;

/// What the lease tasks saw.
#[derive(Debug, Default)]
pub struct LeaseLog {
    /// Successful reads of the key (so a check that never ran cannot pass).
    pub checks: AtomicU64,
    pub keepalives: AtomicU64,
    /// Times (ns) the key was read absent, or the keep-alive answered the lease was gone.
    pub violations: Mutex<Vec<String>>,
}

/// Grants the lease and puts `key` under it, retrying over the members for up to 10 s.
pub async fn grant(urls: &[String], key: &str) -> Result<i64, Failed> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = Failed("no attempt".into());
    for url in urls.iter().cycle() {
        if Instant::now() > deadline {
            break;
        }
        let mut lease = LeaseClient::new(ops::channel(url)?);
        let granted = timeout(
            ops::OP_TIMEOUT,
            lease.lease_grant(LeaseGrantRequest {
                ttl: LEASE_TTL,
                id: 0,
            }),
        )
        .await;
        let id = match granted {
            Ok(Ok(resp)) => resp.into_inner().id,
            Ok(Err(e)) => {
                last = Failed(e.message().to_owned());
                continue;
            }
            Err(_) => continue,
        };
        match Conn::new(url)?.put(key, "leased", id).await {
            Ok(()) => return Ok(id),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Keeps lease `id` alive until `stop`: one keep-alive a second on a stream, re-opened on the
/// next member after an error or a second without an answer.
pub async fn keep_alive(
    urls: Vec<String>,
    id: i64,
    log: Arc<LeaseLog>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut member = 0;
    while !stop.load(Ordering::SeqCst) {
        let url = &urls[member % urls.len()];
        member += 1;
        let Ok(channel) = ops::channel(url) else {
            return;
        };
        let (tx, rx) = mpsc::channel(4);
        // Sent before the call: a server may hold its response headers until a first answer.
        let _ = tx.send(LeaseKeepAliveRequest { id }).await;
        let mut client = LeaseClient::new(channel);
        // As etcd's Go client opens its keep-alive stream (clientv3.WithRequireLeader): a
        // member without a leader must refuse it, so the client moves on.
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert(
            "hasleader",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let Ok(Ok(resp)) = timeout(ops::OP_TIMEOUT, client.lease_keep_alive(request)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = resp.into_inner();
        while !stop.load(Ordering::SeqCst) {
            match timeout(ops::OP_TIMEOUT, stream.message()).await {
                Ok(Ok(Some(answer))) if answer.ttl <= 0 => {
                    let at = Duration::from_nanos(rec.now());
                    log.violations
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!(
                            "at {at:.3?}: keep-alive answered lease {id:x} is gone"
                        ));
                    return;
                }
                Ok(Ok(Some(_))) => {
                    log.keepalives.fetch_add(1, Ordering::SeqCst);
                }
                _ => break,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `key` (linearizable) every 300 ms on the members in turn until `stop`; an answer
/// without it is a violation.
pub async fn watch_key(
    urls: Vec<String>,
    key: String,
    log: Arc<LeaseLog>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let conns: Vec<Conn> = urls.iter().filter_map(|u| Conn::new(u).ok()).collect();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) && !conns.is_empty() {
        i += 1;
        match conns[i % conns.len()].read(&key, false).await {
            Ok(Some(_)) => {
                log.checks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(None) => {
                let at = Duration::from_nanos(rec.now());
                log.violations
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "at {at:.3?}: leased key {key} is gone (read on member {})",
                        i % conns.len()
                    ));
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One watch event as seen: revision, key, value.
pub type Event = (i64, String, String);

/// What the reconnecting watcher saw.
#[derive(Debug, Default)]
pub struct WatchLog {
    pub events: Mutex<Vec<Event>>,
    pub reconnects: AtomicU64,
    pub problems: Mutex<Vec<String>>,
}

impl WatchLog {
    pub fn last_revision(&self) -> i64 {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .map(|e| e.0)
            .unwrap_or(0)
    }
}

/// Watches `prefix` from `start` until `stop`, on the members in turn: after an error, a
/// cancel or 3 s without a message (the workload writes many times a second), again from
/// the last seen revision + 1 on the next member.
pub async fn watcher(
    urls: Vec<String>,
    prefix: String,
    start: i64,
    log: Arc<WatchLog>,
    stop: Arc<AtomicBool>,
) {
    let mut member = 0;
    while !stop.load(Ordering::SeqCst) {
        let url = &urls[member % urls.len()];
        member += 1;
        let from = match log.last_revision() {
            0 => start,
            last => last + 1,
        };
        let _ = watch_once(
            url,
            &prefix,
            from,
            Duration::from_secs(3),
            &stop,
            &mut |events| {
                log.events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(events);
                true
            },
        )
        .await
        .map_err(|e| {
            log.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e)
        });
        log.reconnects.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One watch stream from `from`; hands each batch of events to `sink` until it answers false,
/// the stream ends or fails, or `quiet` passes without a message. Errors that are protocol
/// violations (not mere disconnections) come back as `Err`.
async fn watch_once(
    url: &str,
    prefix: &str,
    from: i64,
    quiet: Duration,
    stop: &AtomicBool,
    sink: &mut (dyn FnMut(Vec<Event>) -> bool + Send),
) -> Result<(), String> {
    let Ok(channel) = ops::channel(url) else {
        return Ok(());
    };
    let (tx, rx) = mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: ops::prefix_end(prefix),
            start_revision: from,
            ..Default::default()
        })),
    };
    let _ = tx.send(create).await;
    let mut client = WatchClient::new(channel);
    let Ok(Ok(resp)) = timeout(ops::OP_TIMEOUT, client.watch(ReceiverStream::new(rx))).await else {
        return Ok(());
    };
    let mut stream = resp.into_inner();
    while !stop.load(Ordering::SeqCst) {
        let Ok(Ok(Some(msg))) = timeout(quiet, stream.message()).await else {
            return Ok(());
        };
        if msg.compact_revision != 0 {
            return Err(format!(
                "watch from {from} on {url}: compacted at {}",
                msg.compact_revision
            ));
        }
        if msg.canceled {
            return Ok(());
        }
        let events = msg
            .events
            .iter()
            .filter_map(|e| e.kv.as_ref())
            .map(|kv| {
                (
                    kv.mod_revision,
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                )
            })
            .collect();
        if !sink(events) {
            return Ok(());
        }
    }
    drop(tx);
    Ok(())
}

/// All events of `prefix` from `start` up to revision `last`, by one fresh watch (retried
/// over the members for up to 20 s): the reference the reconnecting watcher is held to.
pub async fn reference(
    urls: &[String],
    prefix: &str,
    start: i64,
    last: i64,
) -> Result<Vec<Event>, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let never = AtomicBool::new(false);
    for url in urls.iter().cycle() {
        let mut got: Vec<Event> = Vec::new();
        watch_once(
            url,
            prefix,
            start,
            Duration::from_secs(3),
            &never,
            &mut |events| {
                got.extend(events);
                got.last().is_none_or(|e| e.0 < last)
            },
        )
        .await?;
        if got.last().is_some_and(|e| e.0 >= last) || (last < start && got.is_empty()) {
            return Ok(got);
        }
        if Instant::now() > deadline {
            break;
        }
    }
    Err(format!(
        "no member delivered the events {start}..={last} within 20 s"
    ))
}

/// Compares the reconnecting watcher's events with the reference and the history: order,
/// exactly-once, no phantom values, every acknowledged write present.
pub fn check_watch(seen: &[Event], reference: &[Event], history: &[Op]) -> Result<String, String> {
    let mut problems = Vec::new();
    for pair in seen.windows(2) {
        if pair[1].0 <= pair[0].0 {
            problems.push(format!(
                "revision {} came after {} (duplicate or out of order)",
                pair[1].0, pair[0].0
            ));
        }
    }
    if seen != reference {
        let first = seen
            .iter()
            .zip(reference)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(reference.len()));
        problems.push(format!(
            "watcher saw {} events, a fresh watch {}; first difference at #{first}: {:?} vs {:?}",
            seen.len(),
            reference.len(),
            seen.get(first),
            reference.get(first)
        ));
    }
    let values: HashSet<&str> = seen.iter().map(|e| e.2.as_str()).collect();
    let mut invoked = HashSet::new();
    for op in history {
        let (value, acked) = match (&op.kind, &op.outcome) {
            (Kind::Write(v), o) => (v, *o == Outcome::Written),
            (Kind::Cas { new, .. }, o) => (new, *o == Outcome::Cas(true)),
            _ => continue,
        };
        invoked.insert(value.as_str());
        if acked && !values.contains(value.as_str()) {
            problems.push(format!(
                "acknowledged write {value} of {} never appeared in the watch",
                op.key
            ));
        }
    }
    for e in seen {
        if !invoked.contains(e.2.as_str()) {
            problems.push(format!("watch event {e:?} carries a value no client wrote"));
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{} events, in order, each once, every acknowledged write among them",
            seen.len()
        ))
    } else {
        problems.truncate(10);
        Err(problems.join("; "))
    }
}
