//! Issue 4's failure suite, run against a real three-member etcd cluster and against our
//! in-process three-member registry: a crashed instance (no heartbeat) leaves the cache through
//! the watch, without registry reads per call; calls to it are retried on the live one; a killed
//! registry member does not stop registration, lookups or the cache's watch.

use std::collections::HashSet;
use std::time::Duration;

use crate::both_backends;
use crate::common::*;
use micro::registry;
use micro::selector::{Kind, Strategy};
use micro::testing::{wait_for, Backend};
use tokio::time::Instant;

both_backends!(lost_heartbeat_cache_and_retry, registry_member_killed,);

mod scenarios {
    use super::*;

    /// Two instances; random selection picks both; an application error is not retried; a killed
    /// instance's calls are retried on the live one; it disappears within its TTL and the cache
    /// selector stops choosing it without reading the registry per call.
    pub(super) async fn lost_heartbeat_cache_and_retry(b: Backend) -> Backend {
        let eps = b.endpoints();
        let one = start_greeter(&registry(eps.clone()), "one", FAST).await;
        let two = start_greeter(&registry(eps.clone()), "two", FAST).await;
        let caller = registry(eps.clone());
        let client = client(&caller, Kind::Cache, Strategy::Random);

        // --- random picks both
        let mut seen = HashSet::new();
        for _ in 0..40 {
            seen.insert(hello(&client, "John").await.expect("call"));
        }
        assert_eq!(
            seen,
            HashSet::from([
                "Hello John srv one".to_owned(),
                "Hello John srv two".to_owned()
            ])
        );

        // --- a service's own error comes back as go-micro's, not retried
        let err = hello(&client, "").await.expect_err("blank name");
        assert_eq!(
            (err.id.as_str(), err.code, err.detail.as_str()),
            (SRV, 400, "Name cannot be blank")
        );
        assert_eq!(err.status, "Bad Request");
        assert_eq!(client.retries(), 0, "application errors are not retried");
        let missing = client
            .call::<_, proto::greeter::Response>(
                "no.such.service",
                "Say.Hello",
                proto::greeter::Request::default(),
            )
            .await;
        // go-micro's client: InternalServerError "service no.such.service: not found".
        assert_eq!(missing.expect_err("unknown service").code, 500);

        // --- kill one: calls to it are retried on two
        let dead = one.node().id.clone();
        let reads_before = caller.reads();
        let killed_at = Instant::now();
        one.kill().await;
        for _ in 0..20 {
            assert_eq!(
                hello(&client, "John")
                    .await
                    .expect("retried on the live node"),
                "Hello John srv two"
            );
        }
        assert!(client.retries() >= 1, "a call to the dead node was retried");

        // --- gone within its TTL, seen through the watch, not by reads
        wait_for(
            "the dead node to leave the cache",
            Duration::from_secs(8),
            || {
                let client = client.clone();
                let dead = dead.clone();
                async move {
                    let nodes = client.selector().nodes(SRV).await.ok()?;
                    (!nodes.iter().any(|n| n.id == dead)).then_some(())
                }
            },
        )
        .await;
        let gone_after = killed_at.elapsed();
        assert!(
            gone_after <= Duration::from_secs(3) + Duration::from_secs(3),
            "gone within TTL (+expiry slack): {gone_after:?}"
        );
        assert_eq!(
            caller.get_service(SRV).await.expect("get")[0].nodes.len(),
            1
        );
        let reads_after_expiry = caller.reads();
        assert_eq!(
            reads_after_expiry,
            reads_before + 1,
            "cache read the registry only for the check above"
        );
        let retries = client.retries();
        for _ in 0..20 {
            assert_eq!(
                hello(&client, "Ann").await.expect("call"),
                "Hello Ann srv two"
            );
        }
        assert_eq!(
            caller.reads(),
            reads_after_expiry,
            "no registry read per call"
        );
        assert_eq!(
            client.retries(),
            retries,
            "the dead node is no longer chosen"
        );

        // --- for comparison: the registry selector reads every time
        let direct = client_reads(&caller).await;
        assert_eq!(direct, 5);
        two.stop().await.expect("stop");
        b
    }

    async fn client_reads(caller: &registry::Registry) -> u64 {
        let client = client(caller, Kind::Registry, Strategy::RoundRobin);
        let before = caller.reads();
        for _ in 0..5 {
            hello(&client, "x").await.expect("call");
        }
        caller.reads() - before
    }

    /// The member the clients talk to first is killed: registration (renewals, a new instance)
    /// and lookups go on through the others, and the cache's watch moves with them.
    pub(super) async fn registry_member_killed(mut b: Backend) -> Backend {
        let eps = b.endpoints();
        let reg = registry(eps.clone());
        let svc = start_greeter(&reg, "one", FAST).await;
        let caller = registry(eps.clone());
        let client = client(&caller, Kind::Cache, Strategy::Random);
        assert_eq!(
            hello(&client, "John").await.expect("call"),
            "Hello John srv one"
        );

        // --- kill member 0, first in every client's list
        b.stop(0).await;
        let others = eps[1..].to_vec();
        let lease = svc.registration().lease_ids()[0];
        let killed_at = Instant::now();
        wait_for(
            "a renewal through another member",
            Duration::from_secs(10),
            || {
                let others = others.clone();
                let svc = &svc;
                async move {
                    let current = svc.registration().lease_ids()[0];
                    let (ttl, _, keys) = time_to_live(&others, current).await?;
                    (killed_at.elapsed() > Duration::from_secs(4) && ttl > 0 && !keys.is_empty())
                        .then_some(())
                }
            },
        )
        .await;
        let current = svc.registration().lease_ids()[0];
        tracing::info!(lease, current, "lease after the kill");

        // --- lookups go on
        let fresh = registry(eps.clone());
        let services = fresh
            .get_service(SRV)
            .await
            .expect("lookup through the others");
        assert_eq!(services[0].nodes[0].id, svc.node().id);
        assert_eq!(
            hello(&client, "John").await.expect("call"),
            "Hello John srv one"
        );

        // --- a new registration goes through too, and the cache learns of it
        let two = start_greeter(&registry(eps.clone()), "two", FAST).await;
        let id = two.node().id.clone();
        wait_for(
            "the cache to see the new instance",
            Duration::from_secs(10),
            || {
                let client = client.clone();
                let id = id.clone();
                async move {
                    client
                        .selector()
                        .nodes(SRV)
                        .await
                        .ok()?
                        .iter()
                        .any(|n| n.id == id)
                        .then_some(())
                }
            },
        )
        .await;
        two.stop().await.expect("stop two");
        svc.stop().await.expect("stop one");
        b
    }
}
