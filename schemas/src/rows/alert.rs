//! `alerts`: what detections found. Written by the detection engine, read by responders
//! and by timelines (an alert's evidence marks the timeline lines it stands on).

use arrow::datatypes::{DataType, Field};

use super::columns::table_columns;
use crate::table::{int, text, text_list, ts, Table, PARTITION_COLUMN, TIME_COLUMN};

/// One alert: a rule matched an entity in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The first matching event's time (µs, UTC): alerts sort and partition by it.
    pub event_time: i64,
    /// Stable across runs: derived from the rule, the entity and the time bucket, so a
    /// second run over the same window adds nothing.
    pub alert_id: String,
    pub rule_id: String,
    pub title: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// ATT&CK technique ids.
    pub mitre: Vec<String>,
    pub tags: Vec<String>,
    /// The entity as `column=value` pairs, e.g. `user_name=alice namespace=shop`.
    pub entity: String,
    pub entity_values: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub event_count: i64,
    /// One line for a person.
    pub summary: String,
    /// The lake rows it stands on, as `table:source#offset` (at most a bounded number).
    pub evidence: Vec<String>,
    pub window_start: i64,
    pub window_end: i64,
    pub detected_at: i64,
}

table_columns!(
    /// `alerts` being built from [`Alert`]s.
    AlertColumns of Table::Alerts, from Alert {
        TimeColumn: [event_time, first_seen, last_seen, window_start, window_end, detected_at],
        TextColumn: [alert_id, rule_id, title, severity, entity, summary],
        TextListColumn: [mitre, tags, entity_values, evidence],
        Int64Column: [event_count],
    }
);

pub(crate) fn fields() -> Vec<Field> {
    vec![
        Field::new(TIME_COLUMN, crate::table::timestamp_type(), false),
        Field::new(PARTITION_COLUMN, DataType::Date32, false),
        text("alert_id"),
        text("rule_id"),
        text("title"),
        text("severity"),
        text_list("mitre"),
        text_list("tags"),
        text("entity"),
        text_list("entity_values"),
        ts("first_seen"),
        ts("last_seen"),
        int("event_count"),
        text("summary"),
        text_list("evidence"),
        ts("window_start"),
        ts("window_end"),
        ts("detected_at"),
    ]
}
