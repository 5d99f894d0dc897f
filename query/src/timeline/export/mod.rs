//! A timeline written out: for the terminal, as data (CSV, JSON lines, Parquet), for
//! Timesketch, as one self-contained HTML report, or as an evidence bundle (a directory:
//! [`evidence`]).
//!
//! The data formats share one documented column set ([`columns`]); see
//! `docs/timeline.md`.

pub mod evidence;
mod html;
mod timesketch;

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::event::TimelineEvent;
use super::Timeline;
use crate::output::{write_batches, OutputFormat};
use crate::window::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineFormat {
    Table,
    Csv,
    Jsonl,
    Parquet,
    Timesketch,
    Html,
}

impl TimelineFormat {
    /// Formats a terminal must not receive.
    pub fn is_binary(self) -> bool {
        self == TimelineFormat::Parquet
    }
}

impl FromStr for TimelineFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "table" => TimelineFormat::Table,
            "csv" => TimelineFormat::Csv,
            "jsonl" | "json" => TimelineFormat::Jsonl,
            "parquet" => TimelineFormat::Parquet,
            "timesketch" => TimelineFormat::Timesketch,
            "html" => TimelineFormat::Html,
            other => {
                return Err(format!(
                "unknown timeline format '{other}' (table, csv, jsonl, parquet, timesketch, html; evidence with --output DIR)"
            ))
            }
        })
    }
}

pub fn write(
    timeline: &Timeline,
    format: TimelineFormat,
    out: &mut (dyn Write + Send),
) -> Result<(), ArrowError> {
    match format {
        TimelineFormat::Table => write_text(timeline, out),
        TimelineFormat::Csv => write_batches(&[to_batch(&timeline.lines)?], OutputFormat::Csv, out),
        TimelineFormat::Jsonl => {
            write_batches(&[to_batch(&timeline.lines)?], OutputFormat::Json, out)
        }
        TimelineFormat::Parquet => {
            write_batches(&[to_batch(&timeline.lines)?], OutputFormat::Parquet, out)
        }
        TimelineFormat::Timesketch => timesketch::write(timeline, out),
        TimelineFormat::Html => Ok(out.write_all(html::render(timeline).as_bytes())?),
    }
}

/// The columns of the CSV, JSON lines and Parquet exports, in order.
pub fn columns() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let time = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        time("time"),
        time("last_time"),
        Field::new("count", DataType::Int64, false),
        Field::new("stream", DataType::Utf8, false),
        text("actor"),
        text("action"),
        text("target"),
        text("namespace"),
        text("pod"),
        text("node"),
        text("src"),
        text("dst"),
        Field::new("bytes", DataType::Int64, true),
        Field::new("summary", DataType::Utf8, false),
        Field::new("relation", DataType::Utf8, false),
        text("alert_ids"),
        text("format"),
        Field::new("ref_table", DataType::Utf8, false),
        Field::new("ref_source", DataType::Utf8, false),
        Field::new("ref_offset", DataType::Int64, false),
    ]))
}

pub fn to_batch(lines: &[TimelineEvent]) -> Result<RecordBatch, ArrowError> {
    let text = |f: &dyn Fn(&TimelineEvent) -> Option<String>| -> ArrayRef {
        Arc::new(lines.iter().map(f).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&TimelineEvent) -> i64| -> ArrayRef {
        Arc::new(
            lines
                .iter()
                .map(|e| Some(f(e)))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let arrays: Vec<ArrayRef> = vec![
        time(&|e| e.time),
        time(&|e| e.last_time),
        Arc::new(lines.iter().map(|e| e.count as i64).collect::<Int64Array>()),
        text(&|e| Some(e.stream.name().to_owned())),
        text(&|e| e.actor.clone()),
        text(&|e| Some(e.action.clone())),
        text(&|e| e.target.clone()),
        text(&|e| e.namespace.clone()),
        text(&|e| e.pod.clone()),
        text(&|e| e.node.clone()),
        text(&|e| e.src()),
        text(&|e| e.dst()),
        Arc::new(lines.iter().map(|e| e.bytes).collect::<Int64Array>()),
        text(&|e| Some(e.summary())),
        text(&|e| Some(e.relation.clone())),
        text(&|e| (!e.alert_ids.is_empty()).then(|| e.alert_ids.join(" "))),
        text(&|e| Some(e.format.clone())),
        text(&|e| Some(e.evidence.table.name().to_owned())),
        text(&|e| Some(e.evidence.source.to_string())),
        Arc::new(
            lines
                .iter()
                .map(|e| e.evidence.offset)
                .collect::<Int64Array>(),
        ),
    ];
    RecordBatch::try_new(columns(), arrays)
}

/// For a terminal: a header saying what was followed and any notes, then one line per
/// event with its evidence reference.
fn write_text(t: &Timeline, out: &mut (dyn Write + Send)) -> Result<(), ArrowError> {
    writeln!(out, "Timeline of {}, {}", t.entity, t.window)?;
    for (i, f) in t.followed.iter().enumerate() {
        writeln!(
            out,
            "{} {f}",
            if i == 0 { "following:" } else { "          " }
        )?;
    }
    for n in &t.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(out)?;
    for e in &t.lines {
        let time = rfc3339(e.time);
        let time = time.get(..19).unwrap_or(&time).replace('T', " ");
        write!(out, "{time}  {:<7}  {}", e.stream.name(), e.summary())?;
        if !e.alert_ids.is_empty() {
            write!(out, "  [alerts: {}]", e.alert_ids.join(", "))?;
        }
        writeln!(out, "  <{}>", e.evidence)?;
    }
    writeln!(out, "\n{} lines", t.lines.len())?;
    Ok(())
}
