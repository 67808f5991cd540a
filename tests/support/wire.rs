//! Requests on a raw TCP connection, encoded and decoded with the
//! `kafka-protocol` crate, for checks a client library does not expose (exact
//! response fields such as `record_errors`, or response sizes).
//!
//! Include it with `#[path = "support/wire.rs"] mod wire;`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

pub struct Wire {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Wire {
    pub fn connect(bootstrap: &str) -> Wire {
        Wire::try_connect(bootstrap, Duration::from_secs(20)).expect("connect to the broker")
    }

    /// Connects to `bootstrap` with `timeout` on the connection and on every
    /// read and write; an error instead of a panic, for brokers that may be down.
    pub fn try_connect(bootstrap: &str, timeout: Duration) -> io::Result<Wire> {
        let addr = bootstrap
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Wire {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Sends `body` as `api` at `version` and returns the decoded response and the
    /// size of its frame in bytes.
    pub fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, body: &Req) -> (Resp, usize)
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.try_call(api, version, body)
            .expect("send the request and read its response")
    }

    /// [`Wire::call`], with an error where the connection fails.
    pub fn try_call<Req, Resp>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> io::Result<(Resp, usize)>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let mut request = BytesMut::new();
        header
            .encode(&mut request, Req::header_version(version))
            .expect("encode the request header");
        body.encode(&mut request, version)
            .expect("encode the request");
        let mut frame = (request.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&request);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size) as usize;
        let mut response = vec![0u8; size];
        self.stream.read_exact(&mut response)?;
        let mut response = Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, Resp::header_version(version))
            .expect("decode the response header");
        assert_eq!(header.correlation_id, correlation_id);
        let body = Resp::decode(&mut response, version).expect("decode the response");
        Ok((body, size))
    }
}
