//! `dead_letters`: one row per input record that did not decode, with its raw bytes.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;

use super::{BatchLimits, Provenance};
use crate::redact::Redactor;
use crate::table::{text, Table, PARTITION_COLUMN, TIME_COLUMN};

/// Largest raw record kept in full; longer ones keep their head so the row stays readable
/// and the table stays small, and `raw_size` says how long the original was.
pub const MAX_RAW_BYTES: usize = 1 << 20;

/// A record that did not decode, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The format it was decoded as, or `auto` if none was recognised.
    pub format: String,
    /// One line.
    pub reason: String,
    pub raw: Vec<u8>,
}

pub(crate) fn fields() -> Vec<Field> {
    vec![
        // When the record was rejected: a dead letter has no trustworthy event time.
        Field::new(TIME_COLUMN, crate::table::timestamp_type(), false),
        Field::new(PARTITION_COLUMN, DataType::Date32, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Binary, false),
        Field::new("raw_size", DataType::Int64, false),
        text("raw_preview"),
    ]
}

/// Dead letters waiting to become a record batch, their records redacted.
#[derive(Debug, Default)]
pub struct DeadLetterBuffer {
    letters: Vec<(DeadLetter, usize, Provenance)>,
    approx_bytes: usize,
    redactor: Redactor,
}

impl DeadLetterBuffer {
    /// Every letter's record goes through `redactor` before it is kept.
    pub fn new(redactor: Redactor) -> Self {
        DeadLetterBuffer {
            redactor,
            ..DeadLetterBuffer::default()
        }
    }

    pub fn push(&mut self, mut letter: DeadLetter, provenance: &Provenance) {
        let size = letter.raw.len();
        letter.reason = one_line(&letter.reason);
        // Before cutting: half a credential no longer looks like one.
        self.redactor
            .redact_dead_letter(&mut letter.raw, &mut letter.reason);
        letter.raw.truncate(MAX_RAW_BYTES);
        self.approx_bytes += letter.raw.len() + letter.reason.len();
        self.letters.push((letter, size, provenance.clone()));
    }

    pub fn len(&self) -> usize {
        self.letters.len()
    }

    /// Drops every letter waiting.
    pub fn clear(&mut self) {
        self.letters.clear();
        self.approx_bytes = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// Whether the letters in so far reached a limit.
    pub fn is_full(&self, limits: BatchLimits) -> bool {
        limits.reached(self.letters.len(), self.approx_bytes)
    }

    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.letters.is_empty() {
            return Ok(None);
        }
        let letters = std::mem::take(&mut self.letters);
        self.approx_bytes = 0;
        let times = TimestampMicrosecondArray::from_iter_values(
            letters.iter().map(|(_, _, p)| p.ingested_at),
        )
        .with_timezone("UTC");
        let times: ArrayRef = Arc::new(times);
        let dates = super::utc_days(letters.iter().map(|(_, _, p)| p.ingested_at));
        let columns: Vec<ArrayRef> = vec![
            times.clone(),
            dates,
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|(l, _, _)| l.format.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|(l, _, _)| l.reason.as_str()),
            )),
            Arc::new(BinaryArray::from_iter_values(
                letters.iter().map(|(l, _, _)| l.raw.as_slice()),
            )),
            Arc::new(Int64Array::from_iter_values(
                letters.iter().map(|(_, size, _)| *size as i64),
            )),
            Arc::new(StringArray::from_iter(
                letters.iter().map(|(l, _, _)| Some(preview(&l.raw))),
            )),
            Arc::new(StringArray::from_iter_values(
                letters.iter().map(|(_, _, p)| p.source.as_ref()),
            )),
            Arc::new(Int64Array::from_iter_values(
                letters.iter().map(|(_, _, p)| p.offset),
            )),
            times,
        ];
        RecordBatch::try_new(Table::DeadLetters.schema(), columns).map(Some)
    }
}

/// The first 200 characters of the raw record, lossily decoded, for `SELECT` at a glance.
fn preview(raw: &[u8]) -> String {
    let head = &raw[..raw.len().min(600)];
    String::from_utf8_lossy(head).chars().take(200).collect()
}

/// Reasons are shown one per line; some parser messages carry newlines.
fn one_line(reason: &str) -> String {
    let mut s: String = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 500 {
        let mut cut = 500;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_secrets_never_stay_in_a_dead_letter() {
        let mut buf = DeadLetterBuffer::new(Redactor::new(b"k", &[]));
        let prov = crate::rows::test_support::provenance();
        let letter = |raw: &str, reason: &str| DeadLetter {
            format: "k8s-audit".into(),
            reason: reason.into(),
            raw: raw.as_bytes().to_vec(),
        };
        buf.push(
            letter(
                "{\"cmd\": \"mysql --password=hunter2\"",
                "EOF while parsing",
            ),
            &prov,
        );
        buf.push(
            letter(
                r#"{"objectRef":{"resource":"secrets"},"requestObject":{"data":{"p":"aHVudGVyMg=="}"#,
                r#"invalid type: string "aHVudGVyMg==", expected a map"#,
            ),
            &prov,
        );
        buf.push(letter("{\"a\": 1", "token=abc12345 in the reason"), &prov);
        let batch = buf.take_batch().unwrap().unwrap();
        let column = |name: &str| -> Vec<String> {
            let array = batch.column_by_name(name).unwrap();
            (0..batch.num_rows())
                .map(|i| arrow::util::display::array_value_to_string(array, i).unwrap())
                .collect()
        };
        let (reasons, raws) = (column("reason"), column("raw_preview"));
        let all = format!("{reasons:?} {raws:?} {:?}", column("raw"));
        for plain in ["hunter2", "aHVudGVyMg==", "abc12345"] {
            assert!(!all.contains(plain), "{plain} in {all}");
        }
        assert!(
            reasons[0].ends_with("(credentials in the raw record redacted)"),
            "{reasons:?}"
        );
        assert!(raws[0].contains("--password=[REDACTED hmac:"), "{raws:?}");
        assert_eq!(
            reasons[1],
            "invalid type: string \"…\", expected a map (raw record not kept: it is about a Secret or a token)"
        );
        assert_eq!(raws[1], "");
        assert!(
            reasons[2].starts_with("token=[REDACTED hmac:"),
            "{reasons:?}"
        );
    }

    #[test]
    fn keeps_raw_bytes_and_one_line_reason() {
        let mut buf = DeadLetterBuffer::default();
        let prov = crate::rows::test_support::provenance();
        buf.push(
            DeadLetter {
                format: "k8s-audit".into(),
                reason: "bad\nthing".into(),
                raw: vec![0xff, 0xfe, b'{'],
            },
            &prov,
        );
        buf.push(
            DeadLetter {
                format: "auto".into(),
                reason: "huge".into(),
                raw: vec![b'x'; MAX_RAW_BYTES + 10],
            },
            &prov,
        );
        let batch = buf.take_batch().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let reasons = batch.column_by_name("reason").unwrap();
        let reasons = reasons.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(reasons.value(0), "bad thing");
        let raw = batch.column_by_name("raw").unwrap();
        let raw = raw.as_any().downcast_ref::<BinaryArray>().unwrap();
        assert_eq!(raw.value(0), &[0xff, 0xfe, b'{']);
        assert_eq!(raw.value(1).len(), MAX_RAW_BYTES);
        let sizes = batch.column_by_name("raw_size").unwrap();
        let sizes = sizes.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(sizes.value(1), (MAX_RAW_BYTES + 10) as i64);
        assert!(buf.is_empty());
    }
}
