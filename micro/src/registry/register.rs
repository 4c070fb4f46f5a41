//! Registration and its heartbeat: one lease per node, kept alive every interval.
//!
//! Each interval, for each node: a keep-alive of its lease; if the lease is gone (TTL 0, not
//! found, or no member answered for longer than the TTL) a new lease is granted and the value put
//! again; otherwise a read of the key puts it back if it was deleted or changed by hand. So a
//! registration heals within one interval, where go-micro's plugin did not.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::types::Service;
use super::{Error, Registry};

/// go-micro's `RegisterTTL` and `RegisterInterval`.
#[derive(Debug, Clone, Copy)]
pub struct RegisterOptions {
    /// Lease TTL; the registration disappears this long after the last heartbeat.
    pub ttl: Duration,
    /// How often the lease is kept alive and the key checked.
    pub interval: Duration,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            ttl: Duration::from_secs(30),
            interval: Duration::from_secs(10),
        }
    }
}

impl RegisterOptions {
    fn ttl_secs(&self) -> i64 {
        let secs = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }
}

/// A live registration: the heartbeat runs until [`Registration::deregister`] or
/// [`Registration::abort`] (or drop, which aborts).
#[derive(Debug)]
pub struct Registration {
    registry: Registry,
    nodes: Arc<Vec<NodeReg>>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct NodeReg {
    key: String,
    value: String,
    /// Current lease id, 0 while none is held.
    lease: AtomicI64,
}

impl Registry {
    /// Registers every node of `service` (each its own key and lease) and keeps them alive.
    /// Fails if the first registration fails; later failures are retried each interval.
    pub async fn register(
        &self,
        service: &Service,
        options: RegisterOptions,
    ) -> Result<Registration, Error> {
        if service.nodes.is_empty() {
            return Err(Error::NoNode(service.name.clone()));
        }
        let mut nodes = Vec::new();
        for node in &service.nodes {
            let value = serde_json::to_string(&service.with_only(node)).map_err(|source| {
                Error::Encode {
                    name: service.name.clone(),
                    source,
                }
            })?;
            let reg = NodeReg {
                key: self.node_key(&service.name, &node.id),
                value,
                lease: AtomicI64::new(0),
            };
            self.register_new_lease(&reg, options).await?;
            nodes.push(reg);
        }
        let nodes = Arc::new(nodes);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(heartbeat(
            self.clone(),
            nodes.clone(),
            options,
            cancel.clone(),
        ));
        Ok(Registration {
            registry: self.clone(),
            nodes,
            cancel,
            task: Some(task),
        })
    }

    async fn register_new_lease(
        &self,
        reg: &NodeReg,
        options: RegisterOptions,
    ) -> Result<(), Error> {
        let lease = self.grant(options.ttl_secs()).await?;
        self.put(&reg.key, &reg.value, lease).await?;
        reg.lease.store(lease, Ordering::Relaxed);
        tracing::debug!(key = %reg.key, lease, "registered");
        Ok(())
    }

    /// One heartbeat of one node; `last_ok` is when the registry last confirmed its lease.
    async fn refresh(
        &self,
        reg: &NodeReg,
        options: RegisterOptions,
        last_ok: &mut Instant,
    ) -> Result<(), Error> {
        let lease = reg.lease.load(Ordering::Relaxed);
        if lease != 0 {
            match self.keep_alive_once(lease).await {
                Ok(ttl) if ttl > 0 => *last_ok = Instant::now(),
                Ok(_) => {
                    tracing::info!(key = %reg.key, lease, "lease lost, registering again");
                    reg.lease.store(0, Ordering::Relaxed);
                }
                Err(Error::Status { status, .. }) if status.code() == tonic::Code::NotFound => {
                    tracing::info!(key = %reg.key, lease, "lease not found, registering again");
                    reg.lease.store(0, Ordering::Relaxed);
                }
                Err(e) => {
                    if last_ok.elapsed() > options.ttl {
                        // The registry cannot have kept it: start afresh once it answers.
                        reg.lease.store(0, Ordering::Relaxed);
                    }
                    return Err(e);
                }
            }
        }
        let lease = reg.lease.load(Ordering::Relaxed);
        if lease == 0 {
            self.register_new_lease(reg, options).await?;
            *last_ok = Instant::now();
            return Ok(());
        }
        let kvs = self.range(reg.key.as_bytes().to_vec(), Vec::new()).await?;
        let intact = kvs
            .first()
            .is_some_and(|kv| kv.value == reg.value.as_bytes() && kv.lease == lease);
        if !intact {
            tracing::info!(key = %reg.key, lease, "registration missing or changed, putting it back");
            self.put(&reg.key, &reg.value, lease).await?;
        }
        Ok(())
    }
}

async fn heartbeat(
    registry: Registry,
    nodes: Arc<Vec<NodeReg>>,
    options: RegisterOptions,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last_ok = vec![Instant::now(); nodes.len()];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for (reg, last_ok) in nodes.iter().zip(last_ok.iter_mut()) {
            let refreshed = tokio::select! {
                _ = cancel.cancelled() => return,
                r = registry.refresh(reg, options, last_ok) => r,
            };
            if let Err(error) = refreshed {
                tracing::warn!(key = %reg.key, %error, "heartbeat failed");
            }
        }
    }
}

impl Registration {
    /// The registry keys of the registered nodes.
    pub fn keys(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.key.clone()).collect()
    }

    /// The lease of each node (0 while a new one is being granted).
    pub fn lease_ids(&self) -> Vec<i64> {
        self.nodes
            .iter()
            .map(|n| n.lease.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops the heartbeat, deletes every key and revokes every lease.
    pub async fn deregister(mut self) -> Result<(), Error> {
        self.stop_heartbeat().await;
        for reg in self.nodes.iter() {
            let attached = self.registry.delete(reg.key.as_bytes().to_vec()).await?;
            let held = reg.lease.load(Ordering::Relaxed);
            for lease in [
                Some(held).filter(|l| *l != 0),
                attached.filter(|l| *l != held),
            ]
            .into_iter()
            .flatten()
            {
                self.registry.revoke(lease).await?;
            }
        }
        Ok(())
    }

    /// Stops the heartbeat and leaves the keys to expire with their leases, as if the process
    /// had died.
    pub async fn abort(mut self) {
        self.stop_heartbeat().await;
    }

    async fn stop_heartbeat(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "heartbeat task ended badly");
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
