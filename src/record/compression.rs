//! Decompression of a batch's records section, for the few checks that need the
//! records themselves. Bounded: a batch never inflates past the caller's limit, so
//! a small compressed batch cannot claim unbounded memory.

use std::io::Read;

use crate::record::attributes::Compression;

/// The magic header of xerial-framed snappy (what the Java client writes).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Magic, version and compatible version.
const XERIAL_HEADER_LEN: usize = 16;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("{codec:?} data does not decompress: {reason}")]
    Corrupt { codec: Compression, reason: String },
    #[error("{codec:?} data inflates past {limit} bytes")]
    TooLarge { codec: Compression, limit: usize },
}

/// The records section of a batch compressed with `codec`, inflated; at most
/// `limit` bytes.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |reason: String| DecompressError::Corrupt { codec, reason };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(data), limit),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| corrupt(e.to_string()))?;
            read_bounded(codec, decoder, limit)
        }
        Compression::Snappy if data.starts_with(XERIAL_MAGIC) => xerial_snappy(data, limit),
        Compression::Snappy => raw_snappy(data, limit),
    }
}

fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { codec, limit });
    }
    Ok(out)
}

fn raw_snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(data).map_err(|e| DecompressError::Corrupt {
        codec,
        reason: e.to_string(),
    })?;
    if len > limit {
        return Err(DecompressError::TooLarge { codec, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| DecompressError::Corrupt {
            codec,
            reason: e.to_string(),
        })
}

/// Xerial framing: a 16-byte header, then blocks of a big-endian i32 length and
/// that many bytes of raw snappy.
fn xerial_snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = Compression::Snappy;
    let corrupt = |reason: &str| DecompressError::Corrupt {
        codec,
        reason: reason.to_string(),
    };
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or(corrupt("short xerial header"))?;
    let mut out = Vec::new();
    // Every block takes at least its 4-byte length, so this bounds the loop.
    for _ in 0..data.len() / 4 + 1 {
        if rest.is_empty() {
            return Ok(out);
        }
        let len = rest
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(corrupt("bad xerial block length"))?;
        let block = rest
            .get(4..4 + len)
            .ok_or(corrupt("truncated xerial block"))?;
        let part = raw_snappy(block, limit - out.len()).map_err(|e| match e {
            DecompressError::TooLarge { .. } => DecompressError::TooLarge { codec, limit },
            other => other,
        })?;
        out.extend_from_slice(&part);
        rest = &rest[4 + len..];
    }
    Err(corrupt("too many xerial blocks"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn sample() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_and_respects_the_limit() {
        let data = sample();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&data).unwrap();
        let gzip = gzip.finish().unwrap();
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&data).unwrap();
        let lz4 = lz4.finish().unwrap();
        let zstd = zstd::stream::encode_all(&data[..], 1).unwrap();
        let snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for part in data.chunks(30_000) {
            let block = snap::raw::Encoder::new().compress_vec(part).unwrap();
            xerial.extend_from_slice(&(block.len() as i32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        let cases = [
            (Compression::Gzip, gzip),
            (Compression::Lz4, lz4),
            (Compression::Zstd, zstd),
            (Compression::Snappy, snappy),
            (Compression::Snappy, xerial),
        ];
        for (codec, compressed) in cases {
            assert_eq!(
                decompress(codec, &compressed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            assert_eq!(
                decompress(codec, &compressed, data.len() - 1),
                Err(DecompressError::TooLarge {
                    codec,
                    limit: data.len() - 1
                }),
                "{codec:?}"
            );
            let cut = &compressed[..compressed.len() / 2];
            assert!(
                decompress(codec, cut, data.len()).is_err(),
                "{codec:?} truncated"
            );
        }
    }
}
