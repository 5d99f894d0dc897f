//! Timestamps as the sources write them, to microseconds since the epoch (UTC).

use chrono::{DateTime, NaiveDateTime};

/// Parses RFC 3339 (any number of fraction digits, `Z` or an offset with or without a
/// colon) or a naive `YYYY-MM-DD HH:MM:SS[.f]` taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Some(micros) = utc_micros(s.as_bytes()) {
        return Ok(micros);
    }
    parse_any_timestamp(s)
}

/// Every shape [`parse_timestamp`] takes, through chrono.
fn parse_any_timestamp(s: &str) -> Result<i64, String> {
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

/// The shape nearly every event has, `YYYY-MM-DDTHH:MM:SS[.f…]Z`, read straight from its
/// digits: an audit event has two, and chrono's general parser took 3 % of ingest's
/// instructions. `None` for anything else (offsets, leap seconds, impossible dates, year
/// 0), which goes the general way; the tests check both ways agree.
fn utc_micros(b: &[u8]) -> Option<i64> {
    let (head, rest) = b.split_first_chunk::<19>()?;
    let (&zone, fraction) = rest.split_last()?;
    // Checked a word at a time against the shape, not a byte at a time.
    let word = |at: usize| {
        let bytes: &[u8; 8] = head[at..at + 8].try_into().expect("eight bytes");
        u64::from_le_bytes(*bytes)
    };
    let (date, day, time) = (word(0), word(8), word(11));
    if zone != b'Z' || !DATE.fits(date) || !DAY.fits(day) || !TIME.fits(time) {
        return None;
    }
    // The digit at byte `i` of a word that fits its shape, and the number of two.
    let digit = |w: u64, i: u32| ((w >> (8 * i)) & 0x0f) as u32;
    let two = |w: u64, i: u32| digit(w, i) * 10 + digit(w, i + 1);
    let year = two(date, 0) * 100 + two(date, 2);
    let (month, day) = (two(date, 5), two(day, 0));
    let (hour, minute, second) = (two(time, 0), two(time, 3), two(time, 6));
    let micros = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = digits.iter().try_fold(0u32, |n, &c| {
                let digit = c.wrapping_sub(b'0');
                (digit <= 9).then(|| n * 10 + u32::from(digit))
            })?;
            // Scaled to nine digits, then cut to microseconds as chrono does.
            n * NANOS_PER_UNIT[digits.len()] / 1000
        }
        _ => return None,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1 || day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(seconds * 1_000_000 + i64::from(micros))
}

/// Nanoseconds in a unit of the last of so many fraction digits.
const NANOS_PER_UNIT: [u32; 10] = [
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// Bytes 0–7, 8–15 and 11–18 of a UTC time (the last two overlap on `HH:MM`).
const DATE: WordShape = WordShape::new(b"9999-99-");
const DAY: WordShape = WordShape::new(b"99T99:99");
const TIME: WordShape = WordShape::new(b"99:99:99");

/// Eight bytes of a time as the shape's text spells them: `9` a digit, any other byte
/// itself.
struct WordShape {
    /// 0xff at each digit's byte.
    digits: u64,
    /// The other bytes as they must be, zero at the digits.
    fixed: u64,
}

impl WordShape {
    const fn new(shape: &[u8; 8]) -> WordShape {
        let (mut digits, mut fixed, mut i) = (0, 0, 0);
        while i < 8 {
            if shape[i] == b'9' {
                digits |= 0xff << (8 * i);
            } else {
                fixed |= (shape[i] as u64) << (8 * i);
            }
            i += 1;
        }
        WordShape { digits, fixed }
    }

    /// Whether a little-endian word of text has this shape. A byte is a digit when its
    /// high half is 3 and its low half plus 6 stays below 16; no sum carries into the
    /// next byte, so every byte is tested at once.
    fn fits(&self, word: u64) -> bool {
        const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const LOW: u64 = !HIGH;
        let high = HIGH & self.digits;
        word & high == 0x3030_3030_3030_3030 & high
            && ((word & LOW & self.digits) + (0x0606_0606_0606_0606 & self.digits)) & high == 0
            && word & !self.digits == self.fixed
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`, with years starting in March so that the leap day comes last).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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

    /// The direct reading of `…Z` times gives what chrono gives, or leaves the text to it.
    #[test]
    fn utc_times_read_directly_agree_with_chrono() {
        let mut texts: Vec<String> = Vec::new();
        // Every day of a few years around the edges of the leap rules, at varied times.
        for year in [1, 1600, 1900, 1969, 1970, 2000, 2024, 2026, 2100, 9999] {
            for month in 0..=13 {
                for day in [0, 1, 15, 28, 29, 30, 31, 32] {
                    let h = (month * 7 + day) % 25;
                    let m = (day * 13) % 61;
                    let s = (month + day * 3) % 61;
                    texts.push(format!(
                        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"
                    ));
                }
            }
        }
        for fraction in [
            "",
            ".",
            ".5",
            ".05",
            ".123",
            ".123456",
            ".1234567",
            ".123456789",
            ".1234567891",
            ".12a",
            ".999999999",
        ] {
            texts.push(format!("2026-11-19T09:00:00{fraction}Z"));
        }
        for odd in [
            "2026-11-19T09:00:00z",
            "2026-11-19t09:00:00Z",
            "2026-11-19 09:00:00Z",
            "2026-11-19T09:00:60Z",
            "2026-11-19T24:00:00Z",
            "0000-01-01T00:00:00Z",
            "+026-11-19T09:00:00Z",
            "2026-1a-19T09:00:00Z",
            " 2026-11-19T09:00:00Z",
            "2026-11-19T09:00:00Z ",
            "2026-11-19T09:00:00+00:00",
            "2026-11-19T09:00:00.Z",
            "2026-11-19T09:00Z",
        ] {
            texts.push(odd.to_owned());
        }
        let mut direct = 0;
        for text in &texts {
            let general = parse_any_timestamp(text).ok();
            match utc_micros(text.as_bytes()) {
                Some(micros) => {
                    direct += 1;
                    assert_eq!(Some(micros), general, "{text}");
                }
                None => assert_eq!(parse_timestamp(text).ok(), general, "{text}"),
            }
        }
        assert!(direct > 500, "only {direct} read directly");
    }

    /// Every byte of a time changed to every other byte value: read directly only when
    /// chrono reads it the same.
    #[test]
    fn any_one_byte_changed_is_read_as_chrono_reads_it_or_left_to_it() {
        for good in ["2024-02-29T23:59:59.123456Z", "1999-12-31T00:00:00Z"] {
            for at in 0..good.len() {
                for byte in 0..=255u8 {
                    let mut bytes = good.as_bytes().to_vec();
                    bytes[at] = byte;
                    let Ok(text) = std::str::from_utf8(&bytes) else {
                        continue;
                    };
                    let general = parse_any_timestamp(text).ok();
                    if let Some(micros) = utc_micros(text.as_bytes()) {
                        assert_eq!(Some(micros), general, "{text}");
                    }
                    assert_eq!(parse_timestamp(text).ok(), general, "{text}");
                }
            }
        }
    }
}
