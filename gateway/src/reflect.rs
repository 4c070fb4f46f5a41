//! A service's messages by gRPC server reflection, for callers that know nothing of it (`micro
//! call`, the gateway's `--handler=rpc`), as grpcurl does it: ask a node of the service for its
//! descriptors (`grpc.reflection.v1`, then `v1alpha`), turn the JSON into the endpoint's request
//! message, call, and turn the answer back into JSON.
//!
//! ```text
//!   registry: nodes of S ─► node ─ServerReflectionInfo(file_containing_symbol "S.Handler")─►
//!   descriptors ─► DescriptorPool ─► method Handler.Method: input, output
//!   JSON ─► DynamicMessage(input) ─/S.Handler/Method─► DynamicMessage(output) ─► JSON
//! ```
//!
//! The JSON is proto3's mapping on the way in (field names as in the `.proto` or their
//! camelCase form); on the way out field names are the `.proto`'s and 64-bit integers are
//! numbers, as go-micro's `micro call` prints Go structs.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;

/// The request and response descriptors of one method.
#[derive(Debug, Clone)]
pub struct Method {
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

/// The descriptors of `endpoint` (`Handler.Method`) of `service`, asked of the node at `channel`.
pub async fn method(channel: Channel, service: &str, endpoint: &str) -> anyhow::Result<Method> {
    let (handler, name) = endpoint
        .split_once('.')
        .ok_or_else(|| anyhow!("endpoint {endpoint:?}: expected Handler.Method"))?;
    let symbol = format!("{service}.{handler}");
    let files = match files_v1(channel.clone(), &symbol).await {
        Ok(files) => files,
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            files_v1alpha(channel, &symbol)
                .await
                .map_err(|s| refused(service, &s))?
        }
        Err(status) => return Err(refused(service, &status)),
    };
    // A FileDescriptorSet is field 1 repeated of encoded files: the reflection answer's list,
    // re-encoded under that tag, is one.
    let set = tonic_reflection::pb::v1::FileDescriptorResponse {
        file_descriptor_proto: files,
    }
    .encode_to_vec();
    let pool = DescriptorPool::decode(set.as_slice())
        .with_context(|| format!("the descriptors {service} serves do not load"))?;
    let svc = pool
        .get_service_by_name(&symbol)
        .ok_or_else(|| anyhow!("{service} describes no gRPC service {symbol}"))?;
    let m = svc
        .methods()
        .find(|m| m.name() == name)
        .ok_or_else(|| anyhow!("{symbol} has no method {name}"))?;
    if m.is_client_streaming() || m.is_server_streaming() {
        bail!("{service} {endpoint} streams; micro call makes unary calls");
    }
    Ok(Method {
        input: m.input(),
        output: m.output(),
    })
}

fn refused(service: &str, status: &Status) -> anyhow::Error {
    anyhow!(
        "{service} does not serve gRPC reflection ({:?}: {}), and micro call knows its messages \
         only that way",
        status.code(),
        status.message()
    )
}

/// One `FileContainingSymbol` question to a reflection service: v1 and v1alpha are the same
/// protocol under two packages, whose generated types differ.
macro_rules! files_by_reflection {
    ($name:ident, $version:ident) => {
        async fn $name(channel: Channel, symbol: &str) -> Result<Vec<Vec<u8>>, Status> {
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$version::ServerReflectionRequest;
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_owned())),
            };
            let mut answers = ServerReflectionClient::new(channel)
                .server_reflection_info(futures::stream::iter([request]))
                .await?
                .into_inner();
            match answers.message().await?.and_then(|a| a.message_response) {
                Some(MessageResponse::FileDescriptorResponse(f)) => Ok(f.file_descriptor_proto),
                Some(MessageResponse::ErrorResponse(e)) => Err(Status::not_found(e.error_message)),
                _ => Err(Status::internal("no descriptors in the reflection answer")),
            }
        }
    };
}

files_by_reflection!(files_v1, v1);
files_by_reflection!(files_v1alpha, v1alpha);

/// `body` (JSON) as a message of `descriptor`; unknown fields are refused.
pub fn from_json(descriptor: &MessageDescriptor, body: &str) -> anyhow::Result<DynamicMessage> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    let mut de = serde_json::Deserializer::from_str(body);
    let message = DynamicMessage::deserialize(descriptor.clone(), &mut de)
        .with_context(|| format!("request JSON {body:?} is not a {}", descriptor.full_name()))?;
    de.end().with_context(|| format!("request JSON {body:?}"))?;
    Ok(message)
}

/// `message` as go-micro's `micro call` prints it: `.proto` field names, 64-bit integers as
/// numbers, default values left out, tab-indented.
pub fn to_json(message: &DynamicMessage) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    message.serialize_with_options(&mut ser, &go_json())?;
    Ok(String::from_utf8(out)?)
}

/// [`to_json`] on one line, as an HTTP answer.
pub fn to_compact_json(message: &DynamicMessage) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    message.serialize_with_options(&mut ser, &go_json())?;
    Ok(String::from_utf8(out)?)
}

/// How Go's encoding/json writes a generated message: `.proto` names, numbers as numbers.
fn go_json() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
}

/// One unary call of `path` with `request`, the answer decoded as `output`, bounded by `timeout`.
pub async fn call(
    channel: Channel,
    path: &str,
    request: DynamicMessage,
    output: MessageDescriptor,
    timeout: Duration,
) -> Result<DynamicMessage, Status> {
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    let answer = tokio::time::timeout(timeout, grpc.unary(request, path, DynCodec(output)))
        .await
        .map_err(|_| Status::deadline_exceeded(format!("no answer within {timeout:?}")))??;
    Ok(answer.into_inner())
}

/// Protobuf both ways, the answer decoded by its descriptor.
struct DynCodec(MessageDescriptor);

struct DynEncoder;

struct DynDecoder(MessageDescriptor);

impl Codec for DynCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynEncoder;
    type Decoder = DynDecoder;

    fn encoder(&mut self) -> DynEncoder {
        DynEncoder
    }

    fn decoder(&mut self) -> DynDecoder {
        DynDecoder(self.0.clone())
    }
}

impl Encoder for DynEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encode request: {e}")))
    }
}

impl Decoder for DynDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decode answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> DescriptorPool {
        DescriptorPool::decode(greeter::catalog::DESCRIPTORS).expect("catalog descriptors")
    }

    #[test]
    fn json_to_nested_and_repeated_fields_and_back() {
        let pool = catalog();
        let query = pool
            .get_message_by_name("go.micro.srv.catalog.Query")
            .expect("Query");
        let message = from_json(
            &query,
            r#"{"text":"apple","filter":{"tags":["fruit","red"],"limit":2}}"#,
        )
        .expect("a Query");
        let decoded = greeter::catalog::Query::decode(message.encode_to_vec().as_slice())
            .expect("the generated type reads it");
        let filter = decoded.filter.expect("filter");
        assert_eq!(
            (decoded.text.as_str(), filter.tags, filter.limit),
            ("apple", vec!["fruit".to_owned(), "red".to_owned()], 2)
        );
        assert!(
            from_json(&query, r#"{"nope":1}"#).is_err(),
            "unknown fields refused"
        );
        assert!(
            from_json(&query, r#"{"text":1}"#).is_err(),
            "wrong types refused"
        );

        let result = pool
            .get_message_by_name("go.micro.srv.catalog.Result")
            .expect("Result");
        let answer = greeter::catalog::FindResult {
            items: vec![greeter::catalog::result::Item {
                name: "red apple".into(),
                tags: vec!["fruit".into()],
                stock: 12,
            }],
            instance: "one".into(),
        };
        let dynamic =
            DynamicMessage::decode(result, answer.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(
            to_json(&dynamic).expect("json"),
            "{\n\t\"items\": [\n\t\t{\n\t\t\t\"name\": \"red apple\",\n\t\t\t\"tags\": [\n\t\t\t\t\"fruit\"\n\t\t\t],\n\t\t\t\"stock\": 12\n\t\t}\n\t],\n\t\"instance\": \"one\"\n}"
        );
    }
}
