//! The client's gRPC codec: the request goes out already encoded (so a retry resends the same
//! bytes instead of cloning the message), the response is decoded by prost.

use std::marker::PhantomData;

use prost::bytes::{BufMut, Bytes};
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::ProstDecoder;

/// Encode and decode buffers start this small: greeter-sized messages are a few hundred bytes
/// (tonic's default is 8 KiB per call, allocated for every request and response).
const BUFFER_SIZE: usize = 1024;
/// tonic's default.
const YIELD_THRESHOLD: usize = 32 * 1024;

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// Sends [`Bytes`] holding an encoded message, receives a `Resp`.
pub(crate) struct PreEncoded<Resp>(PhantomData<fn() -> Resp>);

impl<Resp> Default for PreEncoded<Resp> {
    fn default() -> Self {
        PreEncoded(PhantomData)
    }
}

impl<Resp: prost::Message + Default + Send + 'static> Codec for PreEncoded<Resp> {
    type Encode = Bytes;
    type Decode = Resp;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<Resp>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<Resp> {
        ProstDecoder::new(buffer_settings())
    }
}

/// Copies the encoded message into the frame.
pub(crate) struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}
