//! Random frames against our gRPC server and client on h2: nothing a peer sends may panic either
//! end. A panic hook counts the panics of any task of these tests: each runs on its test's own
//! thread (a current-thread runtime), and the hook counts only on those threads, as the package's
//! other tests share this process (tests/it) and one of them panics a handler on purpose.

use crate::common;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_lite::grpc;
use grpc_lite::http2::client::Connection;
use grpc_lite::server::{serve, Routes};
use http::HeaderMap;
use proto::greeter::{Request as Hello, Response as Answer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::Status;

static PANICS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the threads of these tests, whose runtimes run every task they spawn.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count_panics() {
    COUNTED.with(|c| c.set(true));
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if COUNTED.with(Cell::get) {
            PANICS.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A random frame: any type (mostly the known ones), flags, a small stream id, a payload that is
/// random or a plausible one for its type.
fn random_frame(rng: &mut Rng, out: &mut Vec<u8>) {
    let kind = if rng.below(8) == 0 {
        rng.below(256) as u8
    } else {
        rng.below(10) as u8
    };
    let flags = rng.below(256) as u8;
    let stream = match rng.below(4) {
        0 => 0,
        1 => rng.below(10) as u32 * 2 + 1,
        2 => rng.below(10) as u32 * 2,
        _ => rng.next() as u32,
    };
    let len = match rng.below(6) {
        0 => 0,
        1 => 4,
        2 => 8,
        3 => 6 * rng.below(4) as usize,
        _ => rng.below(300) as usize,
    };
    let payload = rng.bytes(len);
    common::frame(out, kind, flags, stream, &payload);
}

fn echo() -> Routes {
    Routes::new().unary("/go.micro.srv.greeter.Say/Hello", |req: Hello| async move {
        Ok::<_, Status>(Answer { msg: req.name })
    })
}

#[tokio::test]
async fn random_frames_neither_panic_the_server_nor_stop_it_serving() {
    let _process = common::beside_others().await;
    count_panics();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, echo(), stop.clone()));

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut out = common::PREFACE.to_vec();
        // Sometimes a valid request first, so later frames meet open streams.
        if rng.below(2) == 0 {
            out = common::preface();
            let block = common::request_block("/go.micro.srv.greeter.Say/Hello");
            common::frame(&mut out, common::HEADERS, common::END_HEADERS, 1, &block);
        }
        for _ in 0..rng.below(12) + 1 {
            random_frame(&mut rng, &mut out);
        }
        let mut socket = TcpStream::connect(&address).await.expect("connect");
        let _ = socket.write_all(&out).await;
        // Read whatever comes back until the server closes or goes quiet.
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(50), socket.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
        }
    }
    // The server still answers a well-formed client.
    let conn = Connection::connect(&address, Duration::from_secs(5))
        .await
        .expect("connect");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", grpc::CONTENT_TYPE);
    let reply = conn
        .unary(
            "/go.micro.srv.greeter.Say/Hello".into(),
            Arc::new(headers),
            grpc::encode(&Hello { name: "ok".into() }),
        )
        .await
        .expect("a reply");
    assert!(reply.trailers.is_some(), "{reply:?}");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked");
}

#[tokio::test]
async fn random_frames_from_a_server_fail_calls_without_panics() {
    let _process = common::beside_others().await;
    count_panics();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    // Answers every connection with a SETTINGS frame and then random frames.
    tokio::spawn(async move {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut out = Vec::new();
            common::frame(&mut out, common::SETTINGS, 0, 0, &[]);
            for _ in 0..rng.below(12) + 1 {
                random_frame(&mut rng, &mut out);
            }
            tokio::spawn(async move {
                let _ = socket.write_all(&out).await;
                let mut buf = [0u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    for _ in 0..200 {
        let conn = Connection::connect(&address, Duration::from_secs(5))
            .await
            .expect("connect");
        let call = conn.unary(
            "/go.micro.srv.greeter.Say/Hello".into(),
            Arc::new(HeaderMap::new()),
            grpc::encode(&Hello { name: "x".into() }),
        );
        // Whatever the answer (an error, mostly), it comes or the call is given up.
        let _ = tokio::time::timeout(Duration::from_millis(300), call).await;
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked");
}
