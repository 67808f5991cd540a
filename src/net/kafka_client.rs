//! A Kafka protocol client connection to another broker, for the replica fetcher.
//!
//! This module owns the client side of one TCP connection: connecting (with
//! `TCP_NODELAY`), encoding a request header and body with the `kafka-protocol`
//! crate, reading the size-prefixed response frame under a size limit, checking its
//! correlation id and decoding it. One request is in flight at a time: [`KafkaClient::send`]
//! writes a request and awaits its response. It runs on the glommio executor of the
//! shard that owns it and is not `Send`.
//!
//! Choosing API versions (ApiVersions negotiation), retries and reconnecting belong
//! to the caller.
//!
//! # Errors and reconnecting
//!
//! After [`ClientError::Encode`] nothing was sent, and after [`ClientError::Decode`]
//! the response frame was read whole, so the connection can carry the next request.
//! Every other error leaves the byte stream in an unknown state (a request half
//! written, a response partly read or skipped): the client refuses further requests
//! with [`ClientError::Unusable`] and the caller must connect again.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use futures_lite::future::or;
use glommio::net::TcpStream;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::protocol::frame::{FrameError, read_frame};

/// Why a request did not get its response. See the [module documentation](self) for
/// which errors leave the connection usable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be established (refused, unreachable, or not
    /// within the connect timeout: [`std::io::ErrorKind::TimedOut`]).
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// Writing the request or reading the response failed, or the peer closed the
    /// connection ([`std::io::ErrorKind::UnexpectedEof`]).
    #[error("I/O: {0}")]
    Io(std::io::Error),
    /// The request was not written and its response read within the timeout.
    #[error("no response within the timeout")]
    Timeout,
    /// The response frame announced `size` bytes (negative for a corrupt size),
    /// over the limit given at connect. The frame was not read.
    #[error("response frame of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: i64, limit: usize },
    /// A response frame was read whole but its header or body did not decode at
    /// the request's version.
    #[error("decode response: {0}")]
    Decode(String),
    /// The request could not be encoded at the requested version (a field or the
    /// version itself unsupported); nothing was sent.
    #[error("encode request: {0}")]
    Encode(String),
    /// The response answers another request than the one in flight.
    #[error("response correlation id {got}, expected {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },
    /// An earlier error left this connection in an unknown state.
    #[error("connection unusable after an earlier error")]
    Unusable,
}

/// A connection to one broker carrying one request at a time.
pub struct KafkaClient {
    stream: TcpStream,
    client_id: StrBytes,
    max_response_bytes: usize,
    next_correlation_id: i32,
    /// Set while an exchange is under way and left set by the errors that leave
    /// the stream in an unknown state (including a timeout, which drops the
    /// exchange wherever it was).
    unusable: bool,
}

impl KafkaClient {
    /// Connects to `addr` within `timeout` (which must not be zero). Every request
    /// carries `client_id`; a response frame over `max_response_bytes` (the size
    /// prefix excluded) fails with [`ClientError::TooLarge`].
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        max_response_bytes: usize,
        timeout: Duration,
    ) -> Result<KafkaClient, ClientError> {
        let stream = TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|error| ClientError::Connect(error.into()))?;
        stream
            .set_nodelay(true)
            .map_err(|error| ClientError::Connect(error.into()))?;
        Ok(KafkaClient {
            stream,
            client_id: StrBytes::from_string(client_id.to_owned()),
            max_response_bytes,
            next_correlation_id: 0,
            unusable: false,
        })
    }

    /// The peer this client is connected to.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.stream.peer_addr().map_err(Into::into)
    }

    /// Sends `request` at `version` and returns its response, decoded at the same
    /// version. Writing the request and reading the whole response must finish
    /// within `timeout`.
    ///
    /// The request header is v2 for flexible versions and v1 otherwise, the
    /// response header v1 for flexible versions and v0 otherwise, except for
    /// ApiVersions, whose response header is always v0 (as the crate's
    /// `HeaderVersion` impls say). The response is decoded from the frame's own
    /// buffer, so byte fields such as Fetch's records share it rather than being
    /// copied.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        if self.unusable {
            return Err(ClientError::Unusable);
        }
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = correlation_id.wrapping_add(1);
        let frame = self.encode(request, version, correlation_id)?;

        self.unusable = true;
        let exchange = exchange(&mut self.stream, &frame, self.max_response_bytes);
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(ClientError::Timeout)
        };
        let mut response = or(exchange, deadline).await?;

        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .map_err(decode_error)?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::CorrelationMismatch {
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        self.unusable = false;
        R::Response::decode(&mut response, version).map_err(decode_error)
    }

    /// The whole frame: size, request header, body.
    fn encode<R: Request>(
        &self,
        request: &R,
        version: i16,
        correlation_id: i32,
    ) -> Result<Vec<u8>, ClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(encode_error)?;
        request.encode(&mut frame, version).map_err(encode_error)?;
        let size = i32::try_from(frame.len() - 4)
            .map_err(|_| ClientError::Encode(format!("request of {} bytes", frame.len() - 4)))?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        Ok(frame.into())
    }
}

/// The crate's errors are `anyhow` errors: `{:#}` shows their whole chain.
fn encode_error(error: impl std::fmt::Display) -> ClientError {
    ClientError::Encode(format!("{error:#}"))
}

fn decode_error(error: impl std::fmt::Display) -> ClientError {
    ClientError::Decode(format!("{error:#}"))
}

/// Writes `frame` and reads the response frame (without its size prefix).
async fn exchange(
    stream: &mut TcpStream,
    frame: &[u8],
    max_response_bytes: usize,
) -> Result<Bytes, ClientError> {
    stream.write_all(frame).await.map_err(ClientError::Io)?;
    read_frame(stream, max_response_bytes)
        .await
        .map_err(|error| match error {
            FrameError::Closed => ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()),
            FrameError::TooLarge { size, limit } => ClientError::TooLarge { size, limit },
            FrameError::Io(error) => ClientError::Io(error),
        })
}
