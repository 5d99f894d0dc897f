//! Timestamps as the sources write them, to microseconds since the epoch (UTC).

use chrono::{DateTime, NaiveDateTime};

/// Parses RFC 3339 (any number of fraction digits, `Z` or an offset with or without a
/// colon) or a naive `YYYY-MM-DD HH:MM:SS[.f]` taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    Err(format!("'{}' is not an RFC 3339 timestamp", shorten(s)))
}

/// Seconds since the epoch, as VPC and Calico flow logs write them.
pub fn from_epoch_seconds(secs: i64) -> Result<i64, String> {
    secs.checked_mul(1_000_000)
        .ok_or_else(|| format!("epoch seconds {secs} out of range"))
}

/// Nanoseconds since the epoch, as Falco writes `evt.time`.
pub fn from_epoch_nanos(nanos: i64) -> i64 {
    nanos.div_euclid(1_000)
}

pub(crate) fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        let head: String = s.chars().take(60).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_sources_use() {
        let base = 1_540_476_552_000_000; // 2018-10-25T14:09:12Z
        assert_eq!(parse_timestamp("2018-10-25T14:09:12Z").unwrap(), base);
        assert_eq!(
            parse_timestamp("2018-10-25T14:09:12.123456Z").unwrap(),
            base + 123_456
        );
        assert_eq!(
            parse_timestamp("2018-10-25T14:09:12.123456789Z").unwrap(),
            base + 123_456
        );
        assert_eq!(parse_timestamp("2018-10-25T16:09:12+02:00").unwrap(), base);
        assert_eq!(
            parse_timestamp("2018-10-25T14:09:12.5+0000").unwrap(),
            base + 500_000
        );
        assert_eq!(parse_timestamp("2018-10-25 14:09:12").unwrap(), base);
        assert!(parse_timestamp("yesterday")
            .unwrap_err()
            .contains("yesterday"));
        assert!(parse_timestamp("").is_err());
        assert_eq!(
            from_epoch_nanos(1_470_327_477_881_781_397),
            1_470_327_477_881_781
        );
        assert!(from_epoch_seconds(i64::MAX).is_err());
    }
}
