//! [`ResponseBody`]: what a response carries (one message then OK trailers, nothing for a
//! trailers-only answer, a tonic service's or the HTTP handler's body), and the observer's
//! watch over a streamed answer's status.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use prost::bytes::Bytes;
use tonic::Status;

use super::{HttpBody, Observer};
use crate::grpc;

/// A response body: one gRPC frame then `grpc-status: 0`, nothing (trailers-only responses),
/// or a tonic service's body.
#[derive(Debug, Default)]
pub struct ResponseBody(pub(super) Kind);

#[derive(Debug, Default)]
pub(super) enum Kind {
    #[default]
    Empty,
    Message {
        frame: Option<Bytes>,
        trailers: bool,
    },
    Tonic(tonic::body::Body, Option<Watched>),
    Http(HttpBody),
}

/// A streamed gRPC answer whose status the observer is told when its trailers pass.
pub(super) struct Watched {
    pub(super) path: String,
    pub(super) observer: Observer,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("path", &self.path).finish()
    }
}

impl Watched {
    fn tell(self, code: tonic::Code) {
        (self.observer)(&self.path, Some(code));
        std::mem::forget(self);
    }
}

/// A stream dropped before its trailers (the client reset it, the connection broke) ends
/// CANCELLED, as grpc-go counts it.
impl Drop for Watched {
    fn drop(&mut self) {
        (self.observer)(&self.path, Some(tonic::Code::Cancelled));
    }
}

impl ResponseBody {
    fn message(frame: Bytes) -> Self {
        ResponseBody(Kind::Message {
            frame: Some(frame),
            trailers: true,
        })
    }
}

fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(grpc::GRPC_STATUS, HeaderValue::from_static("0"));
    trailers
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match &mut self.0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Message { frame, trailers } => {
                if let Some(data) = frame.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if std::mem::take(trailers) {
                    return Poll::Ready(Some(Ok(Frame::trailers(ok_trailers()))));
                }
                Poll::Ready(None)
            }
            Kind::Tonic(body, watched) => {
                let polled = Pin::new(body).poll_frame(cx);
                if watched.is_some() {
                    let code = match &polled {
                        Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| {
                            grpc::status_from_headers(t)
                                .map(|s| s.code())
                                .unwrap_or(tonic::Code::Ok)
                        }),
                        Poll::Ready(Some(Err(status))) => Some(status.code()),
                        Poll::Ready(None) => Some(tonic::Code::Unknown),
                        Poll::Pending => None,
                    };
                    if let (Some(code), Some(w)) = (code, watched.take()) {
                        w.tell(code);
                    }
                }
                polled
            }
            Kind::Http(body) => Pin::new(body).poll_frame(cx).map_err(Status::from_error),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Message { frame, trailers } => frame.is_none() && !trailers,
            Kind::Tonic(body, _) => body.is_end_stream(),
            Kind::Http(body) => body.is_end_stream(),
        }
    }

    /// Unknown for a message, as tonic's streaming body: with an exact size hyper would add a
    /// `content-length` header, which tonic's responses did not carry (and which hpack never
    /// indexes, so it would cost a literal per response).
    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Message { .. } => SizeHint::default(),
            Kind::Tonic(body, _) => body.size_hint(),
            Kind::Http(body) => body.size_hint(),
        }
    }
}

/// `status` as a trailers-only response (tonic's `Status::into_http`).
pub(super) fn status_response(status: Status) -> Response<ResponseBody> {
    status.into_http()
}

pub(super) fn message_response(frame: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::message(frame));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, grpc::CONTENT_TYPE);
    response
}
