//! Zig-zag varints as Kafka's record format encodes them.

/// Decodes a zig-zag varint from the front of `bytes`: (value, bytes read).
pub fn read_varlong(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((value, index + 1));
        }
    }
    None
}

/// Appends `value` as a zig-zag varint.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// How many bytes [`write_varlong`] takes for `value`.
pub fn varlong_len(value: i64) -> usize {
    let raw = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, value);
            assert_eq!(read_varlong(&out), Some((value, out.len())));
            assert_eq!(varlong_len(value), out.len(), "{value}");
        }
        assert_eq!(read_varlong(&[0x80, 0x80]), None);
    }
}
