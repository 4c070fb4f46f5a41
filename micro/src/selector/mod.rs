//! Node selection, as go-micro's selector: look the service up (through the watch-driven
//! [`cache`] by default, or the registry every time), then pick one node with a [`Strategy`].
//!
//! Lookups hand out copies: nothing a caller holds is shared with the watcher.

pub mod cache;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::registry::{self, Node, Registry, Service};
pub use cache::CacheSelector;

/// Which lookup a selector uses (`--selector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kind {
    /// Keep looked-up services in memory, follow the registry with a watch.
    #[default]
    Cache,
    /// Ask the registry on every selection (for comparison).
    Registry,
}

/// How a node is picked among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Strategy {
    #[default]
    Random,
    RoundRobin,
}

/// Selector settings.
#[derive(Debug, Clone, Copy)]
pub struct SelectorOptions {
    pub kind: Kind,
    pub strategy: Strategy,
    /// How long the cache trusts an entry without a re-read (go-micro: 1 minute).
    pub cache_ttl: Duration,
}

impl Default for SelectorOptions {
    fn default() -> Self {
        SelectorOptions {
            kind: Kind::Cache,
            strategy: Strategy::Random,
            cache_ttl: Duration::from_secs(60),
        }
    }
}

/// Why no node was selected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service {0}: not found")]
    NotFound(String),
    #[error("service {0}: none available")]
    NoneAvailable(String),
    #[error(transparent)]
    Registry(#[from] registry::Error),
}

/// A node picker over the registry; clones share the cache and the round-robin counters.
#[derive(Debug, Clone)]
pub struct Selector {
    lookup: Lookup,
    strategy: Strategy,
    next: Arc<Mutex<HashMap<String, usize>>>,
}

#[derive(Debug, Clone)]
enum Lookup {
    Cache(CacheSelector),
    Registry(Registry),
}

impl Selector {
    pub fn new(registry: Registry, options: SelectorOptions) -> Self {
        let lookup = match options.kind {
            Kind::Cache => Lookup::Cache(CacheSelector::new(registry, options.cache_ttl)),
            Kind::Registry => Lookup::Registry(registry),
        };
        Selector {
            lookup,
            strategy: options.strategy,
            next: Arc::default(),
        }
    }

    /// Every version of `service`, copied.
    pub async fn lookup(&self, service: &str) -> Result<Vec<Service>, Error> {
        Ok(self.snapshot(service).await?.as_ref().clone())
    }

    /// Every version of `service` as a shared, immutable snapshot: the cheap form of
    /// [`lookup`](Self::lookup) for the per-call path (a reference count, no copy).
    pub async fn snapshot(&self, service: &str) -> Result<Arc<Vec<Service>>, Error> {
        let services = match &self.lookup {
            Lookup::Cache(cache) => cache.get(service).await?,
            Lookup::Registry(registry) => Arc::new(registry.get_service(service).await?),
        };
        if services.is_empty() {
            return Err(Error::NotFound(service.to_owned()));
        }
        Ok(services)
    }

    /// Every node of `service`, copied.
    pub async fn nodes(&self, service: &str) -> Result<Vec<Node>, Error> {
        let services = self.snapshot(service).await?;
        Ok(services.iter().flat_map(|s| s.nodes.clone()).collect())
    }

    /// One node of `service` by the strategy, skipping the node ids in `exclude`.
    pub async fn select(&self, service: &str, exclude: &[String]) -> Result<Node, Error> {
        self.select_with(service, exclude, Node::clone).await
    }

    /// Like [`select`](Self::select), but hands the chosen node to `f` by reference, so a
    /// caller that needs only its address copies nothing else.
    pub async fn select_with<R>(
        &self,
        service: &str,
        exclude: &[String],
        f: impl FnOnce(&Node) -> R,
    ) -> Result<R, Error> {
        let services = self.snapshot(service).await?;
        let nodes = services.iter().flat_map(|s| s.nodes.iter());
        self.pick(service, nodes, exclude)
            .map(f)
            .ok_or_else(|| Error::NoneAvailable(service.to_owned()))
    }

    fn pick<'a>(
        &self,
        service: &str,
        nodes: impl Iterator<Item = &'a Node> + Clone,
        exclude: &[String],
    ) -> Option<&'a Node> {
        let mut candidates = nodes.filter(|n| !exclude.contains(&n.id));
        match self.strategy {
            Strategy::Random => {
                let count = candidates.clone().count();
                if count == 0 {
                    return None;
                }
                candidates.nth(rand::rng().random_range(0..count))
            }
            Strategy::RoundRobin => {
                // Stable order, so that the counter walks the same list every time.
                let mut sorted: Vec<&Node> = candidates.collect();
                if sorted.is_empty() {
                    return None;
                }
                sorted.sort_by(|a, b| a.id.cmp(&b.id));
                let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
                let counter = next.entry(service.to_owned()).or_insert(0);
                let i = *counter % sorted.len();
                *counter = counter.wrapping_add(1);
                Some(sorted[i])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(strategy: Strategy) -> Selector {
        let registry = Registry::new(&registry::RegistryOptions::new(vec![
            "127.0.0.1:1".to_owned()
        ]))
        .expect("registry client");
        Selector::new(
            registry,
            SelectorOptions {
                kind: Kind::Registry,
                strategy,
                ..Default::default()
            },
        )
    }

    fn nodes() -> Vec<Node> {
        (0..3).map(|_| Node::new("s", "h:1")).collect()
    }

    #[tokio::test]
    async fn round_robin_visits_every_node_in_turn() {
        let sel = selector(Strategy::RoundRobin);
        let nodes = nodes();
        let picked: Vec<String> = (0..6)
            .filter_map(|_| sel.pick("s", nodes.iter(), &[]))
            .map(|n| n.id.clone())
            .collect();
        assert_eq!(picked[0..3], picked[3..6]);
        let mut distinct = picked[0..3].to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
    }

    #[tokio::test]
    async fn exclusion_is_respected() {
        let sel = selector(Strategy::Random);
        let nodes = nodes();
        let exclude: Vec<String> = nodes[..2].iter().map(|n| n.id.clone()).collect();
        for _ in 0..20 {
            let n = sel.pick("s", nodes.iter(), &exclude).expect("one left");
            assert_eq!(n.id, nodes[2].id);
        }
        let all: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        assert!(sel.pick("s", nodes.iter(), &all).is_none());
    }
}
