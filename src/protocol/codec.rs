//! Request decoding and response encoding over the kafka-protocol crate.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::protocol::api_versions;
use crate::protocol::old_produce::{self, OldProduce};

/// A request ready for a handler.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: RequestKind,
}

/// What the framing layer should do with a frame.
#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// ApiVersions at a version this broker does not know: answer with a v0 body
    /// and UNSUPPORTED_VERSION so the client can retry lower.
    UnknownApiVersionsVersion {
        correlation_id: i32,
    },
    /// Produce v0-2, answered here with UNSUPPORTED_VERSION.
    OldProduce(OldProduce),
}

/// Why a frame cannot be served; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{api:?} v{version} is not supported (supported: {range:?})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        range: Option<(i16, i16)>,
    },
    #[error(transparent)]
    OldProduce(#[from] old_produce::Malformed),
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

pub fn decode_request(mut frame: Bytes) -> Result<Decoded, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApi(raw_key))?;
    let range = api_versions::range(api_key);
    let supported = range.is_some_and(|(min, max)| version >= min && version <= max);
    if supported && api_key == ApiKey::Produce && version <= old_produce::MAX_VERSION {
        return Ok(Decoded::OldProduce(old_produce::answer(frame)?));
    }
    if !supported {
        if api_key == ApiKey::ApiVersions && version > 0 {
            return Ok(Decoded::UnknownApiVersionsVersion { correlation_id });
        }
        return Err(DecodeError::UnsupportedVersion {
            api: api_key,
            version,
            range,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api: api_key,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let body =
        RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(e.to_string()))?;
    if frame.has_remaining() {
        // Kafka ignores trailing bytes too; librdkafka's Metadata v12 leaves some.
        tracing::debug!(api = ?api_key, version, left = frame.remaining(), "bytes left after the request body");
    }
    Ok(Decoded::Request(Box::new(Request {
        header,
        api_key,
        version,
        body,
    })))
}

/// Encodes a response frame (size placeholder, header, body). The codec crate's
/// errors are `anyhow` errors; they come back as strings.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<BytesMut, String> {
    // Sized up front: growing by doubling would copy a large response several times.
    const HEADER_ROOM: usize = 16;
    let size = body.compute_size(version).map_err(|e| e.to_string())?;
    let mut out = BytesMut::with_capacity(4 + HEADER_ROOM + size);
    out.extend_from_slice(&[0; 4]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut out, R::header_version(version))
        .map_err(|e| e.to_string())?;
    body.encode(&mut out, version).map_err(|e| e.to_string())?;
    Ok(out)
}
