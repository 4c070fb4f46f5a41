//! What the tests of broken and hostile peers send: HTTP/2 bytes written by hand (a frame's
//! 9-byte header and a payload; header blocks of HPACK literals), and a reader of the frames a
//! server answers with. Only what a misbehaving peer needs; the server under test is h2.

#![allow(dead_code)]

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The hostile-peer tests measure this process's resident memory, and every test of the package
/// shares this one process (tests/it): they hold `PROCESS` exclusively, every other test holds it
/// shared, so nothing else allocates while they measure (as when they had a process of their own).
static PROCESS: RwLock<()> = RwLock::const_new(());

/// For a test that measures the whole process: waits until no other test runs.
pub(crate) async fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESS.write().await
}

/// For every other test: runs beside any test but one that measures the process.
pub(crate) async fn beside_others() -> RwLockReadGuard<'static, ()> {
    PROCESS.read().await
}

/// What a client sends first.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame's header: length (3 bytes), type, flags, stream id (4 bytes).
pub(crate) const HEAD: usize = 9;

pub(crate) const DATA: u8 = 0;
pub(crate) const HEADERS: u8 = 1;
pub(crate) const RST_STREAM: u8 = 3;
pub(crate) const SETTINGS: u8 = 4;
pub(crate) const PING: u8 = 6;
pub(crate) const GOAWAY: u8 = 7;
pub(crate) const WINDOW_UPDATE: u8 = 8;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

pub(crate) const NO_ERROR: u32 = 0x0;
pub(crate) const PROTOCOL_ERROR: u32 = 0x1;
pub(crate) const FRAME_SIZE_ERROR: u32 = 0x6;
pub(crate) const CANCEL: u32 = 0x8;
pub(crate) const COMPRESSION_ERROR: u32 = 0x9;

/// Appends a frame.
pub(crate) fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a test frame under 16 MiB");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The client preface and an empty SETTINGS frame.
pub(crate) fn preface() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    out
}

/// A header block of a gRPC request to `path`, as HPACK literals without indexing (RFC 7541
/// §6.2.2): `:method POST` and `:scheme http` by static index, `:path` and `content-type` with
/// indexed names, `te: trailers` with a literal name.
pub(crate) fn request_block(path: &str) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        assert!(s.len() < 127, "short strings only");
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }
    let mut out = vec![0x83, 0x86]; // :method POST, :scheme http
    out.push(0x04); // :path, static index 4
    string(&mut out, path.as_bytes());
    out.extend_from_slice(&[0x0f, 0x10]); // content-type, static index 31 = 15 + 16
    string(&mut out, b"application/grpc");
    out.push(0x00);
    string(&mut out, b"te");
    string(&mut out, b"trailers");
    out
}

/// A frame read back: type, flags, stream, payload.
#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// The whole frames in `bytes` (a server's output, without a preface).
pub(crate) fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while bytes.len() >= HEAD {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if bytes.len() < HEAD + len {
            break;
        }
        out.push(Frame {
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
            payload: bytes[HEAD..HEAD + len].to_vec(),
        });
        bytes = &bytes[HEAD + len..];
    }
    out
}

/// Reads until the server closes the connection (or `limit` passes: a failure); returns the
/// error code of its last GOAWAY, if it sent one.
pub(crate) async fn goaway_then_close(mut socket: TcpStream, limit: Duration) -> Option<u32> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the server closes the connection");
    frames(&seen)
        .iter()
        .filter(|f| f.kind == GOAWAY && f.payload.len() >= 8)
        .map(|f| u32::from_be_bytes(f.payload[4..8].try_into().expect("4 bytes")))
        .next_back()
}

/// The resident set of this process (the server under test runs in it), in KiB.
pub(crate) fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}
