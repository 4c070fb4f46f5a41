//! gRPC's wire format over HTTP/2, shared by the server ([`crate::server`]) and the client
//! ([`crate::client`]): the 5-byte message prefix (compressed flag, big-endian length), the
//! `grpc-timeout` header and the statuses tonic answers for malformed input, so that both sides
//! behave on the wire as tonic did before they were moved onto hyper directly.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use tonic::{Code, Status};

/// Compressed flag (1 byte) and message length (4 bytes, big endian).
pub const PREFIX: usize = 5;
/// Largest message accepted (tonic's and grpc-go's default receive limit).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// `content-type` of every gRPC request and response.
pub const CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/grpc");
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
pub const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";
pub const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// `message` as one gRPC frame (uncompressed), in one allocation.
pub fn encode<M: prost::Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    // prost messages are far below 4 GiB; a larger one would fail the peer's size check.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Cannot fail: the buffer has exactly the room the message needs.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// Decodes one message's bytes (without prefix) as tonic's prost codec does.
pub fn decode<M: prost::Message + Default>(bytes: Bytes) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| Status::internal(e.to_string()))
}

/// Which way the frames go (the error messages differ, as tonic's do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    /// A response, with its HTTP status.
    Response(StatusCode),
}

/// Reads the gRPC frames of a body as its DATA frames arrive, keeping the first message (a
/// unary call has one; later ones are checked for framing and dropped). A body delivered in one
/// DATA frame, the usual case, is sliced without a copy.
#[derive(Debug)]
pub struct Frames {
    direction: Direction,
    pending: BytesMut,
    first: Option<Bytes>,
    limit: usize,
}

impl Frames {
    /// Frames of messages up to [`MAX_MESSAGE_SIZE`].
    pub fn new(direction: Direction) -> Self {
        Frames::with_limit(direction, MAX_MESSAGE_SIZE)
    }

    /// Frames of messages up to `limit` bytes.
    pub fn with_limit(direction: Direction, limit: usize) -> Self {
        Frames {
            direction,
            pending: BytesMut::new(),
            first: None,
            limit,
        }
    }

    /// Takes in the next DATA frame's bytes; fails on a bad flag or an oversized length as soon
    /// as the prefix is seen.
    pub fn push(&mut self, mut data: Bytes) -> Result<(), Status> {
        if self.pending.is_empty() {
            while data.len() >= PREFIX {
                let len = self.check_prefix(&data[..PREFIX])?;
                if data.len() < PREFIX + len {
                    break;
                }
                let message = data.slice(PREFIX..PREFIX + len);
                data.advance(PREFIX + len);
                self.first.get_or_insert(message);
            }
            if !data.is_empty() {
                self.pending.extend_from_slice(&data);
            }
            return Ok(());
        }
        self.pending.extend_from_slice(&data);
        while self.pending.len() >= PREFIX {
            let len = self.check_prefix(&self.pending[..PREFIX])?;
            if self.pending.len() < PREFIX + len {
                break;
            }
            self.pending.advance(PREFIX);
            let message = self.pending.split_to(len).freeze();
            self.first.get_or_insert(message);
        }
        Ok(())
    }

    /// The first message, once the body has ended; leftover bytes are tonic's "Unexpected EOF".
    pub fn finish(self) -> Result<Option<Bytes>, Status> {
        if !self.pending.is_empty() {
            return Err(Status::internal("Unexpected EOF decoding stream."));
        }
        Ok(self.first)
    }

    /// The message length of a prefix, or tonic's status for a flag or length it refuses.
    fn check_prefix(&self, prefix: &[u8]) -> Result<usize, Status> {
        match prefix[0] {
            0 => {}
            // Compression is not enabled on either side.
            1 => {
                return Err(Status::internal(
                    "protocol error: received message with compressed-flag but no grpc-encoding was specified",
                ))
            }
            f => {
                let message = match self.direction {
                    Direction::Response(status) => format!(
                        "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1) while receiving response with status: {status}"
                    ),
                    Direction::Request => format!(
                        "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1), while sending request"
                    ),
                };
                return Err(Status::internal(message));
            }
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > self.limit {
            return Err(Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {} bytes",
                self.limit
            )));
        }
        Ok(len)
    }
}

/// tonic's answer to a `grpc-encoding` it does not support (none is enabled); `None` when the
/// header is absent or `identity`.
pub fn unsupported_encoding(headers: &HeaderMap) -> Option<Status> {
    let value = headers.get(GRPC_ENCODING)?;
    if value.as_bytes() == b"identity" {
        return None;
    }
    let name = match std::str::from_utf8(value.as_bytes()) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("{:?}", value.as_bytes()),
    };
    let mut status = Status::unimplemented(format!(
        "Content is compressed with `{name}` which isn't supported"
    ));
    status.metadata_mut().insert(
        GRPC_ACCEPT_ENCODING,
        tonic::metadata::MetadataValue::from_static("identity"),
    );
    Some(status)
}

/// The `grpc-timeout` header's duration; `None` if absent or malformed (tonic ignores those).
pub fn parse_timeout(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout_value(headers.get(GRPC_TIMEOUT)?.to_str().ok()?)
}

/// A `grpc-timeout` value (`5000000u`, `30S`, ...) as a duration; the one parser of the
/// workspace (tonic services read the same header through their metadata).
pub fn parse_timeout_value(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.is_ascii() {
        return None;
    }
    // ASCII (to_str succeeded), so the split is on a character boundary.
    let (digits, unit) = value.split_at(value.len() - 1);
    // At most 8 digits (the spec's limit; it also rules out overflow below).
    if digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `duration` as a `grpc-timeout` value: the most precise unit that fits in 8 digits (tonic's
/// choice, e.g. 5 s → `5000000u`).
pub fn timeout_value(duration: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(duration.as_secs());
    let candidates = [
        (duration.as_nanos(), 'n'),
        (duration.as_micros(), 'u'),
        (duration.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
        (secs / 3600, 'H'),
    ];
    let (value, unit) = candidates
        .into_iter()
        .find(|(v, _)| *v <= MAX)
        .unwrap_or((MAX, 'H'));
    HeaderValue::try_from(format!("{value}{unit}")).unwrap_or(HeaderValue::from_static("99999999H"))
}

/// The status a response ends with: its trailers' `grpc-status` (tonic's `infer_grpc_status`),
/// or one mapped from the HTTP status when there is none. `Ok` for `grpc-status: 0`.
pub fn final_status(trailers: Option<&HeaderMap>, http: StatusCode) -> Result<(), Status> {
    if let Some(trailers) = trailers {
        if let Some(code) = trailers.get(GRPC_STATUS) {
            if code.as_bytes() == b"0" {
                return Ok(());
            }
            if let Some(status) = status_from_headers(trailers) {
                return match status.code() {
                    Code::Ok => Ok(()),
                    _ => Err(status),
                };
            }
        }
    }
    let code = match http {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        StatusCode::OK => {
            return Err(Status::unknown(
                "protocol error: missing grpc-status trailer, stream was terminated without a final status (possible truncation by a proxy or load balancer)",
            ))
        }
        _ => Code::Unknown,
    };
    Err(Status::new(
        code,
        format!(
            "grpc-status header missing, mapped from HTTP status code {}",
            http.as_u16()
        ),
    ))
}

/// The status carried by `headers` (`grpc-status`, `grpc-message`, `grpc-status-details-bin`);
/// details that are not valid base64 are dropped (tonic's parser would panic on them).
pub fn status_from_headers(headers: &HeaderMap) -> Option<Status> {
    headers.get(GRPC_STATUS)?;
    match headers.get(GRPC_STATUS_DETAILS) {
        Some(details) if !valid_base64(details.as_bytes()) => {
            let mut headers = headers.clone();
            headers.remove(GRPC_STATUS_DETAILS);
            Status::from_header_map(&headers)
        }
        _ => Status::from_header_map(headers),
    }
}

/// Whether `b` decodes with tonic's base64 settings (standard alphabet, padding optional,
/// canonical trailing bits).
fn valid_base64(b: &[u8]) -> bool {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;
    const STANDARD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_encode_padding(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD.decode(b).is_ok()
}

#[cfg(test)]
mod tests;
