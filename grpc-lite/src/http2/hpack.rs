//! HPACK (RFC 7541) for this engine: header blocks are encoded without the dynamic table
//! (static-table indexes and literals "without indexing", always valid whatever the peer's
//! table size), and decoded by h2's decoder (dynamic table, Huffman), which hyper uses too.

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

/// Every field of `headers` as literals (names are already lowercase in a `HeaderMap`).
pub fn fields(out: &mut BytesMut, headers: &HeaderMap) {
    for (name, value) in headers {
        if name == http::header::CONTENT_TYPE {
            literal_with_name(out, CONTENT_TYPE, value.as_bytes());
        } else {
            literal(out, name.as_str().as_bytes(), value.as_bytes());
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

/// Decodes `block` (HEADERS and CONTINUATION payloads joined) with the connection's decoder.
pub fn decode(decoder: &mut Decoder, block: &mut BytesMut) -> Result<Block, Malformed> {
    let mut out = Block::default();
    let mut cursor = std::io::Cursor::new(block);
    decoder
        .decode(&mut cursor, |header| {
            match header {
                Header::Field { name, value } => {
                    out.fields.append(name, value);
                }
                Header::Method(method) => out.method = Some(method),
                Header::Path(path) => out.path = Some(Bytes::copy_from_slice(path.as_bytes())),
                Header::Status(status) => out.status = Some(status),
                Header::Authority(_) | Header::Scheme(_) | Header::Protocol(_) => {}
            }
            std::ops::ControlFlow::Continue(())
        })
        .map_err(|e: DecoderError| Malformed(format!("{e:?}")))?;
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
        fields(&mut block, &map);
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
