//! Length-prefixed frames: a big-endian i32 size, then that many bytes.

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a connection stops reading frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: i64, limit: usize },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame's payload; at most `limit` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameError::Closed);
        }
        Err(error) => return Err(error.into()),
    }
    let size = i32::from_be_bytes(size);
    let len = usize::try_from(size)
        .ok()
        .filter(|&len| len <= limit)
        .ok_or(FrameError::TooLarge {
            size: i64::from(size),
            limit,
        })?;
    let mut payload = BytesMut::zeroed(len);
    reader.read_exact(&mut payload).await?;
    Ok(payload.freeze())
}

/// Writes `payload` (which starts with 4 bytes reserved for the size) as one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut payload: BytesMut,
) -> std::io::Result<()> {
    let size = i32::try_from(payload.len() - 4)
        .map_err(|_| std::io::Error::other("response over 2 GiB"))?;
    payload[..4].copy_from_slice(&size.to_be_bytes());
    writer.write_all(&payload).await
}
