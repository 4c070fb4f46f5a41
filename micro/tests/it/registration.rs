//! Issue 4's registration suite, run against a real three-member etcd cluster and against our
//! in-process three-member registry: go-micro's key and JSON, the lease and its renewal, graceful
//! stop, self-healing (hand-deleted key, revoked lease) and the watch's events.
//! TTL 3 s, interval 1 s; every wait has a deadline.

use std::collections::HashSet;
use std::time::Duration;

use crate::both_backends;
use crate::common::*;
use micro::registry::{self, Node, RegisterOptions, WatchEvent};
use micro::testing::{wait_for, Backend};
use serde_json::Value;
use tokio::time::Instant;

both_backends!(
    registration_format_lease_and_graceful_stop,
    self_healing_registration,
    watch_reports_every_event,
);

mod scenarios {
    use super::*;

    /// Key and JSON exactly as go-micro writes them; lease TTL = register TTL, renewed each
    /// interval; a graceful stop removes the node at once and revokes its lease.
    pub(super) async fn registration_format_lease_and_graceful_stop(b: Backend) -> Backend {
        let eps = b.endpoints();
        let reg = registry(eps.clone());
        let svc = start_greeter(&reg, "one", FAST).await;
        let node = svc.node().clone();

        // --- the raw value, read by etcdctl
        let raw = raw_registry(&eps).await;
        assert_eq!(raw.len(), 1, "one node, one key: {raw:?}");
        let (key, value) = &raw[0];
        assert_eq!(key, &format!("/micro-registry/{SRV}/{}", node.id));
        let uuid = node
            .id
            .strip_prefix(&format!("{SRV}-"))
            .expect("id is <service>-<uuid>");
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "uuid part: {uuid}");
        let json: Value = serde_json::from_str(value).expect("value is JSON");
        let fields: HashSet<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            fields,
            HashSet::from(["name", "version", "metadata", "endpoints", "nodes"])
        );
        assert_eq!(json["name"], SRV);
        assert_eq!(json["version"], "latest");
        assert!(json["metadata"].is_object());
        let ep = &json["endpoints"][0];
        assert_eq!(ep["name"], "Say.Hello");
        assert_eq!(ep["request"]["name"], "Request");
        assert_eq!(ep["request"]["type"], "Request");
        assert_eq!(ep["response"]["type"], "Response");
        assert_eq!(ep["metadata"]["stream"], "false");
        let nodes = json["nodes"].as_array().expect("nodes array");
        assert_eq!(nodes.len(), 1, "exactly this node");
        assert_eq!(nodes[0]["id"], node.id.as_str());
        assert_eq!(nodes[0]["address"], svc.address().to_string());
        for k in ["transport", "broker", "server", "registry", "protocol"] {
            assert!(nodes[0]["metadata"][k].is_string(), "node metadata {k}");
        }

        // --- the lease: TTL 3, renewed every interval
        let lease = svc.registration().lease_ids()[0];
        let (_, granted, keys) = time_to_live(&eps, lease).await.expect("timetolive");
        assert_eq!(granted, 3, "lease TTL = register TTL");
        assert_eq!(keys, vec![key.clone()]);
        if has_etcdctl() {
            let out = etcdctl(&eps, &["lease", "timetolive", &format!("{lease:x}")])
                .await
                .expect("etcdctl lease timetolive");
            assert!(out.contains("granted with TTL(3s)"), "{out}");
        }
        // etcd reports whole seconds rounded down, so with interval 1 s the remaining TTL
        // stays at 2: renewal shows as the lease outliving its TTL, never getting near expiry.
        let lowest = std::cell::Cell::new(i64::MAX);
        let registered_at = Instant::now();
        wait_for(
            "the lease to outlive its TTL by renewals",
            Duration::from_secs(8),
            || {
                let eps = eps.clone();
                let lowest = &lowest;
                async move {
                    let (ttl, _, _) = time_to_live(&eps, lease).await?;
                    lowest.set(lowest.get().min(ttl));
                    (registered_at.elapsed() > Duration::from_secs(4)).then_some(())
                }
            },
        )
        .await;
        assert!(
            lowest.get() >= 1,
            "renewed every interval, never near expiry: lowest remaining {}",
            lowest.get()
        );
        assert_eq!(
            svc.registration().lease_ids()[0],
            lease,
            "renewed, not replaced"
        );

        // --- graceful stop: gone at once
        svc.stop().await.expect("graceful stop");
        assert!(
            reg.get_service(SRV).await.expect("get").is_empty(),
            "deregistered at once"
        );
        assert!(raw_registry(&eps).await.is_empty());
        let (ttl, _, _) = time_to_live(&eps, lease).await.expect("timetolive");
        assert_eq!(ttl, -1, "lease revoked");
        b
    }

    /// A hand-deleted key comes back within one interval; a revoked lease leads to a new one.
    pub(super) async fn self_healing_registration(b: Backend) -> Backend {
        let eps = b.endpoints();
        let reg = registry(eps.clone());
        let svc = start_greeter(&reg, "one", FAST).await;
        let key = svc.registration().keys()[0].clone();
        let lease = svc.registration().lease_ids()[0];
        let original = raw_registry(&eps).await;

        // --- delete the key by hand
        let mut kv = proto::etcdserverpb::kv_client::KvClient::new(channel(&eps).await);
        kv.delete_range(proto::etcdserverpb::DeleteRangeRequest {
            key: key.clone().into_bytes(),
            ..Default::default()
        })
        .await
        .expect("delete by hand");
        let deleted_at = Instant::now();
        // Within one re-registration interval (2 s) and some slack, counted from the delete.
        wait_for(
            "the deleted key to come back within one interval",
            (Duration::from_secs(2) + Duration::from_millis(500))
                .saturating_sub(deleted_at.elapsed()),
            || {
                let eps = eps.clone();
                async move { (!raw_registry(&eps).await.is_empty()).then_some(()) }
            },
        )
        .await;
        assert_eq!(raw_registry(&eps).await, original, "same key and value");
        let (_, _, keys) = time_to_live(&eps, lease).await.expect("ttl");
        assert_eq!(keys, vec![key.clone()], "put back on the same lease");

        // --- revoke the lease by hand
        let mut leases = proto::etcdserverpb::lease_client::LeaseClient::new(channel(&eps).await);
        leases
            .lease_revoke(proto::etcdserverpb::LeaseRevokeRequest { id: lease })
            .await
            .expect("revoke by hand");
        let new_lease = wait_for(
            "registration under a new lease",
            Duration::from_secs(4),
            || {
                let eps = eps.clone();
                let current = svc.registration().lease_ids()[0];
                async move {
                    if current == lease || current == 0 || raw_registry(&eps).await.is_empty() {
                        return None;
                    }
                    Some(current)
                }
            },
        )
        .await;
        let (_, granted, keys) = time_to_live(&eps, new_lease).await.expect("ttl");
        assert_eq!((granted, keys), (3, vec![key.clone()]));
        svc.stop().await.expect("stop");
        b
    }

    /// Create, update, delete (a batch of two in one revision) and delete by lease expiry.
    pub(super) async fn watch_reports_every_event(b: Backend) -> Backend {
        let eps = b.endpoints();
        let reg = registry(eps.clone());
        let mut watcher = reg.watch();
        assert_eq!(
            next(&mut watcher).await,
            WatchEvent::Resync,
            "first: the watch is in place"
        );

        let mut svc = registry::Service::new("watched");
        svc.nodes.push(Node::new("watched", "127.0.0.1:1"));
        let a = reg.register(&svc, FAST).await.expect("register a");
        assert_eq!(next(&mut watcher).await, WatchEvent::Create(svc.clone()));

        // --- update by hand
        let mut changed = svc.clone();
        changed.metadata.insert("k".into(), "v".into());
        let mut kv = proto::etcdserverpb::kv_client::KvClient::new(channel(&eps).await);
        kv.put(proto::etcdserverpb::PutRequest {
            key: a.keys()[0].clone().into_bytes(),
            value: serde_json::to_vec(&changed).expect("json"),
            lease: a.lease_ids()[0],
            ..Default::default()
        })
        .await
        .expect("put by hand");
        assert_eq!(
            next(&mut watcher).await,
            WatchEvent::Update(changed.clone())
        );
        a.abort().await;

        // --- two deletes in one revision: both reported, from prev_kv
        let mut other = registry::Service::new("watched");
        other.nodes.push(Node::new("watched", "127.0.0.1:2"));
        let b2 = reg
            .register(
                &other,
                RegisterOptions {
                    ttl: Duration::from_secs(3),
                    interval: Duration::from_secs(60),
                },
            )
            .await
            .expect("register b");
        assert_eq!(next(&mut watcher).await, WatchEvent::Create(other.clone()));
        let prefix = registry::service_prefix("watched").into_bytes();
        kv.delete_range(proto::etcdserverpb::DeleteRangeRequest {
            range_end: registry::prefix_end(&prefix),
            key: prefix,
            ..Default::default()
        })
        .await
        .expect("delete both");
        let mut deleted = vec![next(&mut watcher).await, next(&mut watcher).await];
        let mut expected = vec![
            WatchEvent::Delete(changed),
            WatchEvent::Delete(other.clone()),
        ];
        let order = |e: &WatchEvent| format!("{e:?}");
        deleted.sort_by_key(order);
        expected.sort_by_key(order);
        assert_eq!(deleted, expected);

        // --- expiry: the heartbeat of b2 never comes (interval 60 s), the lease runs out
        kv.put(proto::etcdserverpb::PutRequest {
            key: b2.keys()[0].clone().into_bytes(),
            value: serde_json::to_vec(&other).expect("json"),
            lease: b2.lease_ids()[0],
            ..Default::default()
        })
        .await
        .expect("put b back");
        assert_eq!(next(&mut watcher).await, WatchEvent::Create(other.clone()));
        assert_eq!(
            next(&mut watcher).await,
            WatchEvent::Delete(other),
            "deleted by lease expiry"
        );
        b2.abort().await;
        b
    }

    async fn next(w: &mut registry::Watcher) -> WatchEvent {
        tokio::time::timeout(Duration::from_secs(8), w.next())
            .await
            .expect("an event in time")
            .expect("watcher open")
    }
}
