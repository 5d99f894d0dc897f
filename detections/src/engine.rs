//! Runs rules over a window of the lake and turns their rows into alerts: grouped by the
//! rule's entity, thresholded, one alert per fact (updated while the entity keeps matching)
//! or per entity per time bucket ([`Grouping`]), each with a stable id and the lake rows it
//! stands on.

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
use crate::watchlists::Watchlists;

/// Evidence rows kept per alert: enough to pivot, bounded so a noisy rule cannot bloat the
/// alerts table.
pub const MAX_EVIDENCE: usize = 20;

/// What one rule did in a run.
#[derive(Debug)]
pub struct RuleOutcome {
    pub rule_id: String,
    /// Alerts raised by this run.
    pub alerts: Vec<Alert>,
    /// Alerts already in the table whose entity kept matching, as they read now (later last
    /// seen, higher count, more evidence): [`Grouping::Update`] only.
    pub updates: Vec<Alert>,
    /// Alerts already in the table that this run's matches fall within, unchanged (a rerun
    /// over a window finds what it found before): [`Grouping::Update`] only.
    pub known: Vec<Alert>,
    pub matched_rows: usize,
    pub millis: u128,
    /// Why the rule could not run (its SQL failed, a column is missing): the other rules
    /// ran regardless.
    pub error: Option<String>,
}

/// How one entity's repeated matches become alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    /// One alert per fact: while the entity keeps matching with no pause longer than the
    /// rule's `suppress`, its alert (in the table, or raised earlier in the run) is updated:
    /// last seen, count, evidence. A pause longer than that ends the fact.
    #[default]
    Update,
    /// One alert per entity per `suppress`-long time bucket, never updated.
    Bucket,
}

impl std::str::FromStr for Grouping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "update" => Ok(Grouping::Update),
            "bucket" => Ok(Grouping::Bucket),
            other => Err(format!(
                "alert grouping '{other}' must be update (one alert per fact, updated) or bucket (one per entity per suppress bucket)"
            )),
        }
    }
}

/// Runs every rule over `session` (opened with [`LakeSession::open_window`] on `window`),
/// judging with `watchlists`. Outcomes come back in rule order, whatever order the rules
/// finish in.
pub async fn run_rules(
    session: &LakeSession,
    rules: &[Rule],
    window: &Window,
    watchlists: &Watchlists,
    grouping: Grouping,
) -> Vec<RuleOutcome> {
    watchlists.register(session);
    let detected_at = chrono::Utc::now().timestamp_micros();
    let open = match grouping {
        Grouping::Update => match open_alerts(session, rules, window).await {
            Ok(open) => open,
            Err(e) => {
                // Without the open alerts every rule would raise again what the table
                // holds: no rule runs, each says why.
                return rules
                    .iter()
                    .map(|r| RuleOutcome {
                        rule_id: r.id.clone(),
                        alerts: Vec::new(),
                        updates: Vec::new(),
                        known: Vec::new(),
                        matched_rows: 0,
                        millis: 0,
                        error: Some(format!("reading the open alerts: {e}")),
                    })
                    .collect();
            }
        },
        Grouping::Bucket => BTreeMap::new(),
    };
    let empty = Vec::new();
    futures::stream::iter(rules)
        .map(|rule| {
            let open = match grouping {
                Grouping::Update => Some(open.get(&rule.id).unwrap_or(&empty)),
                Grouping::Bucket => None,
            };
            run_rule(session, rule, window, detected_at, open)
        })
        .buffered(rules_in_flight())
        .collect()
        .await
}

/// The alerts a run may update, by rule: those whose last match is within the rule's
/// `suppress` of the window's start or later.
async fn open_alerts(
    session: &LakeSession,
    rules: &[Rule],
    window: &Window,
) -> Result<BTreeMap<String, Vec<Alert>>, String> {
    let longest = rules.iter().map(|r| micros(r.suppress)).max().unwrap_or(0);
    let since = window.from().saturating_sub(longest);
    let sql = format!("SELECT * FROM alerts WHERE CAST(last_seen AS BIGINT) >= {since}");
    let batches = session
        .query(&sql)
        .await
        .map_err(|e| one_line(&e.to_string()))?;
    let mut by_rule: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for alert in crate::alerts::alerts_from_batches(&batches)? {
        by_rule
            .entry(alert.rule_id.clone())
            .or_default()
            .push(alert);
    }
    Ok(by_rule)
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
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
    open: Option<&Vec<Alert>>,
) -> RuleOutcome {
    let started = Instant::now();
    let result = match session.query(&rule.query).await {
        Ok(batches) => matches(rule, &batches),
        Err(e) => Err(one_line(&e.to_string())),
    };
    let raising = Raising {
        rule,
        window,
        detected_at,
    };
    let (raised, matched_rows, error) = match result {
        Ok(rows) => {
            let n = rows.len();
            let raised = match open {
                Some(open) => raising.updating(rows, open),
                None => Raised {
                    new: raising.bucketed(rows),
                    ..Raised::default()
                },
            };
            (raised, n, None)
        }
        Err(e) => (Raised::default(), 0, Some(e)),
    };
    RuleOutcome {
        rule_id: rule.id.clone(),
        alerts: raised.new,
        updates: raised.updated,
        known: raised.known,
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

/// What one rule's matches make: see [`RuleOutcome`].
#[derive(Default)]
struct Raised {
    new: Vec<Alert>,
    updated: Vec<Alert>,
    known: Vec<Alert>,
}

/// Alerts of the table a run's matches touch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Touched {
    Not,
    Covered,
    Extended,
}

/// Turns one rule's matches into alerts.
struct Raising<'a> {
    rule: &'a Rule,
    window: &'a Window,
    detected_at: i64,
}

impl Raising<'_> {
    /// [`Grouping::Bucket`]: one alert per entity per bucket that reaches the threshold.
    fn bucketed(&self, rows: Vec<Match>) -> Vec<Alert> {
        let bucket_len = micros(self.rule.suppress).max(1);
        let mut out = Vec::new();
        for (entity, rows) in by_entity(rows) {
            let mut buckets: BTreeMap<i64, Vec<&Match>> = BTreeMap::new();
            for m in &rows {
                buckets
                    .entry(m.time.div_euclid(bucket_len))
                    .or_default()
                    .push(m);
            }
            for (bucket, in_bucket) in buckets {
                if self.reaches_threshold(&in_bucket) {
                    out.push(self.alert(&entity, bucket * bucket_len, &in_bucket));
                }
            }
        }
        out
    }

    /// [`Grouping::Update`]: a match already within an open alert's span is that alert's
    /// (a rerun or an overlapping window adds nothing); a match within `suppress` after an
    /// alert's last one extends it; the rest start facts of their own, raised when they
    /// reach the threshold.
    fn updating(&self, rows: Vec<Match>, open: &[Alert]) -> Raised {
        let gap = micros(self.rule.suppress);
        let mut raised = Raised::default();
        for (entity, rows) in by_entity(rows) {
            let mut known: Vec<(Alert, Touched)> = open
                .iter()
                .filter(|a| a.entity_values == entity)
                .map(|a| (a.clone(), Touched::Not))
                .collect();
            let mut facts: Vec<Vec<&Match>> = Vec::new();
            for m in &rows {
                let covering = known.iter_mut().find(|(a, _)| {
                    a.first_seen.saturating_sub(gap) <= m.time && m.time <= a.last_seen
                });
                if let Some((_, touched)) = covering {
                    if *touched == Touched::Not {
                        *touched = Touched::Covered;
                    }
                    continue;
                }
                let extended = known
                    .iter_mut()
                    .filter(|(a, _)| m.time > a.last_seen && m.time - a.last_seen <= gap)
                    .max_by_key(|(a, _)| a.last_seen);
                if let Some((alert, touched)) = extended {
                    self.extend(alert, m);
                    *touched = Touched::Extended;
                    continue;
                }
                match facts.last_mut() {
                    Some(fact) if fact.last().is_some_and(|l| m.time - l.time <= gap) => {
                        fact.push(m)
                    }
                    _ => facts.push(vec![m]),
                }
            }
            for (alert, touched) in known {
                match touched {
                    Touched::Extended => raised.updated.push(alert),
                    Touched::Covered => raised.known.push(alert),
                    Touched::Not => {}
                }
            }
            for fact in facts {
                if self.reaches_threshold(&fact) {
                    raised.new.push(self.alert(&entity, fact[0].time, &fact));
                }
            }
        }
        raised
    }

    fn reaches_threshold(&self, rows: &[&Match]) -> bool {
        match self.rule.threshold {
            Some(t) => reaches(rows, t.count as usize, micros(t.window)),
            None => true,
        }
    }

    /// A new alert over time-sorted `rows`; `start` (its bucket's, or its first match's
    /// time) goes into its id.
    fn alert(&self, entity: &[String], start: i64, rows: &[&Match]) -> Alert {
        let rule = self.rule;
        let first = rows.first().map_or(start, |m| m.time);
        let last = rows.last().map_or(start, |m| m.time);
        let label = rule
            .entity
            .iter()
            .zip(entity)
            .map(|(c, v)| format!("{c}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let count = rows.len() as i64;
        Alert {
            event_time: first,
            alert_id: alert_id(&rule.id, entity, start),
            rule_id: rule.id.clone(),
            title: rule.title.clone(),
            severity: rule.severity.name().to_owned(),
            mitre: rule.mitre.clone(),
            tags: rule.tags.clone(),
            summary: summary(&rule.title, &label, count),
            entity: label,
            entity_values: entity.to_vec(),
            first_seen: first,
            last_seen: last,
            event_count: count,
            evidence: rows
                .iter()
                .take(MAX_EVIDENCE)
                .map(|m| m.evidence.clone())
                .collect(),
            window_start: self.window.from(),
            window_end: self.window.to(),
            detected_at: self.detected_at,
        }
    }

    /// One more match of an open alert: a later last seen, one more event, its row in the
    /// evidence (how it started and how it goes on are kept when there are too many).
    fn extend(&self, alert: &mut Alert, m: &Match) {
        alert.last_seen = m.time;
        alert.event_count += 1;
        alert.summary = summary(&self.rule.title, &alert.entity, alert.event_count);
        if !alert.evidence.contains(&m.evidence) {
            alert.evidence.push(m.evidence.clone());
            if alert.evidence.len() > MAX_EVIDENCE {
                alert.evidence.remove(MAX_EVIDENCE / 2);
            }
        }
        alert.window_end = self.window.to();
    }
}

fn summary(title: &str, label: &str, count: i64) -> String {
    format!(
        "{title}: {label} ({count} event{})",
        if count == 1 { "" } else { "s" }
    )
}

/// Matches by entity, each entity's sorted by time.
fn by_entity(rows: Vec<Match>) -> BTreeMap<Vec<String>, Vec<Match>> {
    let mut by_entity: BTreeMap<Vec<String>, Vec<Match>> = BTreeMap::new();
    for m in rows {
        by_entity.entry(m.entity.clone()).or_default().push(m);
    }
    for rows in by_entity.values_mut() {
        rows.sort_by_key(|m| m.time);
    }
    by_entity
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

/// Stable: the same rule, entity and start (a bucket's, or a fact's first match) give the
/// same id on every run.
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
