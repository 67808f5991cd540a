//! Compression of a batch's records section: decompression for the few checks that
//! need the records themselves, and compression for the log cleaner, which rewrites
//! a batch with the codec (and snappy framing) it arrived with. Decompression is
//! bounded: a batch never inflates past the caller's limit, so a small compressed
//! batch cannot claim unbounded memory.

use std::io::{Read, Write};

use crate::record::attributes::Compression;

/// The magic header of xerial-framed snappy (what the Java client writes).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Magic, version and compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// The xerial format version and the oldest version able to read it, both 1.
const XERIAL_VERSIONS: [u8; 8] = [0, 0, 0, 1, 0, 0, 0, 1];
/// Uncompressed bytes per xerial block: the Java client's snappy block size.
const XERIAL_BLOCK: usize = 32 << 10;
/// Kafka's default gzip level (the JDK deflater's default).
const GZIP_LEVEL: u32 = 6;
/// Kafka's default zstd level.
const ZSTD_LEVEL: i32 = 3;

/// How snappy data is framed. Clients differ, and the cleaner writes back what it
/// read so a consumer sees the framing its producer chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnappyFraming {
    /// One raw snappy block (librdkafka, franz-go).
    Raw,
    /// Xerial's snappy-java stream: a 16-byte header, then length-prefixed raw
    /// blocks (the Java client).
    Xerial,
}

/// Which framing the snappy-compressed `data` uses.
pub fn snappy_framing(data: &[u8]) -> SnappyFraming {
    if data.starts_with(XERIAL_MAGIC) {
        SnappyFraming::Xerial
    } else {
        SnappyFraming::Raw
    }
}

/// Why data did not compress: only an encoder's own limits (snappy's input size)
/// or an I/O error from an in-memory writer, neither expected in practice.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{codec:?} compression failed: {reason}")]
pub struct CompressError {
    pub codec: Compression,
    pub reason: String,
}

/// `data` compressed with `codec` as Kafka clients write it: gzip at level 6, the
/// LZ4 frame format with 64 KiB independent blocks, zstd at level 3, snappy in
/// `framing` (ignored by the other codecs).
pub fn compress(
    codec: Compression,
    data: &[u8],
    framing: SnappyFraming,
) -> Result<Vec<u8>, CompressError> {
    let failed = |reason: String| CompressError { codec, reason };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(data).map_err(|e| failed(e.to_string()))?;
            encoder.finish().map_err(|e| failed(e.to_string()))
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(data).map_err(|e| failed(e.to_string()))?;
            encoder.finish().map_err(|e| failed(e.to_string()))
        }
        Compression::Zstd => {
            zstd::bulk::compress(data, ZSTD_LEVEL).map_err(|e| failed(e.to_string()))
        }
        Compression::Snappy => {
            let mut encoder = snap::raw::Encoder::new();
            match framing {
                SnappyFraming::Raw => encoder
                    .compress_vec(data)
                    .map_err(|e| failed(e.to_string())),
                SnappyFraming::Xerial => {
                    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
                    out.extend_from_slice(XERIAL_MAGIC);
                    out.extend_from_slice(&XERIAL_VERSIONS);
                    for part in data.chunks(XERIAL_BLOCK) {
                        let block = encoder
                            .compress_vec(part)
                            .map_err(|e| failed(e.to_string()))?;
                        let len = i32::try_from(block.len())
                            .map_err(|_| failed("xerial block over 2 GiB".to_string()))?;
                        out.extend_from_slice(&len.to_be_bytes());
                        out.extend_from_slice(&block);
                    }
                    Ok(out)
                }
            }
        }
    }
}

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
        Compression::Snappy => match snappy_framing(data) {
            SnappyFraming::Xerial => xerial_snappy(data, limit),
            SnappyFraming::Raw => raw_snappy(data, limit),
        },
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
        xerial.extend_from_slice(&XERIAL_VERSIONS);
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

    #[test]
    fn every_codec_compresses_what_it_decompresses() {
        let data = sample();
        let cases = [
            (Compression::None, SnappyFraming::Raw),
            (Compression::Gzip, SnappyFraming::Raw),
            (Compression::Lz4, SnappyFraming::Raw),
            (Compression::Zstd, SnappyFraming::Raw),
            (Compression::Snappy, SnappyFraming::Raw),
            (Compression::Snappy, SnappyFraming::Xerial),
        ];
        for (codec, framing) in cases {
            for input in [&data[..], &data[..1], &[][..]] {
                let compressed = compress(codec, input, framing).unwrap();
                assert_eq!(
                    decompress(codec, &compressed, input.len()).unwrap(),
                    input,
                    "{codec:?} {framing:?} of {} bytes",
                    input.len()
                );
                if codec == Compression::Snappy {
                    assert_eq!(snappy_framing(&compressed), framing);
                }
            }
        }
        let xerial = compress(Compression::Snappy, &data, SnappyFraming::Xerial).unwrap();
        assert_eq!(&xerial[8..XERIAL_HEADER_LEN], &XERIAL_VERSIONS);
        let first_block = i32::from_be_bytes(xerial[16..20].try_into().unwrap());
        assert!(
            (first_block as usize) < xerial.len() - 20,
            "{} bytes split into several 32 KiB blocks",
            data.len()
        );
    }
}
