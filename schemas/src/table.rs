//! The lake's tables: the one place that knows their names and Arrow schemas.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::rows::{alert, audit, dead_letter, flow, query_log, runtime};

/// Column every table is partitioned by (UTC day of `event_time`).
pub const PARTITION_COLUMN: &str = "event_date";
/// Column every event table is sorted by within a file.
pub const TIME_COLUMN: &str = "event_time";
/// Provenance column: the Kafka offset or line number of a row's record.
pub const OFFSET_COLUMN: &str = "_offset";
/// Provenance column: the file or Kafka partition a row's record came from.
pub const SOURCE_COLUMN: &str = "_source";

/// A Delta table in the lake: the four ingestion writes, `alerts`, which detections write,
/// and `query_log`, each query against the lake. The one place that knows the table list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    K8sAudit,
    NetworkFlows,
    RuntimeEvents,
    DeadLetters,
    Alerts,
    QueryLog,
}

impl Table {
    /// Every table of the lake, in a stable order.
    pub const ALL: [Table; 6] = [
        Table::K8sAudit,
        Table::NetworkFlows,
        Table::RuntimeEvents,
        Table::DeadLetters,
        Table::Alerts,
        Table::QueryLog,
    ];

    /// Every table ingestion writes.
    pub const INGESTED: [Table; 4] = [
        Table::K8sAudit,
        Table::NetworkFlows,
        Table::RuntimeEvents,
        Table::DeadLetters,
    ];

    /// The three event families (what the `events` view unions).
    pub const EVENTS: [Table; 3] = [Table::K8sAudit, Table::NetworkFlows, Table::RuntimeEvents];

    pub fn name(self) -> &'static str {
        match self {
            Table::K8sAudit => "k8s_audit",
            Table::NetworkFlows => "network_flows",
            Table::RuntimeEvents => "runtime_events",
            Table::DeadLetters => "dead_letters",
            Table::Alerts => "alerts",
            Table::QueryLog => "query_log",
        }
    }

    /// The full schema of the table as stored in the lake: the family's columns followed by
    /// the provenance columns.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<[SchemaRef; 6]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            Table::ALL.map(|t| {
                let mut fields = match t {
                    Table::K8sAudit => audit::fields(),
                    Table::NetworkFlows => flow::fields(),
                    Table::RuntimeEvents => runtime::fields(),
                    Table::DeadLetters => dead_letter::fields(),
                    Table::Alerts => alert::fields(),
                    Table::QueryLog => query_log::fields(),
                };
                fields.extend(provenance_fields());
                Arc::new(Schema::new(fields))
            })
        });
        all[self as usize].clone()
    }

    /// The columns looked up by exact value: who, what, where (a rule's `resource =
    /// 'validatingwebhookconfigurations'`, a timeline's `user_name IN (…)`, a responder's
    /// `dns_query = …`). The lake writes a bloom filter of each, so that a reader skips the
    /// row groups that cannot hold the value; free text and documents get none (their
    /// values are unique, and nobody looks them up whole), nor do columns of a handful of
    /// values that every row group holds (`decision`, `api_group`: a filter there skips
    /// nothing and costs a hash of every value written) or one value per file (`cluster`,
    /// which its minimum and maximum prune).
    pub fn lookup_columns(self) -> Vec<&'static str> {
        let (shared, own): (&[&str], &[&str]) = match self {
            Table::K8sAudit => (
                &SHARED_LOOKUPS[..4],
                &[
                    "verb",
                    "user_name",
                    "impersonated_user",
                    "resource",
                    "subresource",
                    "name",
                    "pod_ip",
                ],
            ),
            Table::NetworkFlows => (
                &SHARED_LOOKUPS,
                &[
                    "src_namespace",
                    "src_pod",
                    "dst_namespace",
                    "dst_pod",
                    "verdict",
                    "dns_query",
                ],
            ),
            Table::RuntimeEvents => (
                &SHARED_LOOKUPS,
                &[
                    "event_type",
                    "binary",
                    "container_id",
                    "image",
                    "rule",
                    "user_name",
                ],
            ),
            Table::DeadLetters => (&[], &[]),
            Table::Alerts => (&[], &["alert_id", "rule_id"]),
            Table::QueryLog => (&[], &["user_name"]),
        };
        shared.iter().chain(own).copied().collect()
    }

    /// The columns that hold a whole JSON document or an id of one event: a dictionary of
    /// their values only overflows (after hashing each value until it does). The lake
    /// writes them plain.
    pub fn unique_columns(self) -> &'static [&'static str] {
        match self {
            Table::K8sAudit => &["audit_id", "request_object", "response_object"],
            Table::NetworkFlows => &["extra"],
            Table::RuntimeEvents => &["output_fields"],
            Table::DeadLetters => &["raw"],
            Table::Alerts => &[],
            Table::QueryLog => &["sql"],
        }
    }

    /// Whether the lake keeps a column's statistics (minimum, maximum and null count per
    /// page and row group). Numbers and times keep them: queries filter them by range.
    /// Text keeps them where a value is looked up ([`Table::lookup_columns`]: pages by
    /// range, a rare value's null count) and where a file tends to hold one value
    /// ([`RANGED_TEXT_COLUMNS`]: cluster, source, format). Anywhere else a day of rows
    /// sorted by time spans every value: the statistics pruned nothing, and computing
    /// them compared every value as it was written (4 % of ingest's instructions).
    pub fn keeps_statistics(self, column: &str) -> bool {
        let text = self.schema().field_with_name(column).is_ok_and(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Binary | DataType::List(_)
            )
        });
        !text || RANGED_TEXT_COLUMNS.contains(&column) || self.lookup_columns().contains(&column)
    }

    /// The columns decoders fill (everything but provenance).
    pub fn event_schema(self) -> SchemaRef {
        let full = self.schema();
        let n = full.fields().len() - provenance_fields().len();
        Arc::new(Schema::new(full.fields()[..n].to_vec()))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown table '{s}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Timestamp type of every time column. Microseconds, not nanoseconds: the Delta protocol's
/// `timestamp` type is microseconds, and a nanosecond column needs a non-standard table feature
/// that Spark, Trino and DuckDB cannot read (see docs/decisions.md).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(crate) fn ts(name: &str) -> Field {
    Field::new(name, timestamp_type(), true)
}

pub(crate) fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

pub(crate) fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

pub(crate) fn int32(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

pub(crate) fn boolean(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

pub(crate) fn text_list(name: &str) -> Field {
    Field::new_list(name, Field::new("element", DataType::Utf8, true), true)
}

/// The columns of [`shared_fields`] looked up by value; the destination last, so that the
/// tables without one take the first four.
const SHARED_LOOKUPS: [&str; 5] = ["namespace", "pod", "node", "src_ip", "dst_ip"];

/// Text columns whose minimum and maximum prune whole files: a lake's files often come
/// from one cluster, and each from one input in one format (a timeline's
/// `runtime_format = 'tetragon'` skips the Falco files by them).
const RANGED_TEXT_COLUMNS: [&str; 5] = [
    "cluster",
    "_source",
    "audit_format",
    "flow_format",
    "runtime_format",
];

/// The columns every event table starts with, so joins and timelines across streams are
/// direct: time, day, cluster, namespace, pod, node, source address, and for the streams
/// that have one, the destination and ports.
pub(crate) fn shared_fields(with_destination: bool) -> Vec<Field> {
    let mut fields = vec![
        Field::new(TIME_COLUMN, timestamp_type(), false),
        Field::new(PARTITION_COLUMN, DataType::Date32, false),
        text("cluster"),
        text("namespace"),
        text("pod"),
        text("node"),
        text("src_ip"),
    ];
    if with_destination {
        fields.extend([
            text("dst_ip"),
            int32("src_port"),
            int32("dst_port"),
            text("protocol"),
        ]);
    }
    fields
}

/// Where a row came from: `kafka:<topic>/<partition>` or `file:<path>`, the Kafka offset or
/// line number, and when it was ingested.
pub fn provenance_fields() -> Vec<Field> {
    vec![
        Field::new("_source", DataType::Utf8, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
        Field::new("_ingested_at", timestamp_type(), false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_schemas_end_with_provenance() {
        for t in Table::ALL {
            assert_eq!(t.name().parse::<Table>().unwrap(), t);
            let s = t.schema();
            let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(
                &names[names.len() - 3..],
                &["_source", "_offset", "_ingested_at"]
            );
            assert!(names.contains(&PARTITION_COLUMN), "{t} lacks event_date");
            assert_eq!(t.event_schema().fields().len() + 3, s.fields().len());
        }
        assert!("nope".parse::<Table>().unwrap_err().contains("k8s_audit"));
    }

    /// The type of a named column of a table's schema; a missing one fails the test.
    fn type_of(t: Table, name: &str) -> DataType {
        let schema = t.schema();
        let field = schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("{t} has no column {name}"));
        field.data_type().clone()
    }

    #[test]
    fn lookup_columns_are_text_columns_of_their_table() {
        for t in Table::ALL {
            for name in t.lookup_columns() {
                assert_eq!(type_of(t, name), DataType::Utf8, "{t}.{name}");
            }
        }
        assert!(Table::K8sAudit.lookup_columns().contains(&"resource"));
        assert!(!Table::K8sAudit.lookup_columns().contains(&"request_object"));
    }

    #[test]
    fn unique_columns_are_columns_of_their_table_and_never_looked_up() {
        for t in Table::ALL {
            for name in t.unique_columns() {
                let kind = type_of(t, name);
                assert!(
                    matches!(kind, DataType::Utf8 | DataType::Binary),
                    "{t}.{name}"
                );
                assert!(!t.lookup_columns().contains(name), "{t}.{name}");
            }
        }
    }

    #[test]
    fn text_keeps_statistics_only_where_they_prune() {
        let audit = Table::K8sAudit;
        for kept in [
            "event_time",
            "response_code",
            "_offset",
            "cluster",
            "_source",
            "audit_format",
            "resource",
            "user_name",
        ] {
            assert!(audit.keeps_statistics(kept), "{kept}");
        }
        for dropped in [
            "stage",
            "decision",
            "user_agent",
            "request_object",
            "user_groups",
        ] {
            assert!(!audit.keeps_statistics(dropped), "{dropped}");
        }
        for t in Table::ALL {
            for name in t.lookup_columns() {
                assert!(t.keeps_statistics(name), "{t}.{name}");
            }
        }
    }
}
