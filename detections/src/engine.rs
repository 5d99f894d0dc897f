//! Runs rules over a window of the lake and turns their rows into alerts: grouped by the
//! rule's entity, thresholded, one alert per entity per time bucket, each with a stable id
//! and the lake rows it stands on.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use futures::StreamExt;
use kubetrail_query::{LakeSession, Window};
use kubetrail_schemas::rows::Alert;
use kubetrail_schemas::Table;
use sha2::{Digest, Sha256};

use crate::rule::Rule;

/// Evidence rows kept per alert: enough to pivot, bounded so a noisy rule cannot bloat the
/// alerts table.
pub const MAX_EVIDENCE: usize = 20;

/// What one rule did in a run.
#[derive(Debug)]
pub struct RuleOutcome {
    pub rule_id: String,
    pub alerts: Vec<Alert>,
    pub matched_rows: usize,
    pub millis: u128,
    /// Why the rule could not run (its SQL failed, a column is missing): the other rules
    /// ran regardless.
    pub error: Option<String>,
}

/// The table rules read the image registry allow-list from, one `prefix` per row
/// (`registry.example.com/`, `docker.io/library/`). Empty when none is configured, and the
/// rules that need it stay quiet then.
pub const ALLOWED_REGISTRIES: &str = "allowed_registries";

/// Sets the registry allow-list the rules of this session see.
pub fn set_allowed_registries(session: &LakeSession, prefixes: &[String]) -> Result<(), String> {
    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![Field::new(
        "prefix",
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from_iter_values(prefixes))],
    )
    .map_err(|e| e.to_string())?;
    let table = datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]])
        .map_err(|e| e.to_string())?;
    let ctx = session.context();
    let _ = ctx.deregister_table(ALLOWED_REGISTRIES);
    ctx.register_table(ALLOWED_REGISTRIES, Arc::new(table))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs every rule over `session` (opened with [`LakeSession::open_window`] on `window`).
/// Outcomes come back in rule order, whatever order the rules finish in.
pub async fn run_rules(session: &LakeSession, rules: &[Rule], window: &Window) -> Vec<RuleOutcome> {
    if !session
        .context()
        .table_exist(ALLOWED_REGISTRIES)
        .unwrap_or(false)
    {
        // No allow-list configured: an empty one, so the rules that read it stay quiet.
        let _ = set_allowed_registries(session, &[]);
    }
    let detected_at = chrono::Utc::now().timestamp_micros();
    futures::stream::iter(rules)
        .map(|rule| run_rule(session, rule, window, detected_at))
        .buffered(rules_in_flight())
        .collect()
        .await
}

/// Rules run this many at a time, one per core up to four. A rule's query scans on every
/// core, but spends the rest of its time on one (planning, opening files, a join's build
/// side, its rows becoming alerts): with a second rule in flight the other core works.
/// Each rule's `millis` is then its time with company.
fn rules_in_flight() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

async fn run_rule(
    session: &LakeSession,
    rule: &Rule,
    window: &Window,
    detected_at: i64,
) -> RuleOutcome {
    let started = Instant::now();
    let result = match session.query(&rule.query).await {
        Ok(batches) => matches(rule, &batches),
        Err(e) => Err(one_line(&e.to_string())),
    };
    let (alerts, matched_rows, error) = match result {
        Ok(rows) => {
            let n = rows.len();
            (alerts(rule, rows, window, detected_at), n, None)
        }
        Err(e) => (Vec::new(), 0, Some(e)),
    };
    RuleOutcome {
        rule_id: rule.id.clone(),
        alerts,
        matched_rows,
        millis: started.elapsed().as_millis(),
        error,
    }
}

/// One matching row: when, about whom, and which lake row.
#[derive(Debug, Clone)]
struct Match {
    time: i64,
    entity: Vec<String>,
    evidence: String,
}

fn matches(rule: &Rule, batches: &[RecordBatch]) -> Result<Vec<Match>, String> {
    let table_in_query = single_table(&rule.query);
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| {
                format!("the query's result has no column '{name}' (a rule must select event_time, _source, _offset and its entity columns)")
            })
        };
        let time = cast(column("event_time")?, &DataType::Int64).map_err(|e| e.to_string())?;
        let time = time.as_primitive::<Int64Type>();
        let text = |name: &str| -> Result<arrow::array::StringArray, String> {
            let a = cast(column(name)?, &DataType::Utf8).map_err(|e| e.to_string())?;
            Ok(a.as_string::<i32>().clone())
        };
        let source = text("_source")?;
        let offset = cast(column("_offset")?, &DataType::Int64).map_err(|e| e.to_string())?;
        let offset = offset.as_primitive::<Int64Type>();
        let table = match batch.column_by_name("ref_table") {
            Some(_) => Some(text("ref_table")?),
            None => None,
        };
        if table.is_none() && table_in_query.is_none() {
            return Err("the query reads more than one table: select which each row comes from as ref_table".into());
        }
        let entity: Vec<arrow::array::StringArray> = rule
            .entity
            .iter()
            .map(|c| text(c))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            if time.is_null(row) {
                continue;
            }
            let value = |a: &arrow::array::StringArray| {
                if a.is_null(row) {
                    String::new()
                } else {
                    a.value(row).to_owned()
                }
            };
            let table = table.as_ref().map(value).unwrap_or_else(|| {
                table_in_query
                    .map(|t| t.name().to_owned())
                    .unwrap_or_default()
            });
            out.push(Match {
                time: time.value(row),
                entity: entity.iter().map(value).collect(),
                evidence: format!("{table}:{}#{}", value(&source), offset.value(row)),
            });
        }
    }
    Ok(out)
}

/// The event table a query reads, when it reads exactly one.
fn single_table(query: &str) -> Option<Table> {
    let lower = query.to_ascii_lowercase();
    let mut found = Table::EVENTS
        .into_iter()
        .filter(|t| lower.contains(t.name()));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

fn alerts(rule: &Rule, rows: Vec<Match>, window: &Window, detected_at: i64) -> Vec<Alert> {
    let mut by_entity: BTreeMap<Vec<String>, Vec<Match>> = BTreeMap::new();
    for m in rows {
        by_entity.entry(m.entity.clone()).or_default().push(m);
    }
    let bucket_len = i64::try_from(rule.suppress.as_micros())
        .unwrap_or(i64::MAX)
        .max(1);
    let mut out = Vec::new();
    for (entity, mut rows) in by_entity {
        rows.sort_by_key(|m| m.time);
        // One alert per bucket: the matches in it, if they reach the threshold.
        let mut buckets: BTreeMap<i64, Vec<&Match>> = BTreeMap::new();
        for m in &rows {
            buckets
                .entry(m.time.div_euclid(bucket_len))
                .or_default()
                .push(m);
        }
        for (bucket, in_bucket) in buckets {
            if let Some(t) = rule.threshold {
                let span = i64::try_from(t.window.as_micros()).unwrap_or(i64::MAX);
                if !reaches(&in_bucket, t.count as usize, span) {
                    continue;
                }
            }
            let first = in_bucket.first().expect("a bucket has a match").time;
            let last = in_bucket.last().expect("a bucket has a match").time;
            let label = rule
                .entity
                .iter()
                .zip(&entity)
                .map(|(c, v)| format!("{c}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let count = in_bucket.len() as i64;
            out.push(Alert {
                event_time: first,
                alert_id: alert_id(&rule.id, &entity, bucket * bucket_len),
                rule_id: rule.id.clone(),
                title: rule.title.clone(),
                severity: rule.severity.name().to_owned(),
                mitre: rule.mitre.clone(),
                tags: rule.tags.clone(),
                entity: label.clone(),
                entity_values: entity.clone(),
                first_seen: first,
                last_seen: last,
                event_count: count,
                summary: format!(
                    "{}: {label} ({count} event{})",
                    rule.title,
                    if count == 1 { "" } else { "s" }
                ),
                evidence: in_bucket
                    .iter()
                    .take(MAX_EVIDENCE)
                    .map(|m| m.evidence.clone())
                    .collect(),
                window_start: window.from(),
                window_end: window.to(),
                detected_at,
            });
        }
    }
    out
}

/// Whether `count` of the (time-sorted) matches fall within `span` of each other.
fn reaches(rows: &[&Match], count: usize, span: i64) -> bool {
    if rows.len() < count {
        return false;
    }
    let mut start = 0;
    for end in 0..rows.len() {
        while rows[end].time - rows[start].time > span {
            start += 1;
        }
        if end + 1 - start >= count {
            return true;
        }
    }
    false
}

/// Stable: the same rule, entity and bucket give the same id on every run.
pub fn alert_id(rule_id: &str, entity: &[String], bucket_start: i64) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    for v in entity {
        h.update([0u8]);
        h.update(v.as_bytes());
    }
    h.update([0u8]);
    h.update(bucket_start.to_be_bytes());
    let digest = hex::encode(h.finalize());
    format!("kt-{}", &digest[..20])
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(time: i64) -> Match {
        Match {
            time,
            entity: vec![],
            evidence: String::new(),
        }
    }

    #[test]
    fn thresholds_count_within_a_sliding_span_and_ids_are_stable() {
        let rows = [m(0), m(50), m(100), m(400)];
        let refs: Vec<&Match> = rows.iter().collect();
        assert!(reaches(&refs, 3, 100));
        assert!(!reaches(&refs, 3, 99));
        assert!(!reaches(&refs, 5, 1000));
        let a = alert_id("r", &["alice".into()], 0);
        assert_eq!(a, alert_id("r", &["alice".into()], 0));
        assert_ne!(a, alert_id("r", &["alice".into()], 3600));
        assert_ne!(a, alert_id("r", &["bob".into()], 0));
        assert!(a.starts_with("kt-") && a.len() == 23);
        assert_eq!(
            single_table("SELECT * FROM k8s_audit"),
            Some(Table::K8sAudit)
        );
        assert_eq!(
            single_table("SELECT * FROM k8s_audit JOIN runtime_events"),
            None
        );
    }
}
