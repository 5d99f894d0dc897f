//! `detect import-sigma`: Sigma rules for Kubernetes audit logs (SigmaHQ's
//! `rules/application/kubernetes/`) as kubetrail rule files over `k8s_audit`.
//!
//! The Sigma grammar is parsed by `rsigma-parser`; this module maps its fields onto the
//! table ([`fields`]), its items onto SQL predicates ([`predicate`]) and its condition onto
//! their combination, and writes the rule file. What has no faithful SQL (keywords,
//! aggregations and correlations, encodings, a field the audit event does not have) is
//! refused with the reason, rule by rule.

mod fields;
mod predicate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rsigma_parser::{
    detection_name_matches, ConditionExpr, Detection, Level, Quantifier, SelectorPattern,
    SigmaRule, Status,
};

use crate::rule::{is_id, is_technique, Rule};

/// Who and what an imported rule's alerts are about: Sigma rules judge single events and
/// name no entity, so matches are grouped by the identity, where and what it touched.
const ENTITY: [&str; 3] = ["user_name", "namespace", "resource"];

/// The rule files an import made and the rules it could not translate.
#[derive(Debug, Default)]
pub struct SigmaImport {
    pub rules: Vec<TranslatedRule>,
    pub problems: Vec<SigmaProblem>,
}

/// A kubetrail rule file made from a Sigma rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedRule {
    pub id: String,
    /// The Sigma file it came from.
    pub source: String,
    /// The Sigma rule's own id.
    pub sigma_id: Option<String>,
    /// The rule file's text (`<area>/<id>.yaml` under a rules directory).
    pub yaml: String,
}

/// A Sigma rule (or file) that was not translated, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigmaProblem {
    pub file: String,
    /// The rule's title, when the file got that far.
    pub rule: Option<String>,
    pub reason: String,
}

impl fmt::Display for SigmaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{}: '{rule}': {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// The area (folder under the rules directory) imported rules are written to.
pub const AREA: &str = "sigma";

/// Every Sigma rule in `paths` (files, or directories searched for `*.yml`/`*.yaml`).
pub fn import(paths: &[PathBuf]) -> SigmaImport {
    let mut files = Vec::new();
    let mut out = SigmaImport::default();
    for path in paths {
        if path.is_dir() {
            collect(path, &mut files, &mut out.problems);
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let one = translate(&name, &text);
                out.problems.extend(one.problems);
                for rule in one.rules {
                    out.add(rule);
                }
            }
            Err(e) => out.problems.push(SigmaProblem {
                file: name,
                rule: None,
                reason: e.to_string(),
            }),
        }
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<SigmaProblem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return problems.push(SigmaProblem {
                file: dir.display().to_string(),
                rule: None,
                reason: e.to_string(),
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files, problems);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            files.push(path);
        }
    }
}

impl SigmaImport {
    /// Two rules with one title would share an id: the later one takes its Sigma id's
    /// first block as a suffix, so both run and alerts still say which made them.
    fn add(&mut self, mut rule: TranslatedRule) {
        if self.rules.iter().any(|r| r.id == rule.id) {
            let suffix = rule
                .sigma_id
                .as_deref()
                .and_then(|s| s.split('-').next())
                .map(str::to_ascii_lowercase)
                .filter(|s| is_id(s))
                .unwrap_or_else(|| self.rules.len().to_string());
            let id = format!("{}-{suffix}", rule.id);
            rule.yaml =
                rule.yaml
                    .replacen(&format!("id: {}\n", rule.id), &format!("id: {id}\n"), 1);
            rule.id = id;
        }
        if self.rules.iter().any(|r| r.id == rule.id) {
            return self.problems.push(SigmaProblem {
                file: rule.source,
                rule: None,
                reason: format!("another rule already has the id '{}'", rule.id),
            });
        }
        self.rules.push(rule);
    }
}

/// Every rule in one Sigma file (a file may hold several documents).
pub fn translate(file: &str, text: &str) -> SigmaImport {
    let mut out = SigmaImport::default();
    let problem = |rule: Option<String>, reason: String| SigmaProblem {
        file: file.to_owned(),
        rule,
        reason,
    };
    let collection = match rsigma_parser::parse_sigma_yaml(text) {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(problem(None, first_line(&e.to_string())));
            return out;
        }
    };
    for e in &collection.errors {
        out.problems.push(problem(None, first_line(&e.to_string())));
    }
    for c in &collection.correlations {
        out.problems.push(problem(
            Some(c.title.clone()),
            "a correlation rule (counts across events): not translated; write it as a rule with a threshold".into(),
        ));
    }
    for f in &collection.filters {
        out.problems.push(problem(
            Some(f.title.clone()),
            "a filter rule: not translated; put the exception in the rule's own condition".into(),
        ));
    }
    for rule in &collection.rules {
        match rule_file(file, rule) {
            Ok(t) => out.rules.push(t),
            Err(reason) => out.problems.push(problem(Some(rule.title.clone()), reason)),
        }
    }
    out
}

/// One Sigma rule as a kubetrail rule file, checked by loading it back.
fn rule_file(file: &str, rule: &SigmaRule) -> Result<TranslatedRule, String> {
    let source = &rule.logsource;
    let product = source.product.as_deref().unwrap_or_default();
    let service = source.service.as_deref().unwrap_or_default();
    if !product.eq_ignore_ascii_case("kubernetes") || !service.eq_ignore_ascii_case("audit") {
        return Err(format!(
            "logsource is product '{product}', service '{service}': only Kubernetes audit (product: kubernetes, service: audit) is translated"
        ));
    }
    if let Some(status @ (Status::Deprecated | Status::Unsupported)) = rule.status {
        return Err(
            format!("status is {status:?}: SigmaHQ keeps it for reference only").to_lowercase(),
        );
    }
    if let Some(timeframe) = &rule.detection.timeframe {
        return Err(format!(
            "timeframe {timeframe}: aggregations are not translated; write it as a rule with a threshold"
        ));
    }
    let query = query(&rule.detection.named, &rule.detection.conditions)?;
    let id = rule_id(rule)?;
    let severity = match rule.level {
        Some(Level::Informational) => "info",
        Some(Level::Low) => "low",
        None | Some(Level::Medium) => "medium",
        Some(Level::High) => "high",
        Some(Level::Critical) => "critical",
    };
    let (mitre, tags): (Vec<String>, Vec<String>) = {
        let mut mitre = Vec::new();
        let mut tags = Vec::new();
        for tag in &rule.tags {
            match tag
                .strip_prefix("attack.")
                .map(str::to_ascii_uppercase)
                .filter(|t| is_technique(t))
            {
                Some(t) => mitre.push(t),
                None => tags.push(tag.clone()),
            }
        }
        (mitre, tags)
    };
    let description = rule
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or(&rule.title);
    let mut yaml = String::new();
    let mut line = |key: &str, value: String| yaml.push_str(&format!("{key}: {value}\n"));
    line("id", id.clone());
    line("title", quoted(&rule.title));
    line("description", quoted(description));
    line("severity", severity.into());
    line("mitre", list(&mitre));
    line("tags", list(&tags));
    line("false_positives", list(&rule.falsepositives));
    line("references", list(&rule.references));
    line(
        "imported_from",
        format!(
            "{{format: sigma, id: {}, file: {}}}",
            rule.id.as_deref().map_or("null".into(), quoted),
            quoted(file)
        ),
    );
    line("entity", list(&ENTITY.map(String::from)));
    yaml.push_str("query: |\n");
    for l in query.lines() {
        yaml.push_str(&format!("  {l}\n"));
    }
    // Whatever was written must load as the engine will load it.
    Rule::parse(Path::new(&format!("{id}.yaml")), AREA, &yaml)
        .map_err(|p| format!("the translation does not load (a bug): {p}"))?;
    Ok(TranslatedRule {
        id,
        source: file.to_owned(),
        sigma_id: rule.id.clone(),
        yaml,
    })
}

/// The rule's id: its title in lower-case words, at most 60 characters.
fn rule_id(rule: &SigmaRule) -> Result<String, String> {
    let mut id = String::new();
    for word in rule
        .title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if id.len() + word.len() + 1 > 60 {
            break;
        }
        if !id.is_empty() {
            id.push('-');
        }
        id.push_str(&word.to_ascii_lowercase());
    }
    if is_id(&id) {
        Ok(id)
    } else {
        Err("the title has no letters or digits to name the rule by".into())
    }
}

/// The rule's SQL: each selection one predicate, combined as the condition says.
fn query(
    named: &std::collections::HashMap<String, Detection>,
    conditions: &[ConditionExpr],
) -> Result<String, String> {
    let mut selections = BTreeMap::new();
    for (name, detection) in named {
        selections.insert(name.clone(), selection(name, detection)?);
    }
    if conditions.is_empty() {
        return Err("no condition".into());
    }
    let parts = conditions
        .iter()
        .map(|c| condition(c, &selections))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join("\n   OR "))
    };
    Ok(format!(
        "SELECT event_time, {}, _source, _offset\nFROM k8s_audit\nWHERE {filter}\n",
        ENTITY.join(", ")
    ))
}

/// A selection as one predicate that is never null, so that `not` means "does not match".
fn selection(name: &str, detection: &Detection) -> Result<String, String> {
    Ok(format!(
        "coalesce({}, false)",
        detection_sql(name, detection)?
    ))
}

fn detection_sql(name: &str, detection: &Detection) -> Result<String, String> {
    let join = |parts: &[Detection], op: &str| -> Result<String, String> {
        let sql = parts
            .iter()
            .map(|d| detection_sql(name, d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match sql.len() {
            0 => return Err(format!("{name}: empty")),
            1 => sql.into_iter().next().unwrap_or_default(),
            _ => format!("({})", sql.join(op)),
        })
    };
    match detection {
        Detection::AllOf(items) => {
            let mut sql = Vec::new();
            for item in items {
                let Some(field_name) = &item.field.name else {
                    return Err(format!(
                        "{name}: a value without a field (keyword search) is not supported"
                    ));
                };
                let field = fields::audit_field(field_name)?;
                sql.push(predicate::item(
                    field_name,
                    &field,
                    &item.field.modifiers,
                    &item.values,
                )?);
            }
            Ok(match sql.len() {
                0 => return Err(format!("{name}: empty")),
                1 => sql.into_iter().next().unwrap_or_default(),
                _ => format!("({})", sql.join(" AND ")),
            })
        }
        Detection::AnyOf(parts) => join(parts, " OR "),
        Detection::And(parts) => join(parts, " AND "),
        Detection::Keywords(_) => Err(format!(
            "{name}: keyword search (values without a field) is not supported"
        )),
        Detection::ArrayMatch { field, .. } => Err(format!(
            "{name}: array blocks ({field}[any] / [all]) are not supported"
        )),
        Detection::Conditional { .. } => Err(format!(
            "{name}: conditions inside a selection are not supported"
        )),
    }
}

fn condition(
    expr: &ConditionExpr,
    selections: &BTreeMap<String, String>,
) -> Result<String, String> {
    let many = |parts: &[ConditionExpr], op: &str| -> Result<String, String> {
        let sql = parts
            .iter()
            .map(|p| condition(p, selections))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", sql.join(op)))
    };
    match expr {
        ConditionExpr::And(parts) => many(parts, "\n  AND "),
        ConditionExpr::Or(parts) => many(parts, "\n   OR "),
        ConditionExpr::Not(inner) => Ok(format!("NOT {}", condition(inner, selections)?)),
        ConditionExpr::Identifier(name) => named(name, selections),
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let names: Vec<&String> = selections
                .keys()
                .filter(|n| match pattern {
                    SelectorPattern::Them => !n.starts_with('_'),
                    SelectorPattern::Pattern(p) => detection_name_matches(p, n),
                })
                .collect();
            if names.is_empty() {
                return Err(format!("the condition's '{expr}' matches no selection"));
            }
            let sql = names
                .iter()
                .map(|n| named(n, selections))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(match quantifier {
                Quantifier::Any => format!("({})", sql.join("\n   OR ")),
                Quantifier::All => format!("({})", sql.join("\n  AND ")),
                Quantifier::Count(n) => format!(
                    "({}) >= {n}",
                    sql.iter()
                        .map(|s| format!("CAST({s} AS INT)"))
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
            })
        }
    }
}

fn named(name: &str, selections: &BTreeMap<String, String>) -> Result<String, String> {
    selections
        .get(name)
        .map(|sql| format!("/* {name} */ {sql}"))
        .ok_or_else(|| format!("the condition names '{name}', which is not a selection"))
}

/// A YAML scalar in double quotes (JSON's escapes are YAML's).
fn quoted(s: &str) -> String {
    serde_json::to_string(s.trim()).unwrap_or_else(|_| "\"\"".into())
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}
