//! HPACK (RFC 7541) for this engine. Header blocks are encoded with static-table indexes and
//! plain literals, and the fields every call repeats (`:path`, `:authority`, `content-type`,
//! `te`, `grpc-timeout`, `grpc-status: 0`, ...) go into the dynamic table ([`Encoder`]), so
//! from the second call on each is a one-byte index the peer's decoder resolves without
//! parsing or allocating. Blocks are decoded by h2's decoder (dynamic table, Huffman), which
//! hyper uses too.

use std::collections::VecDeque;

use http::{HeaderMap, StatusCode};
use prost::bytes::{BufMut, Bytes, BytesMut};

pub use h2::hpack_decoder::Decoder;
use h2::hpack_decoder::{DecoderError, Header};

/// Static-table indexes (RFC 7541 Appendix A) this engine sends.
pub const AUTHORITY: usize = 1;
pub const METHOD_POST: usize = 3;
pub const PATH: usize = 4;
pub const SCHEME_HTTP: usize = 6;
pub const STATUS_200: usize = 8;
pub const STATUS: usize = 8;
pub const CONTENT_TYPE: usize = 31;

/// An integer with an `n`-bit prefix (RFC 7541 §5.1); `flags` fills the byte's high bits.
fn put_int(out: &mut BytesMut, mut value: usize, n: u8, flags: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        out.put_u8(flags | value as u8);
        return;
    }
    out.put_u8(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.put_u8((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.put_u8(value as u8);
}

/// A string literal, not Huffman-coded.
fn put_str(out: &mut BytesMut, s: &[u8]) {
    put_int(out, s.len(), 7, 0);
    out.put_slice(s);
}

/// A field of the static table (name and value).
pub fn indexed(out: &mut BytesMut, index: usize) {
    put_int(out, index, 7, 0x80);
}

/// A literal value under a static-table name, without indexing.
pub fn literal_with_name(out: &mut BytesMut, index: usize, value: &[u8]) {
    put_int(out, index, 4, 0);
    put_str(out, value);
}

/// A literal name and value, without indexing.
pub fn literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0);
    put_str(out, name);
    put_str(out, value);
}

/// A `:status` field.
pub fn status(out: &mut BytesMut, status: StatusCode) {
    if status == StatusCode::OK {
        indexed(out, STATUS_200);
    } else {
        literal_with_name(out, STATUS, status.as_str().as_bytes());
    }
}

/// The size a table entry counts for (RFC 7541 §4.1).
fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

/// Names whose values repeat from call to call and are worth a table entry; any other field
/// (a message, a trace id) is sent as a literal that is not indexed, so it cannot churn the
/// table.
const INDEXED: [&str; 8] = [
    ":path",
    ":authority",
    "content-type",
    "te",
    "grpc-status",
    "grpc-timeout",
    "grpc-accept-encoding",
    "user-agent",
];

/// The encoding side's mirror of the peer decoder's dynamic table (RFC 7541 §2.3.2, §4).
#[derive(Debug)]
pub struct Encoder {
    /// Newest first: entry `i` has index 62 + `i`.
    table: VecDeque<(Bytes, Bytes)>,
    size: usize,
    max: usize,
    /// A smaller table size to announce at the start of the next block.
    update: Option<usize>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            table: VecDeque::new(),
            size: 0,
            max: 4096,
            update: None,
        }
    }
}

impl Encoder {
    /// The peer's SETTINGS_HEADER_TABLE_SIZE: a smaller table than the 4,096 bytes a decoder
    /// starts with is announced in the next block; a larger one is not used.
    pub fn set_peer_max(&mut self, max: usize) {
        if max < self.max {
            self.max = max;
            self.evict();
            self.update = Some(max);
        }
    }

    /// Starts a header block (with the pending table size update, if any).
    pub fn begin(&mut self, out: &mut BytesMut) {
        if let Some(size) = self.update.take() {
            put_int(out, size, 5, 0x20);
        }
    }

    /// A field: an index if the table has it, else a literal (added to the table if `name`
    /// is one of [`INDEXED`]). `static_name` is the name's static-table index, if any.
    pub fn field(
        &mut self,
        out: &mut BytesMut,
        static_name: Option<usize>,
        name: &str,
        value: &[u8],
    ) {
        if !INDEXED.contains(&name) {
            match static_name {
                Some(index) => literal_with_name(out, index, value),
                None => literal(out, name.as_bytes(), value),
            }
            return;
        }
        let found = self
            .table
            .iter()
            .position(|(n, v)| n.as_ref() == name.as_bytes() && v.as_ref() == value);
        if let Some(position) = found {
            indexed(out, 62 + position);
            return;
        }
        // Literal with incremental indexing (§6.2.1).
        match static_name {
            Some(index) => put_int(out, index, 6, 0x40),
            None => {
                out.put_u8(0x40);
                put_str(out, name.as_bytes());
            }
        }
        put_str(out, value);
        let size = entry_size(name.as_bytes(), value);
        if size > self.max {
            // The decoder empties its table and adds nothing (§4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.table.push_front((
            Bytes::copy_from_slice(name.as_bytes()),
            Bytes::copy_from_slice(value),
        ));
        self.size += size;
        self.evict();
    }

    /// Every field of `headers` ([`Encoder::field`]).
    pub fn fields(&mut self, out: &mut BytesMut, headers: &HeaderMap) {
        for (name, value) in headers {
            let static_name = (name == http::header::CONTENT_TYPE).then_some(CONTENT_TYPE);
            self.field(out, static_name, name.as_str(), value.as_bytes());
        }
    }

    fn evict(&mut self) {
        while self.size > self.max {
            let Some((name, value)) = self.table.pop_back() else {
                self.size = 0;
                break;
            };
            self.size -= entry_size(&name, &value);
        }
    }
}

/// A decoded header block: the pseudo-headers this engine reads, and the fields.
#[derive(Debug, Default)]
pub struct Block {
    pub method: Option<http::Method>,
    pub path: Option<Bytes>,
    pub status: Option<StatusCode>,
    pub fields: HeaderMap,
}

/// Why a header block could not be read: the connection must end (COMPRESSION_ERROR).
#[derive(Debug)]
pub struct Malformed(pub String);

/// The largest header list we decode (RFC 9113's measure: name + value + 32 per field). HPACK
/// lets a small block name a large table entry many times; past this the connection ends.
pub const MAX_HEADER_LIST: usize = 1024 * 1024;

/// Decodes `block` (HEADERS and CONTINUATION payloads joined) with the connection's decoder.
/// A list over [`MAX_HEADER_LIST`] or over what a `HeaderMap` holds is an error: decoding stops
/// mid-block, so the connection cannot go on.
pub fn decode(decoder: &mut Decoder, block: &mut BytesMut) -> Result<Block, Malformed> {
    use std::ops::ControlFlow;
    let mut out = Block::default();
    let mut size = 0usize;
    let mut too_large = false;
    let mut cursor = std::io::Cursor::new(block);
    decoder
        .decode(&mut cursor, |header| {
            size += header.len();
            if size > MAX_HEADER_LIST {
                too_large = true;
                return ControlFlow::Break(());
            }
            match header {
                Header::Field { name, value } => {
                    if out.fields.try_append(name, value).is_err() {
                        too_large = true;
                        return ControlFlow::Break(());
                    }
                }
                Header::Method(method) => out.method = Some(method),
                Header::Path(path) => out.path = Some(Bytes::copy_from_slice(path.as_bytes())),
                Header::Status(status) => out.status = Some(status),
                Header::Authority(_) | Header::Scheme(_) | Header::Protocol(_) => {}
            }
            ControlFlow::Continue(())
        })
        .map_err(|e: DecoderError| Malformed(format!("{e:?}")))?;
    if too_large {
        return Err(Malformed(format!(
            "header list over {MAX_HEADER_LIST} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn integers_use_the_prefix_then_continuation_bytes() {
        // RFC 7541 C.1.1 and C.1.2.
        let mut out = BytesMut::new();
        put_int(&mut out, 10, 5, 0);
        assert_eq!(&out[..], [10]);
        let mut out = BytesMut::new();
        put_int(&mut out, 1337, 5, 0);
        assert_eq!(&out[..], [31, 154, 10]);
    }

    #[test]
    fn what_we_encode_h2_decodes() {
        let mut block = BytesMut::new();
        indexed(&mut block, METHOD_POST);
        indexed(&mut block, SCHEME_HTTP);
        literal_with_name(&mut block, PATH, b"/go.micro.srv.greeter.Say/Hello");
        literal_with_name(&mut block, AUTHORITY, b"127.0.0.1:1");
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/grpc"));
        map.insert("te", HeaderValue::from_static("trailers"));
        let long = "x".repeat(300);
        map.insert("x-long", HeaderValue::from_str(&long).expect("value"));
        Encoder::default().fields(&mut block, &map);
        let mut decoder = Decoder::new(4096);
        let decoded = decode(&mut decoder, &mut block).expect("decodes");
        assert_eq!(decoded.method, Some(http::Method::POST));
        assert_eq!(
            decoded.path.as_deref(),
            Some(&b"/go.micro.srv.greeter.Say/Hello"[..])
        );
        assert_eq!(decoded.fields, map);

        let mut block = BytesMut::new();
        status(&mut block, StatusCode::OK);
        status(&mut block, StatusCode::NOT_FOUND);
        let decoded = decode(&mut decoder, &mut block).expect("decodes");
        // The last `:status` wins; both decode.
        assert_eq!(decoded.status, Some(StatusCode::NOT_FOUND));
    }

    #[test]
    fn the_dynamic_table_stays_in_step_with_h2s_decoder() {
        let mut encoder = Encoder::default();
        let mut decoder = Decoder::new(4096);
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/grpc"));
        map.insert("te", HeaderValue::from_static("trailers"));
        map.insert("grpc-timeout", HeaderValue::from_static("5S"));
        map.insert("x-trace", HeaderValue::from_static("not indexed"));
        // Paths long enough that the 4,096-byte table evicts old entries as new ones come.
        for i in 0..200 {
            let path = format!("/svc.S/M{}{}", i % 40, "p".repeat(i % 7 * 20));
            if i == 120 {
                // The peer shrinks its table: announced in the next block.
                encoder.set_peer_max(300);
            }
            let mut block = BytesMut::new();
            encoder.begin(&mut block);
            indexed(&mut block, METHOD_POST);
            encoder.field(&mut block, Some(PATH), ":path", path.as_bytes());
            encoder.field(&mut block, Some(AUTHORITY), ":authority", b"10.0.0.1:9");
            encoder.fields(&mut block, &map);
            let decoded = decode(&mut decoder, &mut block).expect("decodes");
            assert_eq!(decoded.path.as_deref(), Some(path.as_bytes()), "call {i}");
            assert_eq!(decoded.fields, map, "call {i}");
        }
        assert!(encoder.size <= 300);
        // The same call twice: the second time every indexed field is one byte; only the
        // literal that is never indexed (x-trace, 21 bytes) is spelled out again.
        let mut blocks = Vec::new();
        for _ in 0..2 {
            let mut block = BytesMut::new();
            encoder.begin(&mut block);
            indexed(&mut block, METHOD_POST);
            encoder.field(&mut block, Some(PATH), ":path", b"/svc.S/Same");
            encoder.field(&mut block, Some(AUTHORITY), ":authority", b"10.0.0.1:9");
            encoder.fields(&mut block, &map);
            blocks.push(block.clone());
            let decoded = decode(&mut decoder, &mut block).expect("decodes");
            assert_eq!(decoded.fields, map);
        }
        assert_eq!(blocks[1].len(), 1 + 2 + 3 + 21, "{:?}", blocks[1]);
        assert!(
            blocks[0].len() > blocks[1].len() + 10,
            "the new path is a literal"
        );
    }

    #[test]
    fn header_lists_past_the_limit_are_errors_not_panics() {
        // One 200-byte field in the table, then 40,000 one-byte references to it: 40 KB of
        // block, 9 MB (and more fields than a HeaderMap holds) decoded.
        let mut block = BytesMut::new();
        block.put_u8(0x40);
        put_str(&mut block, b"x-big");
        put_str(&mut block, &[b'v'; 200]);
        for _ in 0..40_000 {
            indexed(&mut block, 62);
        }
        let mut decoder = Decoder::new(4096);
        let error = decode(&mut decoder, &mut block).expect_err("too large");
        assert!(error.0.contains("header list over"), "{error:?}");
        // Many small fields: the size limit (~31,700 of these) comes before the 32,768 fields a
        // HeaderMap holds, whose `append` would panic past it.
        let mut block = BytesMut::new();
        block.put_u8(0x40);
        put_str(&mut block, b"a");
        put_str(&mut block, b"");
        for _ in 0..40_000 {
            indexed(&mut block, 62);
        }
        let mut decoder = Decoder::new(4096);
        assert!(decode(&mut decoder, &mut block).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decoder = Decoder::new(4096);
        for bytes in [
            &[0xff_u8, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x80],
            &[0x00, 0x7f],
        ] {
            let mut block = BytesMut::from(bytes);
            assert!(decode(&mut decoder, &mut block).is_err(), "{bytes:?}");
        }
    }
}
