//! Hostile peers against the server (h2's protections, set explicitly in `Limits`): one floods
//! PINGs and never reads what comes back (CVE-2019-9512's class), one opens and resets streams
//! in a loop (CVE-2023-44487's). Meanwhile another client keeps being served, and the server's
//! memory stays bounded: the flood stalls on back-pressure (the server stops reading while it
//! cannot write) and is dropped when its keep-alive PING goes unanswered; the resets leave no
//! handler running and no growth of this process's resident memory (server and peers share it).

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_lite::grpc;
use grpc_lite::http2::client::Connection;
use grpc_lite::server::{serve_with, Limits, Routes};
use http::{HeaderMap, HeaderValue};
use proto::greeter::{Request as Hello, Response as Answer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::Status;

const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";
const DEADLINE: Duration = Duration::from_secs(30);
/// Resident memory the server may gain under an attack (its buffers are a few MiB at most).
const RSS_SLACK_KIB: u64 = 64 * 1024;

/// Handlers running now, and the most seen at once.
#[derive(Default)]
struct Running {
    now: AtomicUsize,
    most: AtomicUsize,
}

struct Guard(Arc<Running>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// "slow" sleeps for a minute (unless dropped); anything else is echoed.
fn routes(running: Arc<Running>) -> Routes {
    Routes::new().unary(HELLO, move |req: Hello| {
        let now = running.now.fetch_add(1, Ordering::SeqCst) + 1;
        running.most.fetch_max(now, Ordering::SeqCst);
        let guard = Guard(Arc::clone(&running));
        async move {
            let _guard = guard;
            if req.name == "slow" {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, Status>(Answer { msg: req.name })
        }
    })
}

async fn start(limits: Limits, running: Arc<Running>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    // The server runs until the test's runtime ends.
    tokio::spawn(serve_with(
        listener,
        routes(running),
        limits,
        CancellationToken::new(),
    ));
    address
}

/// A well-behaved client calling in a loop until `stop`; returns how many calls succeeded, and
/// fails on the first call that fails or takes longer than DEADLINE.
async fn bystander(address: String, stop: CancellationToken) -> usize {
    let conn = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    let mut headers = HeaderMap::new();
    headers.insert("te", HeaderValue::from_static("trailers"));
    headers.insert("content-type", grpc::CONTENT_TYPE);
    let headers = Arc::new(headers);
    let mut served = 0;
    while !stop.is_cancelled() {
        let frame = grpc::encode(&Hello {
            name: format!("n{served}"),
        });
        let reply =
            tokio::time::timeout(DEADLINE, conn.unary(HELLO.into(), headers.clone(), frame))
                .await
                .expect("the bystander is answered in time")
                .expect("the bystander's call succeeds");
        let answer: Answer =
            grpc::decode(reply.message.expect("valid").expect("a message")).expect("decoded");
        assert_eq!(answer.msg, format!("n{served}"));
        served += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_never_reads_stalls_and_is_dropped() {
    // The two attacks measure this process's memory: one at a time, and no other test beside.
    let _alone = common::alone().await;
    let limits = Limits {
        keepalive_interval: Duration::from_millis(500),
        keepalive_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let address = start(limits, Arc::default()).await;
    let stop = CancellationToken::new();
    let served = tokio::spawn(bystander(address.clone(), stop.clone()));
    let rss_before = common::rss_kib();

    let mut socket = TcpStream::connect(&address).await.expect("connect");
    socket.write_all(&common::preface()).await.expect("preface");
    // 1,024 PINGs (17 KiB) per write, never reading the PONGs: the server's writes back up,
    // it stops reading, and our writes stall. Without back-pressure the PONGs would pile up
    // in its memory at the rate we write.
    let mut batch = Vec::new();
    for i in 0..1024u64 {
        common::frame(&mut batch, common::PING, 0, 0, &i.to_be_bytes());
    }
    let mut written = 0usize;
    let ended = loop {
        match tokio::time::timeout(DEADLINE, socket.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len(),
            // The server dropped us: its keep-alive PING went unanswered.
            Ok(Err(_)) => break true,
            // Stalled for the whole deadline and never dropped.
            Err(_) => break false,
        }
        assert!(
            written < 1024 * 1024 * 1024,
            "1 GiB of PINGs taken without back-pressure"
        );
    };
    assert!(ended, "the flooding connection was never dropped");
    eprintln!("{written} bytes of PINGs taken before the flooder was dropped");
    let rss_after = common::rss_kib();
    stop.cancel();
    let served = served.await.expect("bystander");
    assert!(served > 0, "the bystander made no call");
    assert!(
        rss_after < rss_before + RSS_SLACK_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB ({written} bytes of PINGs sent)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_and_reset_in_a_loop_leave_nothing_behind() {
    // The two attacks measure this process's memory: one at a time, and no other test beside.
    let _alone = common::alone().await;
    let running = Arc::new(Running::default());
    let limits = Limits::default();
    let max_streams = limits.max_streams as usize;
    let address = start(limits, Arc::clone(&running)).await;
    let stop = CancellationToken::new();
    let served = tokio::spawn(bystander(address.clone(), stop.clone()));
    let rss_before = common::rss_kib();

    // Each round: a connection opens streams with a complete "slow" request (its handler
    // starts) and resets each at once, reading (and dropping) what the server sends.
    let request = {
        let message = grpc::encode(&Hello {
            name: "slow".into(),
        });
        let block = common::request_block(HELLO);
        (block, message)
    };
    let mut streams = 0u64;
    // GOAWAYs by error code (ENHANCE_YOUR_CALM: h2's reset limits ended the connection).
    let mut goaways = std::collections::BTreeMap::new();
    for _round in 0..20 {
        let socket = TcpStream::connect(&address).await.expect("connect");
        let (mut reader, mut writer) = socket.into_split();
        let drain = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    // Only the start is kept: enough to find an early GOAWAY.
                    Ok(n) if seen.len() < 1024 * 1024 => seen.extend_from_slice(&buf[..n]),
                    Ok(_) => {}
                }
            }
            seen
        });
        writer.write_all(&common::preface()).await.expect("preface");
        let mut id = 1u32;
        'round: for _ in 0..50 {
            let mut out = Vec::new();
            for _ in 0..100 {
                common::frame(
                    &mut out,
                    common::HEADERS,
                    common::END_HEADERS,
                    id,
                    &request.0,
                );
                common::frame(&mut out, common::DATA, common::END_STREAM, id, &request.1);
                common::frame(
                    &mut out,
                    common::RST_STREAM,
                    0,
                    id,
                    &common::CANCEL.to_be_bytes(),
                );
                id += 2;
            }
            match tokio::time::timeout(DEADLINE, writer.write_all(&out)).await {
                Ok(Ok(())) => streams += 100,
                // The server ended the connection (GOAWAY: too many resets).
                Ok(Err(_)) => break 'round,
                Err(_) => panic!("the server stopped reading without closing"),
            }
        }
        drop(writer);
        let seen = tokio::time::timeout(DEADLINE, drain)
            .await
            .expect("the server closes once we have")
            .expect("join");
        let frames = common::frames(&seen);
        for goaway in frames.iter().filter(|f| f.kind == common::GOAWAY) {
            let code = u32::from_be_bytes(goaway.payload[4..8].try_into().expect("code"));
            *goaways.entry(code).or_insert(0) += 1;
        }
        assert!(
            running.most.load(Ordering::SeqCst) <= max_streams,
            "more handlers at once than streams allowed"
        );
    }
    // Every reset handler is dropped.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while running.now.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handlers left running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rss_after = common::rss_kib();
    stop.cancel();
    let served = served.await.expect("bystander");
    assert!(served > 0, "the bystander made no call");
    assert!(
        rss_after < rss_before + RSS_SLACK_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB ({streams} streams reset)"
    );
    eprintln!("{streams} streams opened and reset, GOAWAYs by code {goaways:?}, at most {} handlers at once",
        running.most.load(Ordering::SeqCst));
}
