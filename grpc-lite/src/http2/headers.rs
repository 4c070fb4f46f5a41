//! The header blocks this engine sends, kept as fields until the moment they are written.
//!
//! Encoding a block changes the peer decoder's dynamic table (our [`Encoder`] mirrors it), so
//! the peer must decode blocks in the order they were encoded. A block can wait on the wire
//! side: an answer's trailers queue behind its DATA while the peer's window is spent, and
//! meanwhile other streams' HEADERS go out. If the trailers were encoded when they were queued,
//! the later HEADERS would name table entries the peer does not have yet (grpc-go: "invalid
//! indexed representation index 63"). So [`super::conn::Core`] encodes a [`Headers`] only when
//! it puts the block in its write buffer: table order is wire order by construction.

use std::sync::Arc;

use http::HeaderMap;
use prost::bytes::{Bytes, BytesMut};

use super::hpack::{self, Encoder};

/// A header block to send.
#[derive(Debug)]
pub enum Headers {
    /// A call: `POST`, `http`, `:path`, `:authority`, then `fields` (`te`, `content-type`,
    /// `grpc-timeout`, metadata).
    Request {
        path: String,
        authority: Bytes,
        fields: Arc<HeaderMap>,
    },
    /// An answer's headers: `:status: 200`, `content-type: application/grpc`.
    Response,
    /// The trailers of an answer with a message: `grpc-status: 0`.
    Ok,
    /// A trailers-only answer: the answer's headers, then `fields` (`grpc-status`,
    /// `grpc-message`, ...).
    TrailersOnly(HeaderMap),
}

impl Headers {
    /// Appends the block to `out`, updating `encoder`'s table as the peer's decoder will.
    pub fn encode(&self, encoder: &mut Encoder, out: &mut BytesMut) {
        encoder.begin(out);
        match self {
            Headers::Request {
                path,
                authority,
                fields,
            } => {
                hpack::indexed(out, hpack::METHOD_POST);
                hpack::indexed(out, hpack::SCHEME_HTTP);
                encoder.field(out, Some(hpack::PATH), ":path", path.as_bytes());
                encoder.field(out, Some(hpack::AUTHORITY), ":authority", authority);
                encoder.fields(out, fields);
            }
            Headers::Response => response(encoder, out),
            Headers::Ok => encoder.field(out, None, "grpc-status", b"0"),
            Headers::TrailersOnly(fields) => {
                response(encoder, out);
                encoder.fields(out, fields);
            }
        }
    }
}

fn response(encoder: &mut Encoder, out: &mut BytesMut) {
    hpack::status(out, http::StatusCode::OK);
    encoder.field(
        out,
        Some(hpack::CONTENT_TYPE),
        "content-type",
        b"application/grpc",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Decodes `headers` encoded with `encoder` by `decoder`.
    fn round_trip(
        encoder: &mut Encoder,
        decoder: &mut hpack::Decoder,
        headers: &Headers,
    ) -> hpack::Block {
        let mut out = BytesMut::new();
        headers.encode(encoder, &mut out);
        hpack::decode(decoder, &mut out).expect("decodes")
    }

    #[test]
    fn every_kind_of_block_decodes_in_step_with_the_table() {
        let mut encoder = Encoder::default();
        let mut decoder = hpack::Decoder::new(4096);
        let mut fields = HeaderMap::new();
        fields.insert("te", HeaderValue::from_static("trailers"));
        let request = Headers::Request {
            path: "/go.micro.srv.greeter.Say/Hello".into(),
            authority: Bytes::from_static(b"127.0.0.1:9"),
            fields: Arc::new(fields.clone()),
        };
        let mut status = HeaderMap::new();
        status.insert("grpc-status", HeaderValue::from_static("12"));
        // Twice each: the second time the indexed fields are table references.
        for _ in 0..2 {
            let block = round_trip(&mut encoder, &mut decoder, &request);
            assert_eq!(block.method, Some(http::Method::POST));
            assert_eq!(
                block.path.as_deref(),
                Some(&b"/go.micro.srv.greeter.Say/Hello"[..])
            );
            assert_eq!(block.fields, fields);
            let block = round_trip(&mut encoder, &mut decoder, &Headers::Response);
            assert_eq!(block.status, Some(http::StatusCode::OK));
            assert_eq!(
                block.fields.get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/grpc"[..])
            );
            let block = round_trip(&mut encoder, &mut decoder, &Headers::Ok);
            assert_eq!(
                block.fields.get("grpc-status").map(|v| v.as_bytes()),
                Some(&b"0"[..])
            );
            let block = round_trip(
                &mut encoder,
                &mut decoder,
                &Headers::TrailersOnly(status.clone()),
            );
            assert_eq!(block.status, Some(http::StatusCode::OK));
            assert_eq!(
                block.fields.get("grpc-status").map(|v| v.as_bytes()),
                Some(&b"12"[..])
            );
        }
    }
}
