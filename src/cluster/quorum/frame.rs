//! The frames of the controller wire protocol: their byte layout, and reading and
//! writing one frame on a stream. Every frame is `u32` length (big endian, counting
//! the kind byte and the payload), one kind byte, then the payload.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::types::NodeId;

/// Largest frame accepted or sent (kind byte + payload). A bigger length prefix
/// closes the connection: it is either garbage or a peer we cannot serve.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// Longest cluster id carried in a Hello (Kafka's are 22 characters).
const MAX_CLUSTER_ID_BYTES: usize = 255;

const KIND_HELLO: u8 = 0;
const KIND_HELLO_OK: u8 = 1;
const KIND_REFUSED: u8 = 2;
const KIND_RAFT: u8 = 3;
const KIND_REQUEST: u8 = 4;
const KIND_RESPONSE: u8 = 5;

/// One frame of the controller protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// First frame of every connection, from the connecting side.
    Hello {
        cluster_id: String,
        node_id: NodeId,
    },
    /// The server accepts the Hello.
    HelloOk,
    /// The server belongs to another cluster (`cluster_id` is the server's) and closes.
    Refused {
        cluster_id: String,
    },
    /// A protobuf-encoded `raft::eraftpb::Message`, one way.
    Raft(Vec<u8>),
    /// A request for the `RequestHandler`; answered by a `Response` with the same id.
    Request {
        id: u64,
        body: Vec<u8>,
    },
    Response {
        id: u64,
        body: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

impl Frame {
    /// The frame with its length prefix, ready to write.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        match self {
            Frame::Hello {
                cluster_id,
                node_id,
            } => {
                out.push(KIND_HELLO);
                put_string(&mut out, cluster_id);
                out.extend_from_slice(&node_id.0.to_be_bytes());
            }
            Frame::HelloOk => out.push(KIND_HELLO_OK),
            Frame::Refused { cluster_id } => {
                out.push(KIND_REFUSED);
                put_string(&mut out, cluster_id);
            }
            Frame::Raft(bytes) => {
                out.push(KIND_RAFT);
                out.extend_from_slice(bytes);
            }
            Frame::Request { id, body } => {
                out.push(KIND_REQUEST);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(body);
            }
            Frame::Response { id, body } => {
                out.push(KIND_RESPONSE);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(body);
            }
        }
        let len = u32::try_from(out.len() - 4).expect("frame length fits u32");
        out[..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// Parses a frame without its length prefix (kind byte + payload).
    pub fn decode(buf: &[u8]) -> Result<Frame, FrameError> {
        let (&kind, payload) = buf.split_first().ok_or(FrameError::Malformed("empty"))?;
        match kind {
            KIND_HELLO => {
                let (cluster_id, rest) = take_string(payload)?;
                let id: [u8; 4] = rest
                    .try_into()
                    .map_err(|_| FrameError::Malformed("hello node id"))?;
                Ok(Frame::Hello {
                    cluster_id,
                    node_id: NodeId(i32::from_be_bytes(id)),
                })
            }
            KIND_HELLO_OK if payload.is_empty() => Ok(Frame::HelloOk),
            KIND_REFUSED => {
                let (cluster_id, rest) = take_string(payload)?;
                if !rest.is_empty() {
                    return Err(FrameError::Malformed("refused trailing bytes"));
                }
                Ok(Frame::Refused { cluster_id })
            }
            KIND_RAFT => Ok(Frame::Raft(payload.to_vec())),
            KIND_REQUEST | KIND_RESPONSE => {
                if payload.len() < 8 {
                    return Err(FrameError::Malformed("request id"));
                }
                let (id, body) = payload.split_at(8);
                let id = u64::from_be_bytes(id.try_into().expect("8 bytes"));
                let body = body.to_vec();
                Ok(if kind == KIND_REQUEST {
                    Frame::Request { id, body }
                } else {
                    Frame::Response { id, body }
                })
            }
            _ => Err(FrameError::Malformed("unknown kind")),
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(MAX_CLUSTER_ID_BYTES)];
    out.push(u8::try_from(bytes.len()).expect("bounded above"));
    out.extend_from_slice(bytes);
}

fn take_string(buf: &[u8]) -> Result<(String, &[u8]), FrameError> {
    let (&len, rest) = buf
        .split_first()
        .ok_or(FrameError::Malformed("string length"))?;
    if rest.len() < usize::from(len) {
        return Err(FrameError::Malformed("string bytes"));
    }
    let (s, rest) = rest.split_at(usize::from(len));
    let s = String::from_utf8(s.to_vec()).map_err(|_| FrameError::Malformed("string utf-8"))?;
    Ok((s, rest))
}

/// Reads one whole frame; a length over [`MAX_FRAME_BYTES`] is an error before any
/// payload is read, so a bad peer cannot make us allocate.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Frame::decode(&buf)
}

/// Writes bytes made by [`Frame::encode`] and flushes them.
pub async fn write_encoded<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(f: Frame) {
        let bytes = f.encode();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(Frame::decode(&bytes[4..]).unwrap(), f);
    }

    #[test]
    fn every_kind_roundtrips() {
        roundtrip(Frame::Hello {
            cluster_id: "abc".into(),
            node_id: NodeId(0),
        });
        roundtrip(Frame::HelloOk);
        roundtrip(Frame::Refused {
            cluster_id: "other".into(),
        });
        roundtrip(Frame::Raft(vec![1, 2, 3]));
        roundtrip(Frame::Request {
            id: 7,
            body: b"hi".to_vec(),
        });
        roundtrip(Frame::Response {
            id: u64::MAX,
            body: vec![],
        });
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(Frame::decode(&[]).is_err());
        assert!(Frame::decode(&[9]).is_err());
        assert!(Frame::decode(&[KIND_REQUEST, 1, 2]).is_err());
        assert!(Frame::decode(&[KIND_HELLO, 5, b'a']).is_err());
        assert!(Frame::decode(&[KIND_HELLO_OK, 0]).is_err());
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut bytes = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        bytes.push(KIND_RAFT);
        let mut r = futures_lite::io::Cursor::new(bytes);
        let err = futures_lite::future::block_on(read_frame(&mut r)).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)));
    }
}
