//! [`Registry`]: the etcd v3 calls behind go-micro's registry interface (reads, writes, leases).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest,
};
use proto::mvccpb::KeyValue;
use tokio_stream::wrappers::ReceiverStream;

use super::pool::Pool;
use super::types::{group_by_version, node_key_in, prefix_end, service_prefix_in, Service};
use super::{Error, RegistryOptions};

/// A go-micro registry client over etcd v3; clones share the connections and the read counter.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    reads: AtomicU64,
    /// Key prefix of every registration, ending in `/`.
    prefix: String,
}

impl Registry {
    /// A client of the members in `options`; connects on first use.
    pub fn new(options: &RegistryOptions) -> Result<Self, Error> {
        let pool = Pool::new(options)?;
        let mut prefix = options.prefix.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Registry {
            inner: Arc::new(Inner {
                pool,
                reads: AtomicU64::new(0),
                prefix,
            }),
        })
    }

    /// The key prefix of every registration (`/micro-registry/`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The key of node `node_id` of `service` under this registry's prefix.
    pub fn node_key(&self, service: &str, node_id: &str) -> String {
        node_key_in(&self.inner.prefix, service, node_id)
    }

    /// The member URLs this client fails over between.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.pool.endpoints()
    }

    /// How many service lookups (`get_service`, `list_services`) this client has sent: what a
    /// caching selector is meant to keep low.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Every version of `name` with its nodes (empty if none is registered).
    pub async fn get_service(&self, name: &str) -> Result<Vec<Service>, Error> {
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let prefix = service_prefix_in(&self.inner.prefix, name).into_bytes();
        let end = prefix_end(&prefix);
        let kvs = self.range(prefix, end).await?;
        Ok(group_by_version(kvs.iter().filter_map(decode)))
    }

    /// Every registered service, one entry per name and version, sorted by name.
    pub async fn list_services(&self) -> Result<Vec<Service>, Error> {
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let prefix = self.inner.prefix.as_bytes().to_vec();
        let end = prefix_end(&prefix);
        let kvs = self.range(prefix, end).await?;
        let mut services = group_by_version(kvs.iter().filter_map(decode));
        services.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(services)
    }

    /// Removes every node of `service` and revokes the lease each was kept alive by.
    pub async fn deregister(&self, service: &Service) -> Result<(), Error> {
        for node in &service.nodes {
            let key = self.node_key(&service.name, &node.id);
            if let Some(lease) = self.delete(key.into_bytes()).await? {
                self.revoke(lease).await?;
            }
        }
        Ok(())
    }

    /// All key-values in `[key, end)`.
    pub(crate) async fn range(&self, key: Vec<u8>, end: Vec<u8>) -> Result<Vec<KeyValue>, Error> {
        let request = RangeRequest {
            key,
            range_end: end,
            ..Default::default()
        };
        self.pool()
            .call("range", |ch| {
                let request = request.clone();
                async move { KvClient::new(ch).range(request).await }
            })
            .await
            .map(|r| r.into_inner().kvs)
    }

    /// Puts `value` at `key`, attached to `lease` (0: none).
    pub(crate) async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), Error> {
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease,
            ..Default::default()
        };
        self.pool()
            .call("put", |ch| {
                let request = request.clone();
                async move { KvClient::new(ch).put(request).await }
            })
            .await
            .map(|_| ())
    }

    /// Deletes `key`; returns the lease it was attached to, if any.
    pub(crate) async fn delete(&self, key: Vec<u8>) -> Result<Option<i64>, Error> {
        let request = DeleteRangeRequest {
            key,
            prev_kv: true,
            ..Default::default()
        };
        let response = self
            .pool()
            .call("delete", |ch| {
                let request = request.clone();
                async move { KvClient::new(ch).delete_range(request).await }
            })
            .await?
            .into_inner();
        Ok(response
            .prev_kvs
            .first()
            .map(|kv| kv.lease)
            .filter(|lease| *lease != 0))
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub(crate) async fn grant(&self, ttl: i64) -> Result<i64, Error> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        let response = self
            .pool()
            .call("lease grant", |ch| async move {
                LeaseClient::new(ch).lease_grant(request).await
            })
            .await?
            .into_inner();
        if !response.error.is_empty() {
            return Err(Error::Grant(response.error));
        }
        Ok(response.id)
    }

    /// Revokes `lease`; an unknown lease is already gone, which is what was asked.
    pub(crate) async fn revoke(&self, lease: i64) -> Result<(), Error> {
        let result = self
            .pool()
            .call("lease revoke", |ch| async move {
                LeaseClient::new(ch)
                    .lease_revoke(LeaseRevokeRequest { id: lease })
                    .await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::Status { status, .. }) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One keep-alive of `lease` on the LeaseKeepAlive stream; returns the TTL the member
    /// answered (0: the lease no longer exists).
    pub(crate) async fn keep_alive_once(&self, lease: i64) -> Result<i64, Error> {
        self.pool()
            .call("lease keep-alive", |ch| async move {
                // Keep the request side open until the answer is in, so the member does not see
                // end-of-stream before it has answered.
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tx.send(LeaseKeepAliveRequest { id: lease })
                    .await
                    .map_err(|_| tonic::Status::internal("keep-alive request dropped"))?;
                let mut answers = LeaseClient::new(ch)
                    .lease_keep_alive(ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                let answer = answers.message().await?;
                drop(tx);
                answer
                    .map(|a| a.ttl)
                    .ok_or_else(|| tonic::Status::unavailable("keep-alive stream ended"))
            })
            .await
    }
}

/// A registry value, or `None` (with a warning) if it is not a go-micro service.
pub(crate) fn decode(kv: &KeyValue) -> Option<Service> {
    match serde_json::from_slice::<Service>(&kv.value) {
        Ok(service) => Some(service),
        Err(error) => {
            tracing::warn!(key = %String::from_utf8_lossy(&kv.key), %error, "skipping a registry value that is not a service");
            None
        }
    }
}
