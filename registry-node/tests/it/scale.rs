//! Leases and watches at scale: 1,000 leases kept alive through one member, 100 watchers on a
//! prefix each receiving every one of 1,000 puts in order, and 10,000 keys on leases that lapse
//! together all gone shortly after their TTL.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::*;
use registry_node::testing::TestCluster;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const LEADER_WAIT: Duration = Duration::from_secs(20);

fn channel(url: String) -> Channel {
    Channel::from_shared(url).expect("url").connect_lazy()
}

/// Grants `n` leases of `ttl` seconds with one key each under `prefix`, 32 at a time.
async fn grant_with_keys(ch: &Channel, n: usize, ttl: i64, prefix: &str) -> Vec<i64> {
    let ids = futures::stream::iter(0..n)
        .map(|i| {
            let ch = ch.clone();
            let key = format!("{prefix}{i:05}");
            async move {
                let g = LeaseClient::new(ch.clone())
                    .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                    .await
                    .expect("grant")
                    .into_inner();
                KvClient::new(ch)
                    .put(PutRequest {
                        key: key.into_bytes(),
                        value: b"v".to_vec(),
                        lease: g.id,
                        ..Default::default()
                    })
                    .await
                    .expect("put on lease");
                g.id
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<i64>>()
        .await;
    ids
}

async fn count(ch: &Channel, prefix: &str) -> i64 {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    KvClient::new(ch.clone())
        .range(RangeRequest {
            key: prefix.into(),
            range_end: end,
            count_only: true,
            ..Default::default()
        })
        .await
        .expect("count")
        .into_inner()
        .count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_leases_kept_alive_through_one_member_for_30s() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    // Everything through a follower: grants forwarded, keep-alives carried to the leader.
    let ch = channel(c.client_url((leader + 1) % 3));
    let ids = grant_with_keys(&ch, 1_000, 3, "/ka/").await;
    assert_eq!(count(&ch, "/ka/").await, 1_000);

    // --- one keep-alive stream renewing all of them every second, for 30 s
    let (tx, rx) = mpsc::channel(2_048);
    let mut answers = LeaseClient::new(ch.clone())
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .expect("keep-alive stream")
        .into_inner();
    let renewed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let zero = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (r, z) = (renewed.clone(), zero.clone());
    let reader = tokio::spawn(async move {
        while let Ok(Some(a)) = answers.message().await {
            r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if a.ttl <= 0 {
                z.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while start.elapsed() < Duration::from_secs(30) {
        ticker.tick().await;
        for id in &ids {
            tx.send(LeaseKeepAliveRequest { id: *id })
                .await
                .expect("send keep-alive");
        }
    }
    assert_eq!(count(&ch, "/ka/").await, 1_000, "no key lost");
    assert_eq!(
        zero.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no renewal answered TTL 0"
    );
    assert!(
        renewed.load(std::sync::atomic::Ordering::Relaxed) >= 25_000,
        "renewals answered"
    );
    drop(tx);
    reader.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_watchers_get_every_put_in_order() {
    let c = TestCluster::start(3).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let mut watchers = Vec::new();
    for w in 0..100 {
        let ch = channel(c.client_url(w % 3));
        let (tx, rx) = mpsc::channel(4);
        tx.send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: b"/w/".to_vec(),
                    range_end: b"/w0".to_vec(),
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("create");
        let mut stream = WatchClient::new(ch)
            .watch(ReceiverStream::new(rx))
            .await
            .expect("watch")
            .into_inner();
        let created = stream.message().await.expect("created").expect("created");
        assert!(created.created);
        watchers.push(tokio::spawn(async move {
            let _keep = tx;
            let mut revs = Vec::new();
            while revs.len() < 1_000 {
                match tokio::time::timeout(Duration::from_secs(60), stream.message()).await {
                    Ok(Ok(Some(resp))) => revs.extend(
                        resp.events
                            .iter()
                            .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision)),
                    ),
                    _ => break,
                }
            }
            revs
        }));
    }
    let ch = channel(c.client_url(0));
    let mut kv = KvClient::new(ch);
    let mut first = None;
    for n in 0..1_000 {
        let r = kv
            .put(PutRequest {
                key: format!("/w/{n}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .expect("put");
        first.get_or_insert(r.into_inner().header.expect("header").revision);
    }
    let first = first.expect("puts made");
    let want: Vec<i64> = (first..first + 1_000).collect();
    for (i, w) in watchers.into_iter().enumerate() {
        let got = w.await.expect("watcher");
        assert_eq!(got, want, "watcher {i} got every put, in order");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_leased_keys_lapse_together() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let ch = channel(c.client_url(leader));
    // Long enough that every grant is made before the first one lapses, also in a debug build
    // on a loaded 2-core machine (20 s was not, with the rest of the suite running).
    let ttl = 30;
    let started = tokio::time::Instant::now();
    grant_with_keys(&ch, 10_000, ttl, "/lapse/").await;
    let granted = started.elapsed();
    assert!(
        granted < Duration::from_secs(ttl as u64),
        "grants took {granted:?}; raise the TTL"
    );
    assert_eq!(count(&ch, "/lapse/").await, 10_000);
    let gone = common::wait_for(
        "every leased key to be gone",
        Duration::from_secs(ttl as u64 + 10),
        || {
            let ch = ch.clone();
            async move { (count(&ch, "/lapse/").await == 0).then_some(started.elapsed()) }
        },
    )
    .await;
    // The last lease lapses at `granted + ttl`; all are gone a few seconds after it.
    assert!(
        gone <= granted + Duration::from_secs(ttl as u64 + 5),
        "gone after {gone:?}, grants done after {granted:?}"
    );
    c.shutdown().await;
}
