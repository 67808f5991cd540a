//! Encodes a response whose record fields are sent from files. The codec crate
//! writes a record field as one `put_slice` of its bytes; each file-backed field is
//! given a placeholder slice of the right length from a static zero region, and the
//! buffer below recognises that region by address, cuts the frame there and
//! splices the field's pieces in instead of copying anything.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use crate::net::outgoing::{Piece, Pieces};

/// The largest record field that can be spliced; larger ones are copied.
pub const MAX_SPLICED_FIELD: usize = 64 << 20;

/// Never read or written: only its addresses are used (it lives in .bss, so it
/// costs no memory).
static PLACEHOLDER: [u8; MAX_SPLICED_FIELD] = [0; MAX_SPLICED_FIELD];

/// A stand-in for `len` bytes of a record field, for [`encode_response`].
pub fn placeholder(len: u64) -> Bytes {
    let len = usize::try_from(len).expect("a spliced field fits in memory");
    assert!(len <= MAX_SPLICED_FIELD, "spliced field of {len} bytes");
    Bytes::from_static(&PLACEHOLDER[..len])
}

/// Encodes a response frame (size included); `fields` are the pieces of each
/// placeholder in the body, in encoding order.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
    fields: Vec<Pieces>,
) -> Result<Pieces, String> {
    let mut buf = SplicingBuf {
        current: BytesMut::with_capacity(256),
        flushed: 0,
        done: Pieces::default(),
        fields: fields.into(),
    };
    buf.current.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    if !buf.fields.is_empty() {
        return Err(format!(
            "{} spliced fields were not encoded",
            buf.fields.len()
        ));
    }
    buf.cut();
    let mut pieces = buf.done.into_vec();
    let size = pieces.iter().map(Piece::len).sum::<u64>() - 4;
    let size = i32::try_from(size).map_err(|_| "response over 2 GiB".to_string())?;
    let Some(Piece::Bytes(first)) = pieces.first_mut() else {
        unreachable!("the frame starts with its size and header");
    };
    let mut head = BytesMut::from(&first[..]);
    head[..4].copy_from_slice(&size.to_be_bytes());
    *first = head.freeze();
    let mut frame = Pieces::default();
    for piece in pieces {
        frame.push(piece);
    }
    Ok(frame)
}

struct SplicingBuf {
    current: BytesMut,
    /// Bytes in `done` (the offset `current` starts at).
    flushed: usize,
    done: Pieces,
    fields: VecDeque<Pieces>,
}

impl SplicingBuf {
    fn cut(&mut self) {
        let bytes = self.current.split().freeze();
        self.flushed += bytes.len();
        self.done.push(Piece::Bytes(bytes));
    }

    fn is_placeholder(src: &[u8]) -> bool {
        let region = PLACEHOLDER.as_ptr_range();
        !src.is_empty() && region.contains(&src.as_ptr())
    }
}

// SAFETY: every method delegates to the inner BytesMut, which upholds BufMut's
// contract; `put_slice` only adds bookkeeping around safe calls.
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is passed on unchanged.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if !Self::is_placeholder(src) {
            self.current.extend_from_slice(src);
            return;
        }
        let field = self
            .fields
            .pop_front()
            .expect("a placeholder for every spliced field");
        assert_eq!(field.len(), src.len() as u64, "placeholder length");
        self.cut();
        for piece in field.into_vec() {
            self.flushed += piece.len() as usize;
            self.done.push(piece);
        }
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.flushed + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.flushed, "seek before a spliced field");
        self.current.resize(offset - self.flushed, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.flushed, "range before a spliced field");
        &mut self.current[r.start - self.flushed..r.end - self.flushed]
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};

    use super::*;
    use crate::net::outgoing::FileRange;

    /// The spliced frame, with its file ranges read back, is byte for byte what
    /// the plain encoder writes, for every Fetch version.
    #[test]
    fn spliced_frames_equal_plain_ones() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"..file-records..").unwrap();
        let file = Arc::new(file);
        let file_bytes = Bytes::from_static(b"file-records");
        let memory = Bytes::from_static(b"memory-records");
        let response = |first: Bytes, second: Bytes| {
            FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default().with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_records(Some(first)),
                    PartitionData::default()
                        .with_partition_index(1)
                        .with_records(Some(second)),
                ]),
            ])
        };
        for version in 4..=17 {
            let plain = crate::protocol::codec::encode_response(
                9,
                version,
                &response(memory.clone(), file_bytes.clone()),
            )
            .unwrap();
            let mut field = Pieces::default();
            field.push(Piece::File(FileRange {
                file: Arc::clone(&file),
                position: 2,
                len: 12,
            }));
            let spliced = encode_response(
                9,
                version,
                &response(memory.clone(), placeholder(12)),
                vec![field],
            )
            .unwrap();
            assert!(spliced.has_files());
            let mut flat = Vec::new();
            for piece in spliced.iter() {
                match piece {
                    Piece::Bytes(bytes) => flat.extend_from_slice(bytes),
                    Piece::File(range) => {
                        use std::os::unix::fs::FileExt;
                        let mut read = vec![0; range.len as usize];
                        range.file.read_exact_at(&mut read, range.position).unwrap();
                        flat.extend_from_slice(&read);
                    }
                }
            }
            let mut expected = plain.to_vec();
            let size = (expected.len() - 4) as i32;
            expected[..4].copy_from_slice(&size.to_be_bytes());
            assert_eq!(flat, expected, "Fetch v{version}");
        }
    }
}
