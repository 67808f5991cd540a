//! Where `sluice group reset-offsets` moves a group's committed offset in each
//! partition, computed as Kafka's `kafka-consumer-groups --reset-offsets` does:
//! pure functions of the partition's current committed offset, its earliest and
//! latest offsets and (for `--to-datetime`) the offset ListOffsets found for a time.

use super::errors::CliError;

/// The requested reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the Unix epoch.
    Datetime(i64),
    ShiftBy(i64),
}

/// What is known about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The group's committed offset, if it has one.
    pub current: Option<i64>,
    pub earliest: i64,
    pub latest: i64,
    /// For `Datetime`: the first offset whose timestamp is at or after the time,
    /// `None` when no record is that recent.
    pub by_time: Option<i64>,
}

/// The new committed offset. Explicit offsets and shifts are clamped into
/// [earliest, latest], as Kafka's tool does; a time later than every record
/// resets to the latest offset.
pub fn target(reset: ResetTo, offsets: PartitionOffsets) -> Result<i64, String> {
    let clamp = |offset: i64| offset.clamp(offsets.earliest, offsets.latest.max(offsets.earliest));
    Ok(match reset {
        ResetTo::Earliest => offsets.earliest,
        ResetTo::Latest => offsets.latest,
        ResetTo::Offset(offset) => clamp(offset),
        ResetTo::Datetime(_) => clamp(offsets.by_time.unwrap_or(offsets.latest)),
        ResetTo::ShiftBy(delta) => {
            let current = offsets
                .current
                .ok_or("the group has no committed offset to shift from")?;
            clamp(current.saturating_add(delta))
        }
    })
}

/// Parses `--to-datetime`: milliseconds since the epoch, or an RFC 3339 date-time
/// (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250+02:00`; without a zone, UTC).
pub fn parse_datetime(text: &str) -> Result<i64, CliError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    rfc3339_ms(text).ok_or_else(|| {
        CliError::Usage(format!(
            "not a date-time: {text:?} (give milliseconds since the epoch or e.g. 2024-05-01T12:00:00Z)"
        ))
    })
}

fn rfc3339_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    };
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits, padded with zeros.
        let ms: String = fraction[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &zone[1..];
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let hours: i64 = zone[0..2].parse().ok()?;
            let minutes: i64 = zone[3..5].parse().ok()?;
            sign * (hours * 60 + minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFSETS: PartitionOffsets = PartitionOffsets {
        current: Some(40),
        earliest: 10,
        latest: 100,
        by_time: Some(55),
    };

    #[test]
    fn targets_follow_kafkas_rules() {
        assert_eq!(target(ResetTo::Earliest, OFFSETS), Ok(10));
        assert_eq!(target(ResetTo::Latest, OFFSETS), Ok(100));
        assert_eq!(target(ResetTo::Offset(42), OFFSETS), Ok(42));
        assert_eq!(target(ResetTo::Datetime(0), OFFSETS), Ok(55));
        assert_eq!(target(ResetTo::ShiftBy(-5), OFFSETS), Ok(35));
        assert_eq!(target(ResetTo::ShiftBy(7), OFFSETS), Ok(47));
    }

    #[test]
    fn targets_are_clamped_into_the_log() {
        assert_eq!(target(ResetTo::Offset(5), OFFSETS), Ok(10));
        assert_eq!(target(ResetTo::Offset(500), OFFSETS), Ok(100));
        assert_eq!(target(ResetTo::ShiftBy(-1000), OFFSETS), Ok(10));
        assert_eq!(target(ResetTo::ShiftBy(i64::MAX), OFFSETS), Ok(100));
    }

    #[test]
    fn a_time_after_every_record_resets_to_the_latest_offset() {
        let late = PartitionOffsets {
            by_time: None,
            ..OFFSETS
        };
        assert_eq!(target(ResetTo::Datetime(i64::MAX), late), Ok(100));
    }

    #[test]
    fn shifting_needs_a_committed_offset() {
        let none = PartitionOffsets {
            current: None,
            ..OFFSETS
        };
        assert!(target(ResetTo::ShiftBy(1), none).is_err());
        assert_eq!(target(ResetTo::Earliest, none), Ok(10));
    }

    #[test]
    fn datetimes_parse_as_milliseconds_since_the_epoch() {
        assert_eq!(parse_datetime("1700000000123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20.123Z").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_datetime("2023-11-15T00:13:20.1+02:00").unwrap(),
            1_700_000_000_100
        );
        assert_eq!(
            parse_datetime("2023-11-14T17:13:20-05:00").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00").unwrap(),
            951_868_800_000
        );
        for bad in [
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20.",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }
}
