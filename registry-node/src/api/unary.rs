//! A tonic service method served as a unary handler of `grpc-lite`'s server: the client API's
//! busiest calls (KV range and writes) skip tonic's server stack (its tower layers, the router,
//! a boxed body per message), which cost more per call than the handler's own routing. The
//! method itself is the tonic trait's, with the request's metadata, so behaviour is unchanged.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use grpc_lite::grpc;
use grpc_lite::server::Handler;
use http::HeaderMap;
use prost::bytes::Bytes;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// `f` (a call of a tonic trait method) as a [`Handler`].
pub(crate) struct TonicUnary<F, Req, Resp> {
    f: F,
    _types: PhantomData<fn(Req) -> Resp>,
}

/// A handler calling `f` with each decoded request.
pub(crate) fn handler<F, Req, Resp, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    Arc::new(TonicUnary {
        f,
        _types: PhantomData,
    })
}

impl<F, Req, Resp, Fut> Handler for TonicUnary<F, Req, Resp>
where
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    fn call(
        &self,
        headers: HeaderMap,
        message: Bytes,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, Status>> + Send>> {
        let call = grpc::decode::<Req>(message).map(|req| {
            let metadata = MetadataMap::from_headers(headers);
            (self.f)(Request::from_parts(metadata, Default::default(), req))
        });
        Box::pin(async move {
            let response = call?.await?;
            Ok(grpc::encode(response.get_ref()))
        })
    }
}
