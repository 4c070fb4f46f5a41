//! Streaming calls (go-micro's `client.Stream`): a node from the selector, then tonic's
//! streaming client on a channel to it (one lazily connecting channel per address). Not
//! retried and not wrapped by the client's layers: a stream may have been half consumed.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt as _;
use tonic::transport::{Channel, Endpoint};

use super::{grpc_path, selection_error, Client, CLIENT_ID};
use crate::errors::Error;
use crate::stream::{incoming, BoxStream, Stream};

/// The streaming channels of a client, by node address.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Channels {
    fn get(&self, address: &str, client: &Client) -> Result<Channel, Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(crate::registry::normalize(address))
            .map_err(|e| {
                Error::internal_server_error(
                    CLIENT_ID,
                    format!("bad node address {address:?}: {e}"),
                )
            })?
            .connect_timeout(client.options.dial_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    fn forget(&self, address: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
    }
}

impl Client {
    /// Opens a streaming call of `endpoint` on a node of `service`, ready for tonic's client.
    async fn open(
        &self,
        service: &str,
        endpoint: &str,
    ) -> Result<
        (
            tonic::client::Grpc<Channel>,
            http::uri::PathAndQuery,
            String,
        ),
        Error,
    > {
        let path = grpc_path(service, endpoint)?;
        let path = http::uri::PathAndQuery::try_from(path).map_err(|e| {
            Error::bad_request(CLIENT_ID, format!("invalid endpoint {endpoint:?}: {e}"))
        })?;
        let address = self
            .selector
            .select_with(service, &[], |n| n.address.clone())
            .await
            .map_err(|e| selection_error(service, e))?;
        let channel = self.channels.get(&address, self)?;
        let mut grpc = tonic::client::Grpc::new(channel);
        if let Err(e) = grpc.ready().await {
            self.channels.forget(&address);
            return Err(Error::internal_server_error(
                CLIENT_ID,
                format!("connect {address}: {e}"),
            ));
        }
        Ok((grpc, path, address))
    }

    /// The error of a stream that could not be opened; an unreachable node is forgotten.
    fn stream_error(&self, service: &str, address: &str, status: &tonic::Status) -> Error {
        if status.code() == tonic::Code::Unavailable && !Error::is_carried_by(status) {
            self.channels.forget(address);
        }
        Error::from_status(service, status)
    }

    /// Calls a server-streaming `endpoint`: one request, a stream of responses.
    pub async fn server_stream<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        request: Req,
    ) -> Result<BoxStream<Resp>, Error>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (mut grpc, path, address) = self.open(service, endpoint).await?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let response = grpc
            .server_streaming(tonic::Request::new(request), path, codec)
            .await
            .map_err(|s| self.stream_error(service, &address, &s))?;
        Ok(incoming(response.into_inner(), service))
    }

    /// Calls a client-streaming `endpoint`: a stream of requests, one response.
    pub async fn client_stream<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        requests: impl Stream<Item = Req> + Send + 'static,
    ) -> Result<Resp, Error>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (mut grpc, path, address) = self.open(service, endpoint).await?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let response = grpc
            .client_streaming(tonic::Request::new(requests.boxed()), path, codec)
            .await
            .map_err(|s| self.stream_error(service, &address, &s))?;
        Ok(response.into_inner())
    }

    /// Calls a bidirectional-streaming `endpoint`.
    pub async fn bidi_stream<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        requests: impl Stream<Item = Req> + Send + 'static,
    ) -> Result<BoxStream<Resp>, Error>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (mut grpc, path, address) = self.open(service, endpoint).await?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let response = grpc
            .streaming(tonic::Request::new(requests.boxed()), path, codec)
            .await
            .map_err(|s| self.stream_error(service, &address, &s))?;
        Ok(incoming(response.into_inner(), service))
    }
}
