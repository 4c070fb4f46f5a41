//! What both ends of a connection share: the socket, reading and parsing frames, the
//! connection-level frames (SETTINGS, PING, WINDOW_UPDATE, GOAWAY), HPACK decoding, and sending
//! under the peer's flow-control windows. The server and the client drive a [`Core`] from one
//! task each: everything that is ready is read and parsed, the answers are queued, and the
//! queue goes out in one write, so many calls share each system call.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::task::{ready, Context, Poll};

use prost::bytes::{Buf, Bytes, BytesMut};
use tokio::net::TcpStream;

use super::frame::{self, code, Head, HEAD};
use super::headers::Headers;
use super::hpack::{self, Block, Decoder, Encoder};

/// Our smallest receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE): a whole message
/// fits, so no stream-level WINDOW_UPDATE is ever needed; a stream that would need more is over
/// the message limit and is answered with an error first.
pub const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// Our receive window for the connection, given back once half of it has been read.
const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// The largest header block (HEADERS and CONTINUATIONs, compressed) we take before we end the
/// connection (ENHANCE_YOUR_CALM).
const MAX_HEADER_BLOCK: usize = 1024 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Which end this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// A frame the role must handle.
#[derive(Debug)]
pub enum Event {
    Headers {
        stream: u32,
        block: Block,
        end_stream: bool,
    },
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    GoAway {
        last_stream: u32,
        code: u32,
    },
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol; a GOAWAY with `code` has been queued.
    #[error("HTTP/2 protocol error {code:#x}: {message}")]
    Protocol { code: u32, message: String },
}

/// What is left to send on a stream whose DATA waits for a window. A header block waits as
/// fields, not bytes: it is encoded when it is written ([`super::headers`]).
#[derive(Debug)]
enum Out {
    Data(Bytes, bool),
    Headers(Headers, bool),
}

#[derive(Debug)]
struct Outgoing {
    window: i64,
    queue: VecDeque<Out>,
}

/// A header block split over HEADERS and CONTINUATION frames.
#[derive(Debug)]
struct Partial {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

/// One end of an HTTP/2 connection over TCP.
#[derive(Debug)]
pub struct Core {
    io: TcpStream,
    role: Role,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    /// Encodes the header blocks this end sends (its table mirrors the peer's decoder); only
    /// [`put_headers`] uses it, so blocks change the table in the order they are written.
    encoder: Encoder,
    /// Where a header block is encoded before it is framed.
    block: BytesMut,
    expect_preface: bool,
    partial: Option<Partial>,
    /// The peer's SETTINGS.
    pub peer_max_frame: usize,
    pub peer_max_streams: usize,
    peer_initial_window: i64,
    /// Our window on the peer, for the whole connection.
    send_window: i64,
    /// Streams we have started sending DATA on and not finished.
    streams: HashMap<u32, Outgoing>,
    /// Streams with output queued behind a window, in the order they blocked.
    blocked: VecDeque<u32>,
    /// Bytes of DATA read since the connection window was last given back.
    unacked: u32,
    /// The highest stream id the peer opened (for GOAWAY).
    pub last_peer_stream: u32,
}

/// Writes as much of `data` on `stream` as the connection's and the stream's windows allow
/// (END_STREAM on the last of it if `end_stream`), and takes it off both windows; returns what
/// did not fit.
fn put_data(
    wbuf: &mut BytesMut,
    send_window: &mut i64,
    max_frame: usize,
    stream: u32,
    out: &mut Outgoing,
    data: Bytes,
    end_stream: bool,
) -> Option<Bytes> {
    let fits = usize::try_from((*send_window).min(out.window).max(0)).unwrap_or(0);
    let n = data.len().min(fits);
    let done = n == data.len();
    if n > 0 || done {
        *send_window -= n as i64;
        out.window -= n as i64;
        frame::put_data(wbuf, stream, &data[..n], end_stream && done, max_frame);
    }
    (!done).then(|| data.slice(n..))
}

/// Encodes `headers` now, as they are written: the encoder's table changes in wire order.
fn put_headers(
    wbuf: &mut BytesMut,
    encoder: &mut Encoder,
    block: &mut BytesMut,
    max_frame: usize,
    stream: u32,
    headers: &Headers,
    end_stream: bool,
) {
    block.clear();
    headers.encode(encoder, block);
    frame::put_headers(wbuf, stream, block, end_stream, max_frame);
}

impl Core {
    /// A connection on `io`, with our preface (client: the magic, then) SETTINGS and the
    /// connection window raise queued.
    /// `stream_window` is our receive window per stream: at least a whole message.
    pub fn new(io: TcpStream, role: Role, max_streams: u32, stream_window: u32) -> Core {
        let mut wbuf = BytesMut::with_capacity(16 * 1024);
        let mut settings = vec![
            (frame::SETTINGS_INITIAL_WINDOW_SIZE, stream_window),
            (frame::SETTINGS_MAX_CONCURRENT_STREAMS, max_streams),
        ];
        if role == Role::Client {
            wbuf.extend_from_slice(frame::PREFACE);
            settings.push((frame::SETTINGS_ENABLE_PUSH, 0));
        }
        frame::put_settings(&mut wbuf, &settings);
        let raise = CONNECTION_WINDOW - frame::DEFAULT_WINDOW as u32;
        frame::put_window_update(&mut wbuf, 0, raise);
        Core {
            io,
            role,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf,
            decoder: Decoder::new(4096),
            encoder: Encoder::default(),
            block: BytesMut::with_capacity(256),
            expect_preface: role == Role::Server,
            partial: None,
            peer_max_frame: frame::DEFAULT_MAX_FRAME,
            peer_max_streams: usize::MAX,
            peer_initial_window: frame::DEFAULT_WINDOW,
            send_window: frame::DEFAULT_WINDOW,
            streams: HashMap::new(),
            blocked: VecDeque::new(),
            unacked: 0,
            last_peer_stream: 0,
        }
    }

    /// Reads what the socket has and parses every complete frame into `events`. `Ok(false)` at
    /// the end of the stream.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        events: &mut Vec<Event>,
    ) -> Poll<Result<bool, ConnError>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        loop {
            ready!(self.io.poll_read_ready(cx))?;
            match self.io.try_read_buf(&mut self.rbuf) {
                Ok(0) => return Poll::Ready(Ok(false)),
                Ok(_) => {
                    self.parse(events)?;
                    return Poll::Ready(Ok(true));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    /// Writes what is queued; ready once all of it is out.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            ready!(self.io.poll_write_ready(cx))?;
            match self.io.try_write(&self.wbuf) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Queues a GOAWAY and returns the error that ends the connection.
    pub fn fail(&mut self, code: u32, message: impl Into<String>) -> ConnError {
        let message = message.into();
        frame::put_goaway(
            &mut self.wbuf,
            self.last_peer_stream,
            code,
            message.as_bytes(),
        );
        ConnError::Protocol { code, message }
    }

    /// Queues a GOAWAY that lets the streams up to `last_stream` finish.
    pub fn goaway(&mut self, last_stream: u32) {
        frame::put_goaway(&mut self.wbuf, last_stream, code::NO_ERROR, b"");
    }

    /// Queues a header block on `stream`: written (and only then encoded) at once, or behind
    /// the stream's queued DATA.
    pub fn send_headers(&mut self, stream: u32, headers: Headers, end_stream: bool) {
        if let Some(out) = self.streams.get_mut(&stream) {
            if !out.queue.is_empty() {
                out.queue.push_back(Out::Headers(headers, end_stream));
                return;
            }
            if end_stream {
                self.streams.remove(&stream);
            }
        }
        put_headers(
            &mut self.wbuf,
            &mut self.encoder,
            &mut self.block,
            self.peer_max_frame,
            stream,
            &headers,
            end_stream,
        );
    }

    /// Queues `data` on `stream` as far as the windows allow; the rest waits for WINDOW_UPDATE.
    pub fn send_data(&mut self, stream: u32, data: Bytes, end_stream: bool) {
        let initial = self.peer_initial_window;
        let out = self.streams.entry(stream).or_insert_with(|| Outgoing {
            window: initial,
            queue: VecDeque::new(),
        });
        if !out.queue.is_empty() {
            out.queue.push_back(Out::Data(data, end_stream));
            return;
        }
        let sent = put_data(
            &mut self.wbuf,
            &mut self.send_window,
            self.peer_max_frame,
            stream,
            out,
            data,
            end_stream,
        );
        match sent {
            None if end_stream => {
                self.streams.remove(&stream);
            }
            None => {}
            Some(rest) => {
                out.queue.push_back(Out::Data(rest, end_stream));
                self.blocked.push_back(stream);
            }
        }
    }

    /// Queues RST_STREAM and drops whatever was still to be sent on `stream`.
    pub fn reset(&mut self, stream: u32, code: u32) {
        self.streams.remove(&stream);
        frame::put_rst_stream(&mut self.wbuf, stream, code);
    }

    /// Sends what the windows now allow of the blocked streams, in the order they blocked.
    fn unblock(&mut self) {
        let mut still = VecDeque::new();
        while let Some(stream) = self.blocked.pop_front() {
            let Some(out) = self.streams.get_mut(&stream) else {
                continue; // reset meanwhile
            };
            let mut finished = false;
            while let Some(item) = out.queue.pop_front() {
                match item {
                    Out::Headers(headers, end) => {
                        put_headers(
                            &mut self.wbuf,
                            &mut self.encoder,
                            &mut self.block,
                            self.peer_max_frame,
                            stream,
                            &headers,
                            end,
                        );
                        finished |= end;
                    }
                    Out::Data(data, end) => {
                        let sent = put_data(
                            &mut self.wbuf,
                            &mut self.send_window,
                            self.peer_max_frame,
                            stream,
                            out,
                            data,
                            end,
                        );
                        if let Some(rest) = sent {
                            out.queue.push_front(Out::Data(rest, end));
                            break;
                        }
                        finished |= end;
                    }
                }
            }
            if finished {
                self.streams.remove(&stream);
            } else if !out.queue.is_empty() {
                still.push_back(stream);
            }
        }
        self.blocked = still;
    }

    /// Parses the complete frames in the read buffer.
    fn parse(&mut self, events: &mut Vec<Event>) -> Result<(), ConnError> {
        if self.expect_preface {
            let n = self.rbuf.len().min(frame::PREFACE.len());
            if self.rbuf[..n] != frame::PREFACE[..n] {
                return Err(self.fail(code::PROTOCOL_ERROR, "invalid connection preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(());
            }
            self.rbuf.advance(n);
            self.expect_preface = false;
        }
        while let Some(head) = Head::parse(&self.rbuf) {
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(self.fail(
                    code::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            if self.rbuf.len() < HEAD + head.len {
                self.rbuf.reserve(HEAD + head.len - self.rbuf.len());
                break;
            }
            self.rbuf.advance(HEAD);
            let payload = self.rbuf.split_to(head.len);
            self.frame(head, payload, events)?;
        }
        let consumed = self.unacked;
        if consumed >= CONNECTION_WINDOW / 2 {
            frame::put_window_update(&mut self.wbuf, 0, consumed);
            self.unacked = 0;
        }
        Ok(())
    }

    fn frame(
        &mut self,
        head: Head,
        payload: BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        if let Some(partial) = &self.partial {
            if head.kind != frame::CONTINUATION || head.stream != partial.stream {
                return Err(self.fail(code::PROTOCOL_ERROR, "expected CONTINUATION"));
            }
        }
        let bad_stream = |core: &mut Core, what: &str| {
            core.fail(
                code::PROTOCOL_ERROR,
                format!("{what} on stream {}", head.stream),
            )
        };
        match head.kind {
            frame::DATA => {
                if head.stream == 0 {
                    return Err(bad_stream(self, "DATA"));
                }
                self.unacked = self.unacked.saturating_add(head.len as u32);
                let Some(range) = frame::unpad(&head, &payload) else {
                    return Err(self.fail(code::PROTOCOL_ERROR, "bad padding"));
                };
                let data = payload.freeze().slice(range);
                events.push(Event::Data {
                    stream: head.stream,
                    data,
                    end_stream: head.flags & frame::END_STREAM != 0,
                });
            }
            frame::HEADERS => {
                if head.stream == 0 {
                    return Err(bad_stream(self, "HEADERS"));
                }
                let Some(range) = frame::unpad(&head, &payload) else {
                    return Err(self.fail(code::PROTOCOL_ERROR, "bad padding"));
                };
                let peer_opened = match self.role {
                    Role::Server => head.stream % 2 == 1,
                    Role::Client => head.stream.is_multiple_of(2),
                };
                if peer_opened && head.stream > self.last_peer_stream {
                    self.last_peer_stream = head.stream;
                }
                let mut block = payload;
                block.advance(range.start);
                block.truncate(range.end - range.start);
                let partial = Partial {
                    stream: head.stream,
                    end_stream: head.flags & frame::END_STREAM != 0,
                    block,
                };
                if head.flags & frame::END_HEADERS != 0 {
                    self.header_block(partial, events)?;
                } else {
                    self.partial = Some(partial);
                }
            }
            frame::CONTINUATION => {
                let Some(mut partial) = self.partial.take() else {
                    return Err(self.fail(code::PROTOCOL_ERROR, "unexpected CONTINUATION"));
                };
                if partial.block.len() + payload.len() > MAX_HEADER_BLOCK {
                    return Err(self.fail(code::ENHANCE_YOUR_CALM, "header block too large"));
                }
                partial.block.extend_from_slice(&payload);
                if head.flags & frame::END_HEADERS != 0 {
                    self.header_block(partial, events)?;
                } else {
                    self.partial = Some(partial);
                }
            }
            frame::RST_STREAM => {
                if head.stream == 0 || payload.len() != 4 {
                    return Err(self.fail(code::PROTOCOL_ERROR, "malformed RST_STREAM"));
                }
                self.streams.remove(&head.stream);
                events.push(Event::Reset {
                    stream: head.stream,
                    code: u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
                });
            }
            frame::SETTINGS => {
                if head.stream != 0 || !payload.len().is_multiple_of(6) {
                    return Err(self.fail(code::PROTOCOL_ERROR, "malformed SETTINGS"));
                }
                if head.flags & frame::ACK == 0 {
                    self.settings(&payload)?;
                    frame::put_settings_ack(&mut self.wbuf);
                }
            }
            frame::PING => {
                if head.stream != 0 || payload.len() != 8 {
                    return Err(self.fail(code::PROTOCOL_ERROR, "malformed PING"));
                }
                if head.flags & frame::ACK == 0 {
                    frame::put_ping_ack(&mut self.wbuf, &payload);
                }
            }
            frame::GOAWAY => {
                if head.stream != 0 || payload.len() < 8 {
                    return Err(self.fail(code::PROTOCOL_ERROR, "malformed GOAWAY"));
                }
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                events.push(Event::GoAway {
                    last_stream: last & 0x7fff_ffff,
                    code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                });
            }
            frame::WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err(self.fail(code::FRAME_SIZE_ERROR, "malformed WINDOW_UPDATE"));
                }
                let raw = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let increment = i64::from(raw & 0x7fff_ffff);
                if head.stream == 0 {
                    if increment == 0 {
                        return Err(self.fail(code::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
                    }
                    self.send_window += increment;
                    if self.send_window > frame::MAX_WINDOW {
                        return Err(self.fail(code::FLOW_CONTROL_ERROR, "window over 2^31-1"));
                    }
                } else if let Some(out) = self.streams.get_mut(&head.stream) {
                    out.window += increment;
                    if increment == 0 || out.window > frame::MAX_WINDOW {
                        self.reset(head.stream, code::FLOW_CONTROL_ERROR);
                    }
                }
                if !self.blocked.is_empty() {
                    self.unblock();
                }
            }
            frame::PUSH_PROMISE => {
                return Err(self.fail(code::PROTOCOL_ERROR, "PUSH_PROMISE without push enabled"));
            }
            // PRIORITY and unknown types are ignored (RFC 9113 §5.3.2, §4.1).
            _ => {}
        }
        Ok(())
    }

    fn header_block(
        &mut self,
        mut partial: Partial,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnError> {
        match hpack::decode(&mut self.decoder, &mut partial.block) {
            Ok(block) => {
                events.push(Event::Headers {
                    stream: partial.stream,
                    block,
                    end_stream: partial.end_stream,
                });
                Ok(())
            }
            Err(e) => Err(self.fail(code::COMPRESSION_ERROR, format!("HPACK: {}", e.0))),
        }
    }

    fn settings(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(self.fail(code::PROTOCOL_ERROR, "bad SETTINGS_MAX_FRAME_SIZE"));
                    }
                    self.peer_max_frame = value as usize;
                }
                frame::SETTINGS_MAX_CONCURRENT_STREAMS => {
                    self.peer_max_streams = value as usize;
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(
                            self.fail(code::FLOW_CONTROL_ERROR, "bad SETTINGS_INITIAL_WINDOW_SIZE")
                        );
                    }
                    let delta = value - self.peer_initial_window;
                    self.peer_initial_window = value;
                    for out in self.streams.values_mut() {
                        out.window += delta;
                    }
                    if delta > 0 && !self.blocked.is_empty() {
                        self.unblock();
                    }
                }
                frame::SETTINGS_ENABLE_PUSH if value > 1 => {
                    return Err(self.fail(code::PROTOCOL_ERROR, "bad SETTINGS_ENABLE_PUSH"));
                }
                frame::SETTINGS_HEADER_TABLE_SIZE => self.encoder.set_peer_max(value as usize),
                // Unknown settings are ignored.
                _ => {}
            }
        }
        Ok(())
    }
}
