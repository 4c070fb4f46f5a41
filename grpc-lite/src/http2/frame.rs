//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the types, flags, settings and error
//! codes this engine uses, and the writers of the frames it sends.

use prost::bytes::{BufMut, BytesMut};

/// What a client sends first.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length (3 bytes), type, flags, stream id (4 bytes).
pub const HEAD: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE before the peer says otherwise, and what we accept.
pub const DEFAULT_MAX_FRAME: usize = 16_384;
/// Flow-control windows before SETTINGS / WINDOW_UPDATE.
pub const DEFAULT_WINDOW: i64 = 65_535;
/// The largest window HTTP/2 allows.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 1;
pub const SETTINGS_ENABLE_PUSH: u16 = 2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 6;

/// Error codes (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    pub const INADEQUATE_SECURITY: u32 = 0xc;
}

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    /// The header at the start of `buf`, if all 9 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Head> {
        let b: &[u8; HEAD] = buf.get(..HEAD)?.try_into().ok()?;
        Some(Head {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            // The reserved bit is ignored (RFC 9113 §4.1).
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }
}

/// Appends a frame header; `len` is below 2^24 (every caller splits at the frame size).
pub fn put_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).min(0x00ff_ffff);
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream & 0x7fff_ffff);
}

/// A SETTINGS frame with `settings` (identifier, value).
pub fn put_settings(out: &mut BytesMut, settings: &[(u16, u32)]) {
    put_head(out, settings.len() * 6, SETTINGS, 0, 0);
    for &(id, value) in settings {
        out.put_u16(id);
        out.put_u32(value);
    }
}

pub fn put_settings_ack(out: &mut BytesMut) {
    put_head(out, 0, SETTINGS, ACK, 0);
}

pub fn put_window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.put_u32(increment & 0x7fff_ffff);
}

pub fn put_rst_stream(out: &mut BytesMut, stream: u32, code: u32) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.put_u32(code);
}

pub fn put_goaway(out: &mut BytesMut, last_stream: u32, code: u32, debug: &[u8]) {
    put_head(out, 8 + debug.len(), GOAWAY, 0, 0);
    out.put_u32(last_stream & 0x7fff_ffff);
    out.put_u32(code);
    out.put_slice(debug);
}

pub fn put_ping_ack(out: &mut BytesMut, payload: &[u8]) {
    put_head(out, payload.len(), PING, ACK, 0);
    out.put_slice(payload);
}

/// A header block as HEADERS plus as many CONTINUATION frames as `max_frame` requires.
pub fn put_headers(
    out: &mut BytesMut,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let max_frame = max_frame.max(1);
    let mut chunks = block.chunks(max_frame).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        put_head(out, 0, HEADERS, flags | END_HEADERS, stream);
        return;
    }
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= END_HEADERS;
        }
        put_head(out, chunk.len(), kind, flags, stream);
        out.put_slice(chunk);
        kind = CONTINUATION;
        flags = 0;
    }
}

/// `data` as DATA frames of at most `max_frame` bytes; END_STREAM on the last if `end_stream`.
pub fn put_data(out: &mut BytesMut, stream: u32, data: &[u8], end_stream: bool, max_frame: usize) {
    let max_frame = max_frame.max(1);
    if data.is_empty() {
        put_head(
            out,
            0,
            DATA,
            if end_stream { END_STREAM } else { 0 },
            stream,
        );
        return;
    }
    let mut chunks = data.chunks(max_frame).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && end_stream { END_STREAM } else { 0 };
        put_head(out, chunk.len(), DATA, flags, stream);
        out.put_slice(chunk);
    }
}

/// The payload of a frame without its padding (PADDED: a pad-length byte first, that many
/// bytes of padding last) and, for HEADERS with PRIORITY, without the 5 priority bytes.
pub fn unpad(head: &Head, payload: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    let mut end = payload.len();
    if head.flags & PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    if head.kind == HEADERS && head.flags & PRIORITY_FLAG != 0 {
        start += 5;
    }
    (start <= end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trip() {
        let mut out = BytesMut::new();
        put_head(&mut out, 0x01_02_03, HEADERS, END_HEADERS, 0x8000_0007);
        assert_eq!(out.len(), HEAD);
        assert_eq!(
            Head::parse(&out),
            Some(Head {
                len: 0x01_02_03,
                kind: HEADERS,
                flags: END_HEADERS,
                stream: 7
            })
        );
        assert_eq!(Head::parse(&out[..8]), None);
    }

    #[test]
    fn header_blocks_and_data_split_at_the_frame_size() {
        let mut out = BytesMut::new();
        put_headers(&mut out, 1, &[7; 10], true, 4);
        let mut kinds = Vec::new();
        let mut rest = &out[..];
        while let Some(h) = Head::parse(rest) {
            kinds.push((h.kind, h.flags, h.len));
            rest = &rest[HEAD + h.len..];
        }
        assert_eq!(
            kinds,
            [
                (HEADERS, END_STREAM, 4),
                (CONTINUATION, 0, 4),
                (CONTINUATION, END_HEADERS, 2)
            ]
        );

        let mut out = BytesMut::new();
        put_data(&mut out, 3, &[1; 5], true, 3);
        let first = Head::parse(&out).expect("head");
        assert_eq!((first.len, first.flags), (3, 0));
        let second = Head::parse(&out[HEAD + 3..]).expect("head");
        assert_eq!((second.len, second.flags), (2, END_STREAM));
    }

    #[test]
    fn padding_and_priority_are_stripped() {
        let head = Head {
            len: 10,
            kind: HEADERS,
            flags: PADDED | PRIORITY_FLAG,
            stream: 1,
        };
        // pad length 2, 5 priority bytes, 2 bytes of block, 2 of padding
        let payload = [2, 0, 0, 0, 0, 9, 0xaa, 0xbb, 0, 0];
        assert_eq!(unpad(&head, &payload), Some(6..8));
        let bad = Head {
            len: 2,
            kind: DATA,
            flags: PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&bad, &[5, 0]), None);
    }
}
