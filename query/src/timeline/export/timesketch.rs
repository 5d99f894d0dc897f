//! Timesketch's CSV import format: `message`, `datetime` (ISO 8601), `timestamp_desc` and
//! `timestamp` (µs since the epoch), then any attributes, which Timesketch indexes as
//! fields. A collapsed line keeps its first time; its count and last time are attributes.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;

use super::super::event::{Stream, TimelineEvent};
use super::super::Timeline;
use crate::window::rfc3339;

pub fn write(t: &Timeline, out: &mut (dyn Write + Send)) -> Result<(), ArrowError> {
    let lines = &t.lines;
    let text = |f: &dyn Fn(&TimelineEvent) -> Option<String>| -> ArrayRef {
        Arc::new(lines.iter().map(f).collect::<StringArray>())
    };
    let int = |f: &dyn Fn(&TimelineEvent) -> Option<i64>| -> ArrayRef {
        Arc::new(lines.iter().map(f).collect::<Int64Array>())
    };
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    let mut add = |name: &str, data_type: DataType, column: ArrayRef| {
        fields.push(Field::new(name, data_type, true));
        columns.push(column);
    };
    add("message", DataType::Utf8, text(&|e| Some(e.summary())));
    add("datetime", DataType::Utf8, text(&|e| Some(iso(e.time))));
    add(
        "timestamp_desc",
        DataType::Utf8,
        text(&|e| Some(description(e.stream).to_owned())),
    );
    add("timestamp", DataType::Int64, int(&|e| Some(e.time)));
    add(
        "stream",
        DataType::Utf8,
        text(&|e| Some(e.stream.name().into())),
    );
    add("actor", DataType::Utf8, text(&|e| e.actor.clone()));
    add("action", DataType::Utf8, text(&|e| Some(e.action.clone())));
    add("target", DataType::Utf8, text(&|e| e.target.clone()));
    add("namespace", DataType::Utf8, text(&|e| e.namespace.clone()));
    add("pod", DataType::Utf8, text(&|e| e.pod.clone()));
    add("node", DataType::Utf8, text(&|e| e.node.clone()));
    add("src", DataType::Utf8, text(&|e| e.src()));
    add("dst", DataType::Utf8, text(&|e| e.dst()));
    add("bytes", DataType::Int64, int(&|e| e.bytes));
    add("count", DataType::Int64, int(&|e| Some(e.count as i64)));
    add(
        "last_datetime",
        DataType::Utf8,
        text(&|e| Some(iso(e.last_time))),
    );
    add(
        "relation",
        DataType::Utf8,
        text(&|e| Some(e.relation.clone())),
    );
    add(
        "alert_ids",
        DataType::Utf8,
        text(&|e| (!e.alert_ids.is_empty()).then(|| e.alert_ids.join(" "))),
    );
    add(
        "source_format",
        DataType::Utf8,
        text(&|e| Some(e.format.clone())),
    );
    add(
        "evidence",
        DataType::Utf8,
        text(&|e| Some(e.evidence.to_string())),
    );
    add(
        "tag",
        DataType::Utf8,
        text(&|e| Some(format!("kubetrail,{}", e.stream.name()))),
    );
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    writer.write(&batch)
}

/// Timesketch parses `2026-11-20T09:30:02.123456+00:00`.
fn iso(t: i64) -> String {
    let s = rfc3339(t);
    match s.strip_suffix('Z') {
        Some(base) => format!("{base}+00:00"),
        None => s,
    }
}

fn description(stream: Stream) -> &'static str {
    match stream {
        Stream::Audit => "API Request",
        Stream::Network => "Flow Observed",
        Stream::Runtime => "Runtime Event",
    }
}
