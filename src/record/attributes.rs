//! The attributes field of a v2 record batch header.

/// Compression codec, bits 0-2 of the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Where a batch's timestamps come from, bit 3 of the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The raw attributes of a batch, decoded on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes(pub i16);

impl Attributes {
    const COMPRESSION_MASK: i16 = 0x07;
    const TIMESTAMP_TYPE: i16 = 0x08;
    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    /// The codec, or `None` for the reserved values 5-7.
    pub fn compression(self) -> Option<Compression> {
        match self.0 & Self::COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn with_timestamp_type(self, timestamp_type: TimestampType) -> Attributes {
        match timestamp_type {
            TimestampType::LogAppendTime => Attributes(self.0 | Self::TIMESTAMP_TYPE),
            TimestampType::CreateTime => Attributes(self.0 & !Self::TIMESTAMP_TYPE),
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// The same attributes marking a batch as part of a transaction.
    pub fn with_transactional(self) -> Attributes {
        Attributes(self.0 | Self::TRANSACTIONAL)
    }

    /// The same attributes marking a batch as control records (markers).
    pub fn with_control(self) -> Attributes {
        Attributes(self.0 | Self::CONTROL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_field() {
        let attributes = Attributes(0x3B);
        assert_eq!(attributes.compression(), Some(Compression::Lz4));
        assert_eq!(attributes.timestamp_type(), TimestampType::LogAppendTime);
        assert!(attributes.is_transactional());
        assert!(attributes.is_control());
        assert_eq!(Attributes(5).compression(), None);
        assert_eq!(
            Attributes(0x0C).with_timestamp_type(TimestampType::CreateTime),
            Attributes(0x04)
        );
        assert_eq!(
            Attributes(0).with_transactional().with_control(),
            Attributes(0x30)
        );
    }
}
