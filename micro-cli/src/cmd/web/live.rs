//! The services snapshot the page shows, kept current by a registry watch.
//!
//! One task per dashboard (not per browser tab) follows [`Registry::watch`]; after every event it
//! reads the services again and publishes the snapshot (JSON) on a `tokio::sync::watch`
//! channel. Each event stream sends the latest snapshot, so a burst of registry events reaches
//! a slow page as one update, never as a backlog.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use micro::registry::{Service, WatchEvent};
use micro::Registry;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cmd::registry::format_service;

/// How many recent registry changes the page lists.
const RECENT_CHANGES: usize = 20;

/// How soon a failed read of the services is tried again (the registry may be electing).
const RETRY: Duration = Duration::from_secs(1);

/// The latest snapshot; clones share it.
#[derive(Clone)]
pub(crate) struct Live {
    snapshots: watch::Receiver<Option<Arc<String>>>,
    error: Arc<Mutex<Option<String>>>,
}

/// One service name: its versions as registered and `micro get service`'s text of them.
#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
    versions: Vec<&'a Service>,
    text: String,
}

/// One registry change, as the page's "recent changes" lists it.
#[derive(Clone, Serialize)]
struct Change {
    /// Milliseconds since the Unix epoch, for display only.
    at: u128,
    action: &'static str,
    service: String,
    node: String,
    address: String,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    services: Vec<Named<'a>>,
    changes: &'a VecDeque<Change>,
}

impl Live {
    /// Starts following `registry` until `shutdown`.
    pub(crate) fn start(registry: Registry, shutdown: CancellationToken) -> Live {
        let (tx, snapshots) = watch::channel(None);
        let error = Arc::new(Mutex::new(None));
        tokio::spawn(follow(registry, tx, error.clone(), shutdown));
        Live { snapshots, error }
    }

    /// The latest snapshot, if the registry has answered once.
    pub(crate) fn current(&self) -> Option<Arc<String>> {
        self.snapshots.borrow().clone()
    }

    /// Why the last read of the services failed, if it did.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// The current snapshot (once there is one), then each newer one.
    pub(crate) fn subscribe(&self) -> impl Stream<Item = Arc<String>> + Send + 'static {
        let mut rx = self.snapshots.clone();
        rx.mark_changed();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                let latest = rx.borrow_and_update().clone();
                if let Some(snapshot) = latest {
                    return Some((snapshot, rx));
                }
            }
        })
    }
}

async fn follow(
    registry: Registry,
    tx: watch::Sender<Option<Arc<String>>>,
    error: Arc<Mutex<Option<String>>>,
    shutdown: CancellationToken,
) {
    let mut watcher = registry.watch();
    let mut changes: VecDeque<Change> = VecDeque::new();
    // Something changed since the last snapshot published (at first: nothing published yet).
    let mut stale = true;
    loop {
        if stale {
            match registry.list_services().await {
                Ok(services) => {
                    stale = false;
                    set(&error, None);
                    match encode(&services, &changes) {
                        Ok(json) => {
                            tx.send_replace(Some(Arc::new(json)));
                        }
                        Err(e) => set(&error, Some(format!("encode the services: {e}"))),
                    }
                }
                Err(e) => set(&error, Some(format!("{e:#}"))),
            }
        }
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = watcher.next() => event,
            // Only while a read failed: try it again.
            _ = tokio::time::sleep(RETRY), if stale => continue,
        };
        let Some(event) = event else { return };
        if let Some(change) = change_of(&event) {
            if changes.len() == RECENT_CHANGES {
                changes.pop_back();
            }
            changes.push_front(change);
        }
        stale = true;
    }
}

fn set(slot: &Mutex<Option<String>>, value: Option<String>) {
    if let Ok(mut slot) = slot.lock() {
        *slot = value;
    }
}

fn change_of(event: &WatchEvent) -> Option<Change> {
    let (action, service) = match event {
        WatchEvent::Create(s) => ("create", s),
        WatchEvent::Update(s) => ("update", s),
        WatchEvent::Delete(s) => ("delete", s),
        WatchEvent::Resync => return None,
    };
    let node = service.nodes.first();
    Some(Change {
        at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default(),
        action,
        service: service.name.clone(),
        node: node.map(|n| n.id.clone()).unwrap_or_default(),
        address: node.map(|n| n.address.clone()).unwrap_or_default(),
    })
}

/// The page's JSON: services grouped by name, each with `micro get service`'s text.
fn encode(services: &[Service], changes: &VecDeque<Change>) -> serde_json::Result<String> {
    let mut by_name: BTreeMap<&str, Vec<&Service>> = BTreeMap::new();
    for s in services {
        by_name.entry(&s.name).or_default().push(s);
    }
    let services = by_name
        .into_iter()
        .map(|(name, versions)| {
            let owned: Vec<Service> = versions.iter().map(|s| (*s).clone()).collect();
            Named {
                name,
                text: format_service(&owned),
                versions,
            }
        })
        .collect();
    serde_json::to_string(&Snapshot { services, changes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro::registry::{Endpoint, Node};

    #[test]
    fn snapshot_groups_versions_and_carries_get_service_text() {
        let mut one = Service::new("go.micro.srv.greeter");
        one.endpoints
            .push(Endpoint::unary("Say.Hello", "Request", "Response"));
        one.nodes.push(Node::new(&one.name, "127.0.0.1:1"));
        let mut two = one.clone();
        two.version = "2".to_owned();
        let change = change_of(&WatchEvent::Delete(one.clone())).expect("a change");
        assert_eq!(change.action, "delete");
        assert!(change_of(&WatchEvent::Resync).is_none());
        let json = encode(&[one, two], &VecDeque::from([change])).expect("encode");
        let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(v["services"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            v["services"][0]["versions"].as_array().map(Vec::len),
            Some(2)
        );
        let text = v["services"][0]["text"].as_str().expect("text");
        assert!(text.contains("Endpoint: Say.Hello"), "{text}");
        assert_eq!(v["changes"][0]["address"], "127.0.0.1:1");
    }
}
