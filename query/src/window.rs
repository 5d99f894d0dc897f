//! A time range of the lake, in µs since the epoch (UTC), half-open `[from, to)`: what a
//! timeline covers, what a detection run looks at.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub const MICROS_PER_SECOND: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    from: i64,
    to: i64,
}

impl Window {
    pub fn new(from: i64, to: i64) -> Result<Window, String> {
        if to <= from {
            return Err(format!(
                "the window ends ({}) before it starts ({})",
                rfc3339(to),
                rfc3339(from)
            ));
        }
        Ok(Window { from, to })
    }

    /// `--around T --window W`: W wide, centred on T.
    pub fn around(center: i64, width: std::time::Duration) -> Result<Window, String> {
        let half = i64::try_from(width.as_micros() / 2)
            .map_err(|_| "the window is too long".to_owned())?;
        if half == 0 {
            return Err("the window must be longer than 0".into());
        }
        Window::new(center.saturating_sub(half), center.saturating_add(half))
    }

    pub fn from(&self) -> i64 {
        self.from
    }

    pub fn to(&self) -> i64 {
        self.to
    }

    pub fn contains(&self, t: i64) -> bool {
        (self.from..self.to).contains(&t)
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from) / (86_400 * MICROS_PER_SECOND)
    }

    /// This window, widened backwards (to find which pod held an address when the window
    /// opened).
    pub fn reaching_back(&self, micros: i64) -> Window {
        Window {
            from: self.from.saturating_sub(micros),
            to: self.to,
        }
    }

    /// SQL that keeps a table's rows in the window. The `event_date` bounds prune whole
    /// partitions; the `event_time` bounds prune row groups by their statistics.
    pub fn predicate(&self) -> String {
        format!(
            "event_date BETWEEN DATE '{}' AND DATE '{}' AND event_time >= {} AND event_time < {}",
            date(self.from),
            date(self.to - 1),
            timestamp_literal(self.from),
            timestamp_literal(self.to)
        )
    }
}

impl Window {
    /// `column` (a timestamp) within the window, for views that carry no `event_date`.
    pub fn time_predicate(&self, column: &str) -> String {
        format!(
            "{column} >= {} AND {column} < {}",
            timestamp_literal(self.from),
            timestamp_literal(self.to)
        )
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", rfc3339(self.from), rfc3339(self.to))
    }
}

/// A time as a responder types it: RFC 3339 (`2026-11-20T09:30:00Z`, any offset), or UTC
/// `2026-11-20 09:30[:00]`, `2026-11-20T09:30`, or a day `2026-11-20` (its midnight).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if let Ok(t) = kubetrail_schemas::time::parse_timestamp(s) {
        return in_range(text, t);
    }
    for fmt in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return in_range(text, t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        return in_range(text, t.and_utc().timestamp_micros());
    }
    Err(format!(
        "'{text}' is not a time (use 2026-11-20T09:30:00Z, '2026-11-20 09:30' or 2026-11-20)"
    ))
}

/// Years 1970 to 9999: anything else is a typo, and SQL dates outside it would not parse.
fn in_range(text: &str, t: i64) -> Result<i64, String> {
    const MAX: i64 = 253_402_300_799 * MICROS_PER_SECOND; // 9999-12-31T23:59:59Z
    if (0..=MAX).contains(&t) {
        Ok(t)
    } else {
        Err(format!("'{text}' is outside the years 1970 to 9999"))
    }
}

/// `500ms`, `90s`, `15m`, `168h`, `400d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 168h or 7d"))?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("'{text}': the unit must be ms, s, m, h or d")),
    };
    n.checked_mul(millis)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long"))
}

pub fn rfc3339(t: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(t)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn date(t: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(t)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// A µs UTC timestamp literal of the lake's column type, so the comparison needs no cast
/// of the column (a cast would defeat statistics pruning).
pub(crate) fn timestamp_literal(t: i64) -> String {
    format!("arrow_cast({t}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_forms_responders_type() {
        let t = parse_time("2026-11-20T09:30:00Z").unwrap();
        assert_eq!(parse_time("2026-11-20 09:30").unwrap(), t);
        assert_eq!(parse_time("2026-11-20T09:30").unwrap(), t);
        assert_eq!(parse_time("2026-11-20T10:30:00+01:00").unwrap(), t);
        assert_eq!(
            parse_time("2026-11-20").unwrap(),
            t - 9 * 3600 * MICROS_PER_SECOND - 30 * 60 * MICROS_PER_SECOND
        );
        for bad in ["yesterday", "2026-13-01", "09:30", "", "1800-01-01"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        let w = Window::around(t, std::time::Duration::from_secs(7200)).unwrap();
        assert_eq!(rfc3339(w.from()), "2026-11-20T08:30:00.000000Z");
        assert!(Window::new(t, t).is_err());
        assert!(w
            .predicate()
            .contains("DATE '2026-11-20' AND DATE '2026-11-20'"));
    }
}
