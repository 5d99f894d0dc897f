//! A detection rule as written in `detections/rules/<area>/<id>.yaml`, checked on load so
//! that a rule that loads can run: every field has a type, every reference a target.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use kubetrail_query::window::parse_duration;
use kubetrail_schemas::SourceFormat;
use serde::Deserialize;

use crate::watchlists::Watchlists;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Result<Severity, String> {
        Ok(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(format!(
                    "'{other}' is not a severity (info, low, medium, high, critical)"
                ))
            }
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `count` matching events of one entity within `window` make one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u64,
    pub window: Duration,
}

/// An inline test: events in their native format, and what the rule must make of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTest {
    pub name: String,
    /// Events as they arrive, one input per format (`None`: recognised from the content,
    /// as ingestion does). Correlation rules take several streams.
    pub inputs: Vec<(Option<SourceFormat>, String)>,
    pub expect_alerts: usize,
    /// Each alert's entity values, in the rule's entity column order, if given.
    pub expect_entities: Option<Vec<Vec<String>>>,
    /// Where the run's window starts; events before it are history (for baselines). By
    /// default every event is in the window.
    pub window_from: Option<i64>,
    /// The lists the run judges with: the shipped indicators, and the test's own
    /// registries, deployers and indicators.
    pub watchlists: Watchlists,
}

/// A rule that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub area: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub mitre: Vec<String>,
    pub tags: Vec<String>,
    /// Where the rule is known to fire on legitimate activity, for the responder.
    pub false_positives: Vec<String>,
    /// Write-ups of the technique or of the rule, for the responder.
    pub references: Vec<String>,
    /// The rule this one was translated from, when it was (`detect import-sigma`).
    pub imported_from: Option<ImportedFrom>,
    pub query: String,
    /// The columns of the query's result that say who or what the alert is about.
    pub entity: Vec<String>,
    pub threshold: Option<Threshold>,
    /// One alert per entity per this long (the alert id's time bucket).
    pub suppress: Duration,
    pub tests: Vec<RuleTest>,
}

/// The rule of another format a rule was translated from: a translated rule has no inline
/// tests of its own (the format has none), and keeps the original's id to be traced back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedFrom {
    /// `sigma`.
    pub format: String,
    /// The original rule's own id (a Sigma rule's UUID).
    pub id: Option<String>,
    /// The file it was read from.
    pub file: String,
}

/// Default dedup window: one alert per entity per hour.
pub const DEFAULT_SUPPRESS: Duration = Duration::from_secs(3600);

/// A rule file that did not load: which file, which field, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub file: String,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.reason)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    title: String,
    description: String,
    severity: String,
    #[serde(default)]
    mitre: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    false_positives: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
    imported_from: Option<ImportedFrom>,
    query: String,
    entity: Vec<String>,
    threshold: Option<ThresholdFile>,
    suppress: Option<String>,
    #[serde(default)]
    tests: Vec<TestFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdFile {
    count: u64,
    window: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    name: String,
    format: Option<String>,
    events: Option<String>,
    inputs: Option<Vec<InputFile>>,
    expect: ExpectFile,
    window_from: Option<String>,
    #[serde(default)]
    allowed_registries: Vec<String>,
    #[serde(default)]
    deployers: Vec<String>,
    /// Indicator lines, as an indicator file holds them (`address 203.0.113.9`).
    #[serde(default)]
    indicators: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFile {
    format: Option<String>,
    events: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    alerts: usize,
    entities: Option<Vec<Vec<String>>>,
}

impl Rule {
    /// Parses and checks one rule file. `area` is its folder under the rules directory.
    pub fn parse(path: &Path, area: &str, text: &str) -> Result<Rule, RuleProblem> {
        let file = path.display().to_string();
        let problem = |field: &str, reason: String| RuleProblem {
            file: file.clone(),
            field: field.to_owned(),
            reason,
        };
        let raw: RuleFile = serde_saphyr::from_str(text).map_err(|e| {
            // The parser's message says where; keep its first line, the one that says what.
            let message = e.to_string();
            let first = message
                .lines()
                .next()
                .unwrap_or("not YAML")
                .trim()
                .to_owned();
            problem("(file)", first)
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if !is_id(&raw.id) {
            return Err(problem(
                "id",
                format!("'{}' must be lower-case letters, digits and '-'", raw.id),
            ));
        }
        if raw.id != stem {
            return Err(problem(
                "id",
                format!("'{}' must match the file name ({stem}.yaml)", raw.id),
            ));
        }
        for (field, value) in [("title", &raw.title), ("description", &raw.description)] {
            if value.trim().is_empty() {
                return Err(problem(field, "must not be empty".into()));
            }
        }
        let severity = Severity::parse(&raw.severity).map_err(|e| problem("severity", e))?;
        for t in &raw.mitre {
            if !is_technique(t) {
                return Err(problem(
                    "mitre",
                    format!("'{t}' is not an ATT&CK technique id like T1609 or T1552.007"),
                ));
            }
        }
        let query = raw.query.trim().to_owned();
        let head = query
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if head != "SELECT" && head != "WITH" {
            return Err(problem(
                "query",
                "must be one SELECT (or WITH … SELECT) statement".into(),
            ));
        }
        if query.trim_end_matches(';').contains(';') {
            return Err(problem("query", "must be a single statement".into()));
        }
        if raw.entity.is_empty() {
            return Err(problem(
                "entity",
                "name at least one column of the query's result".into(),
            ));
        }
        let threshold = match raw.threshold {
            Some(t) if t.count < 2 => {
                return Err(problem(
                    "threshold.count",
                    "must be at least 2 (leave threshold out to alert on every match)".into(),
                ))
            }
            Some(t) => Some(Threshold {
                count: t.count,
                window: nonzero(parse_duration(&t.window))
                    .map_err(|e| problem("threshold.window", e))?,
            }),
            None => None,
        };
        let suppress = match raw.suppress {
            Some(s) => nonzero(parse_duration(&s)).map_err(|e| problem("suppress", e))?,
            None => DEFAULT_SUPPRESS,
        };
        let mut tests = Vec::new();
        for (i, t) in raw.tests.into_iter().enumerate() {
            let field = |f: &str| format!("tests[{i}].{f}");
            let format_of = |f: Option<&str>, at: &str| match f {
                None | Some("auto") => Ok(None),
                Some(f) => f
                    .parse::<SourceFormat>()
                    .map(Some)
                    .map_err(|e| problem(&field(at), e.to_string())),
            };
            let inputs = match (t.events, t.inputs) {
                (Some(events), None) => vec![(format_of(t.format.as_deref(), "format")?, events)],
                (None, Some(inputs)) if t.format.is_none() => {
                    let mut out = Vec::new();
                    for (j, input) in inputs.into_iter().enumerate() {
                        let at = format!("inputs[{j}].format");
                        out.push((format_of(input.format.as_deref(), &at)?, input.events));
                    }
                    out
                }
                _ => {
                    return Err(problem(
                        &field("events"),
                        "give either events (with an optional format) or inputs".into(),
                    ))
                }
            };
            if inputs.is_empty() || inputs.iter().any(|(_, e)| e.trim().is_empty()) {
                return Err(problem(
                    &field("events"),
                    "must hold at least one event".into(),
                ));
            }
            if let Some(entities) = &t.expect.entities {
                if entities.len() != t.expect.alerts {
                    return Err(problem(
                        &field("expect.entities"),
                        format!(
                            "lists {} entities for {} alerts",
                            entities.len(),
                            t.expect.alerts
                        ),
                    ));
                }
                if let Some(bad) = entities.iter().find(|e| e.len() != raw.entity.len()) {
                    return Err(problem(
                        &field("expect.entities"),
                        format!(
                            "{bad:?} has {} values; the rule's entity has {} columns",
                            bad.len(),
                            raw.entity.len()
                        ),
                    ));
                }
            }
            let window_from = match &t.window_from {
                Some(w) => Some(
                    kubetrail_query::timeline::parse_time(w)
                        .map_err(|e| problem(&field("window_from"), e))?,
                ),
                None => None,
            };
            let watchlists =
                Watchlists::for_test(&t.allowed_registries, &t.deployers, &t.indicators)
                    .map_err(|e| problem(&field("indicators"), e))?;
            tests.push(RuleTest {
                window_from,
                watchlists,
                name: t.name,
                inputs,
                expect_alerts: t.expect.alerts,
                expect_entities: t.expect.entities,
            });
        }
        // A translated rule may come without tests (Sigma has none); tests it has must
        // still show both sides.
        let untested_import = raw.imported_from.is_some() && tests.is_empty();
        if !untested_import
            && (!tests.iter().any(|t| t.expect_alerts > 0)
                || !tests.iter().any(|t| t.expect_alerts == 0))
        {
            return Err(problem(
                "tests",
                "need at least one test that fires and one that stays quiet".into(),
            ));
        }
        Ok(Rule {
            id: raw.id,
            area: area.to_owned(),
            title: raw.title.trim().to_owned(),
            description: raw.description.trim().to_owned(),
            severity,
            mitre: raw.mitre,
            tags: raw.tags,
            false_positives: raw.false_positives,
            references: raw.references,
            imported_from: raw.imported_from,
            query,
            entity: raw.entity,
            threshold,
            suppress,
            tests,
        })
    }
}

/// What the API server's audit policy must record for a rule to judge: the levels of
/// `audit.k8s.io` policies, from the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuditLevel {
    /// Who did what to which object, from where, and the outcome.
    Metadata,
    /// Also the request's body: the pod spec, the role's rules.
    Request,
    /// Also the response's body.
    RequestResponse,
}

impl AuditLevel {
    pub fn name(self) -> &'static str {
        match self {
            AuditLevel::Metadata => "Metadata",
            AuditLevel::Request => "Request",
            AuditLevel::RequestResponse => "RequestResponse",
        }
    }
}

impl Rule {
    /// The audit level the rule needs, `None` when it reads no audit events.
    pub fn audit_level(&self) -> Option<AuditLevel> {
        let q = &self.query;
        if !q.contains("k8s_audit") {
            None
        } else if q.contains("response_object") {
            Some(AuditLevel::RequestResponse)
        } else if q.contains("request_object") {
            Some(AuditLevel::Request)
        } else {
            Some(AuditLevel::Metadata)
        }
    }

    /// The event tables the rule reads.
    pub fn streams(&self) -> Vec<kubetrail_schemas::Table> {
        kubetrail_schemas::Table::EVENTS
            .into_iter()
            .filter(|t| self.query.contains(t.name()))
            .collect()
    }
}

fn nonzero(d: Result<Duration, String>) -> Result<Duration, String> {
    match d {
        Ok(d) if d.is_zero() => Err("must be longer than 0".into()),
        other => other,
    }
}

pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(crate) fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id: exec-into-pod
title: Exec into a pod
description: Someone ran a command in a running container.
severity: medium
mitre: [T1609]
entity: [user_name]
query: |
  SELECT event_time, user_name, _source, _offset FROM k8s_audit WHERE subresource = 'exec'
tests:
  - name: fires
    events: "{}"
    expect: {alerts: 1, entities: [[alice]]}
  - name: quiet
    events: "{}"
    expect: {alerts: 0}
"#;

    fn parse(text: &str) -> Result<Rule, RuleProblem> {
        Rule::parse(
            Path::new("rules/workloads/exec-into-pod.yaml"),
            "workloads",
            text,
        )
    }

    #[test]
    fn a_good_rule_loads_and_every_mistake_names_its_field() {
        let rule = parse(GOOD).unwrap();
        assert_eq!(rule.severity, Severity::Medium);
        assert_eq!(rule.suppress, DEFAULT_SUPPRESS);
        assert_eq!(rule.audit_level(), Some(AuditLevel::Metadata));
        assert!(rule.false_positives.is_empty());
        assert_eq!(
            rule.tests[0].expect_entities,
            Some(vec![vec!["alice".to_owned()]])
        );
        for (change, field, reason) in [
            (
                ("severity: medium", "severity: urgent"),
                "severity",
                "is not a severity",
            ),
            (("[T1609]", "[T160]"), "mitre", "not an ATT&CK technique"),
            (
                ("id: exec-into-pod", "id: exec-into-pods"),
                "id",
                "must match the file name",
            ),
            (
                (
                    "  SELECT event_time",
                    "  DELETE FROM k8s_audit; SELECT event_time",
                ),
                "query",
                "one SELECT",
            ),
            (
                ("entity: [user_name]", "entity: []"),
                "entity",
                "at least one column",
            ),
            (
                ("{alerts: 0}", "{alerts: 1}"),
                "tests",
                "one that stays quiet",
            ),
            (
                ("entities: [[alice]]", "entities: [[alice, shop]]"),
                "tests[0].expect.entities",
                "2 values",
            ),
            (
                ("entity: [user_name]", "entity: [user_name]\nsuppress: 0s"),
                "suppress",
                "longer than 0",
            ),
            (
                (
                    "entity: [user_name]",
                    "entity: [user_name]\nthreshold: {count: 5, window: soon}",
                ),
                "threshold.window",
                "not a duration",
            ),
            (
                ("entity: [user_name]", "entity: [user_name]\ncolour: red"),
                "(file)",
                "colour",
            ),
        ] {
            let text = GOOD.replace(change.0, change.1);
            let p = parse(&text).unwrap_err();
            assert_eq!(p.field, field, "{change:?}: {p}");
            assert!(p.reason.contains(reason), "{change:?}: {p}");
            assert!(p
                .to_string()
                .starts_with("rules/workloads/exec-into-pod.yaml: "));
        }
        assert_eq!(parse("{{{").unwrap_err().field, "(file)");
    }

    #[test]
    fn only_a_translated_rule_may_come_without_tests() {
        let untested = &GOOD[..GOOD.find("tests:").unwrap()];
        assert_eq!(parse(untested).unwrap_err().field, "tests");
        let imported = untested.replace(
            "entity:",
            "imported_from: {format: sigma, id: 1f0e2a4c, file: exec.yml}\nreferences: [https://example.com]\nentity:",
        );
        let rule = parse(&imported).unwrap();
        assert!(rule.tests.is_empty());
        assert_eq!(rule.references, ["https://example.com"]);
        assert_eq!(rule.imported_from.unwrap().id.as_deref(), Some("1f0e2a4c"));
        // Tests it does carry must still show both sides.
        let one_sided = imported.clone()
            + "tests:\n  - name: fires\n    events: \"{}\"\n    expect: {alerts: 1}\n";
        assert_eq!(parse(&one_sided).unwrap_err().field, "tests");
    }
}
