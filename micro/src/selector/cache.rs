//! The cache selector's memory: every looked-up service, kept current by a registry watch.
//!
//! ```text
//!   get(name) ──hit (fresh)──► copy of the entry
//!       └─miss / stale / older than ttl──► registry.get_service ──► entry (or, if the registry
//!                                            fails, the last known entry: stale beats nothing)
//!   watcher ──create/update/delete──► patch the entry's nodes
//!           └─resync (watch re-created)──► mark every entry stale: re-read on next use
//! ```
//!
//! A read racing with an event for the same service is not trusted: the entry is stored stale.
//!
//! Entries are immutable snapshots behind an `Arc`: a hit costs a reference count, not a deep
//! copy of every node and endpoint; the watcher patches a copy (copy-on-write), so what a caller
//! holds never changes under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::registry::{self, Registry, Service, WatchEvent, Watcher};

/// Watch-driven service cache; clones share it. The watch starts on first use and stops when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct CacheSelector {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: Registry,
    ttl: Duration,
    state: Mutex<State>,
    watch: OnceLock<DropGuard>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Events seen per service name, to detect a read racing with a change.
    changes: HashMap<String, u64>,
    resyncs: u64,
}

#[derive(Debug)]
struct Entry {
    services: Arc<Vec<Service>>,
    fetched: Instant,
    stale: bool,
}

impl CacheSelector {
    pub fn new(registry: Registry, ttl: Duration) -> Self {
        CacheSelector {
            shared: Arc::new(Shared {
                registry,
                ttl,
                state: Mutex::default(),
                watch: OnceLock::new(),
            }),
        }
    }

    /// The registry this cache reads from.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Every version of `name` (a shared snapshot); empty if the service is not registered.
    pub async fn get(&self, name: &str) -> Result<Arc<Vec<Service>>, registry::Error> {
        self.ensure_watch();
        let (changes, resyncs) = {
            let state = self.shared.lock();
            if let Some(entry) = state.entries.get(name) {
                if !entry.stale && entry.fetched.elapsed() < self.shared.ttl {
                    return Ok(Arc::clone(&entry.services));
                }
            }
            (state.changes.get(name).copied(), state.resyncs)
        };
        let read = self.shared.registry.get_service(name).await;
        let mut state = self.shared.lock();
        match read {
            Ok(services) => {
                let services = Arc::new(services);
                let raced = state.changes.get(name).copied() != changes || state.resyncs != resyncs;
                if services.is_empty() {
                    state.entries.remove(name);
                } else {
                    state.entries.insert(
                        name.to_owned(),
                        Entry {
                            services: Arc::clone(&services),
                            fetched: Instant::now(),
                            stale: raced,
                        },
                    );
                }
                Ok(services)
            }
            Err(error) => match state.entries.get(name) {
                Some(entry) => {
                    tracing::warn!(service = name, %error, "registry unreachable, serving the last known nodes");
                    Ok(Arc::clone(&entry.services))
                }
                None => Err(error),
            },
        }
    }

    /// Service names currently cached (for inspection).
    pub fn cached(&self) -> Vec<String> {
        self.shared.lock().entries.keys().cloned().collect()
    }

    fn ensure_watch(&self) {
        self.shared.watch.get_or_init(|| {
            let cancel = CancellationToken::new();
            let watcher = self.shared.registry.watch();
            tokio::spawn(follow(
                Arc::downgrade(&self.shared),
                watcher,
                cancel.clone(),
            ));
            cancel.drop_guard()
        });
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn follow(shared: Weak<Shared>, mut watcher: Watcher, cancel: CancellationToken) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = watcher.next() => e,
        };
        let (Some(event), Some(shared)) = (event, shared.upgrade()) else {
            return;
        };
        shared.lock().apply(event);
    }
}

impl State {
    fn apply(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Resync => {
                self.resyncs += 1;
                for entry in self.entries.values_mut() {
                    entry.stale = true;
                }
            }
            WatchEvent::Create(service) | WatchEvent::Update(service) => {
                *self.changes.entry(service.name.clone()).or_insert(0) += 1;
                if let Some(entry) = self.entries.get_mut(&service.name) {
                    upsert(Arc::make_mut(&mut entry.services), service);
                }
            }
            WatchEvent::Delete(service) => {
                *self.changes.entry(service.name.clone()).or_insert(0) += 1;
                if let Some(entry) = self.entries.get_mut(&service.name) {
                    remove(Arc::make_mut(&mut entry.services), &service);
                }
            }
        }
    }
}

/// Adds or replaces the nodes of `service` in its version.
fn upsert(services: &mut Vec<Service>, service: Service) {
    for node in &service.nodes {
        for s in services.iter_mut() {
            s.nodes.retain(|n| n.id != node.id);
        }
    }
    match services.iter_mut().find(|s| s.version == service.version) {
        Some(existing) => {
            existing.nodes.extend(service.nodes);
            existing.endpoints = service.endpoints;
            existing.metadata = service.metadata;
        }
        None => services.push(service),
    }
    services.retain(|s| !s.nodes.is_empty());
}

/// Removes the nodes of `service` from every version; versions left without nodes go.
fn remove(services: &mut Vec<Service>, service: &Service) {
    for s in services.iter_mut() {
        s.nodes
            .retain(|n| !service.nodes.iter().any(|gone| gone.id == n.id));
    }
    services.retain(|s| !s.nodes.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Node;

    fn one(name: &str, version: &str) -> Service {
        let mut s = Service::new(name);
        s.version = version.to_owned();
        s.with_only(&Node::new(name, "h:1"))
    }

    #[test]
    fn events_patch_only_cached_services() {
        let mut state = State::default();
        let a = one("a", "latest");
        state.entries.insert(
            "a".into(),
            Entry {
                services: Arc::new(vec![a.clone()]),
                fetched: Instant::now(),
                stale: false,
            },
        );
        let a2 = one("a", "latest");
        let b = one("b", "latest");
        state.apply(WatchEvent::Create(a2.clone()));
        state.apply(WatchEvent::Create(b));
        assert!(
            !state.entries.contains_key("b"),
            "not looked up: not cached"
        );
        assert_eq!(state.entries["a"].services[0].nodes.len(), 2);
        state.apply(WatchEvent::Delete(a.clone()));
        assert_eq!(state.entries["a"].services[0].nodes, a2.nodes);
        state.apply(WatchEvent::Delete(a2));
        assert!(state.entries["a"].services.is_empty());
        state.apply(WatchEvent::Resync);
        assert!(state.entries["a"].stale);
        assert_eq!(state.changes["a"], 3);
    }

    #[test]
    fn update_moves_a_node_between_versions() {
        let mut services = vec![one("a", "v1")];
        let mut moved = services[0].clone();
        moved.version = "v2".into();
        upsert(&mut services, moved);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].version, "v2");
    }
}
