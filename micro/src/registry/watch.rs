//! Watching the registry: a prefix watch on `/micro-registry/` with `prev_kv`, turned into
//! go-micro's `create` / `update` / `delete` results, every event of every batch.
//!
//! A background task owns the etcd stream. When the stream breaks or is cancelled (member down,
//! compaction, no leader) it is created again, on another member if need be, and
//! [`WatchEvent::Resync`] tells the consumer that events may have been missed.

use std::time::Duration;

use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use proto::mvccpb::event::EventType;
use proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::metadata::MetadataValue;

use super::etcd::decode;
use super::types::{prefix_end, split_key_in, Node, Service};
use super::{Error, Registry};

/// One change of the registry, with the service value (holding the one node concerned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Create(Service),
    Update(Service),
    /// The service as it was before the delete (from `prev_kv`), also after a lease expiry.
    Delete(Service),
    /// The watch was (re)established; changes since the last event may have been missed, so
    /// anything derived from the registry should be read again.
    Resync,
}

/// A stream of [`WatchEvent`]s; the background watch stops when this is dropped.
#[derive(Debug)]
pub struct Watcher {
    events: mpsc::Receiver<WatchEvent>,
    _stop: DropGuard,
}

impl Watcher {
    /// The next event; `None` only once the watcher is stopped.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }
}

impl Registry {
    /// Watches every service. The first event is a [`WatchEvent::Resync`] once the watch is in
    /// place: reads made after it miss nothing.
    pub fn watch(&self) -> Watcher {
        let (tx, events) = mpsc::channel(256);
        let cancel = CancellationToken::new();
        tokio::spawn(run(self.clone(), tx, cancel.clone()));
        Watcher {
            events,
            _stop: cancel.drop_guard(),
        }
    }
}

async fn run(registry: Registry, tx: mpsc::Sender<WatchEvent>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            r = watch_once(&registry, &tx) => r,
        };
        match outcome {
            Ok(Flow::Stop) => return,
            Ok(Flow::Retry) => backoff = Duration::from_millis(50),
            Err(error) => tracing::warn!(%error, "registry watch failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

enum Flow {
    /// The consumer is gone.
    Stop,
    /// The stream ended after working; create it again.
    Retry,
}

/// One watch stream, from creation to its end.
async fn watch_once(registry: &Registry, tx: &mpsc::Sender<WatchEvent>) -> Result<Flow, Error> {
    let prefix = registry.prefix().as_bytes().to_vec();
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            prev_kv: true,
            ..Default::default()
        })),
    };
    // The request side must stay open as long as the watch lives: keep its sender.
    let (mut stream, _requests) = registry
        .pool()
        .call("watch", |ch| {
            let create = create.clone();
            async move {
                let (req_tx, req_rx) = mpsc::channel(1);
                req_tx
                    .send(create)
                    .await
                    .map_err(|_| tonic::Status::internal("watch request dropped"))?;
                let mut request = tonic::Request::new(ReceiverStream::new(req_rx));
                request
                    .metadata_mut()
                    .insert("hasleader", MetadataValue::from_static("true"));
                let mut stream = WatchClient::new(ch).watch(request).await?.into_inner();
                // The first answer must confirm the watch.
                match stream.message().await? {
                    Some(r) if r.created && !r.canceled => Ok((stream, req_tx)),
                    Some(r) => Err(tonic::Status::unavailable(format!(
                        "watch not created: {}",
                        r.cancel_reason
                    ))),
                    None => Err(tonic::Status::unavailable("watch stream ended")),
                }
            }
        })
        .await?;
    if tx.send(WatchEvent::Resync).await.is_err() {
        return Ok(Flow::Stop);
    }
    loop {
        let response: WatchResponse = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Flow::Retry),
            Err(status) => {
                return Err(Error::Status {
                    op: "watch",
                    status,
                })
            }
        };
        if response.canceled {
            tracing::info!(reason = %response.cancel_reason, compact = response.compact_revision, "registry watch cancelled");
            return Ok(Flow::Retry);
        }
        for event in &response.events {
            if let Some(ev) = convert(registry.prefix(), event) {
                if tx.send(ev).await.is_err() {
                    return Ok(Flow::Stop);
                }
            }
        }
    }
}

/// go-micro's reading of one etcd event; `None` for values that are not services.
fn convert(prefix: &str, event: &Event) -> Option<WatchEvent> {
    let kv = event.kv.as_ref()?;
    match EventType::try_from(event.r#type).ok()? {
        EventType::Put => {
            let service = decode(kv)?;
            Some(if kv.create_revision == kv.mod_revision {
                WatchEvent::Create(service)
            } else {
                WatchEvent::Update(service)
            })
        }
        EventType::Delete => {
            let from_prev = event.prev_kv.as_ref().and_then(decode);
            let service = from_prev.or_else(|| {
                // No usable previous value: name the node from the key alone.
                let (name, id) = split_key_in(prefix, &kv.key)?;
                let mut service = Service::new(name);
                service.nodes.push(Node {
                    id,
                    address: String::new(),
                    metadata: Default::default(),
                });
                Some(service)
            })?;
            Some(WatchEvent::Delete(service))
        }
    }
}
