//! `detect coverage`: the pack laid over the ATT&CK techniques that matter in a Kubernetes
//! cluster (`attack/techniques.tsv`): which rules cover each, which none covers, and whether
//! each rule's inline tests pass.

use std::collections::{BTreeMap, HashMap};

use kubetrail_query::output::{escape_html, html_head};
use serde_json::{json, Value};

use crate::pack::RulePack;
use crate::testing::TestResult;

const TECHNIQUES: &str = include_str!("../attack/techniques.tsv");

/// ATT&CK's tactics in the matrix's order, with their names.
const TACTICS: [(&str, &str); 11] = [
    ("initial-access", "Initial Access"),
    ("execution", "Execution"),
    ("persistence", "Persistence"),
    ("privilege-escalation", "Privilege Escalation"),
    ("defense-evasion", "Defense Evasion"),
    ("credential-access", "Credential Access"),
    ("discovery", "Discovery"),
    ("lateral-movement", "Lateral Movement"),
    ("collection", "Collection"),
    ("command-and-control", "Command and Control"),
    ("impact", "Impact"),
];

/// One technique of the list and the rules that cover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechniqueCoverage {
    pub id: String,
    pub name: String,
    pub tactics: Vec<String>,
    /// `containers` (ATT&CK's Containers matrix) or the Kubernetes threat matrix's technique.
    pub from: String,
    /// Rules that name the technique.
    pub rules: Vec<String>,
    /// Rules that name one of its sub-techniques (a parent only).
    pub by_sub_technique: Vec<String>,
}

impl TechniqueCoverage {
    pub fn covered(&self) -> bool {
        !self.rules.is_empty() || !self.by_sub_technique.is_empty()
    }
}

/// How a rule's inline tests went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStatus {
    /// Not asked for (`--no-tests`).
    NotRun,
    /// The rule has none (an imported rule).
    NoTests,
    Passed(usize),
    Failed {
        failed: usize,
        total: usize,
        /// The first failure, as `detect test` says it.
        first: String,
    },
}

impl TestStatus {
    fn of(results: Option<&Vec<TestResult>>) -> TestStatus {
        let Some(results) = results else {
            return TestStatus::NotRun;
        };
        let failures: Vec<&TestResult> = results.iter().filter(|r| r.failure.is_some()).collect();
        match (results.len(), failures.first()) {
            (0, _) => TestStatus::NoTests,
            (n, None) => TestStatus::Passed(n),
            (total, Some(first)) => TestStatus::Failed {
                failed: failures.len(),
                total,
                first: format!(
                    "{}: {}",
                    first.test,
                    first.failure.as_deref().unwrap_or_default()
                ),
            },
        }
    }

    fn label(&self) -> String {
        match self {
            TestStatus::NotRun => "not run".into(),
            TestStatus::NoTests => "no tests".into(),
            TestStatus::Passed(n) => format!("pass ({n})"),
            TestStatus::Failed { failed, total, .. } => format!("FAIL ({failed} of {total})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCoverage {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub techniques: Vec<String>,
    pub tests: TestStatus,
}

/// The whole picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub techniques: Vec<TechniqueCoverage>,
    pub rules: Vec<RuleCoverage>,
    /// Techniques rules name that the list does not hold (exfiltration, command and control
    /// seen from the cluster), with their rules.
    pub elsewhere: BTreeMap<String, Vec<String>>,
}

/// The pack over the technique list; `tests` holds each rule's test results when they ran.
pub fn coverage(pack: &RulePack, tests: &HashMap<String, Vec<TestResult>>) -> Coverage {
    let mut techniques: Vec<TechniqueCoverage> = TECHNIQUES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (id, name, tactics, from) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(TechniqueCoverage {
                id: id.into(),
                name: name.into(),
                tactics: tactics.split(',').map(str::to_owned).collect(),
                from: from.into(),
                rules: Vec::new(),
                by_sub_technique: Vec::new(),
            })
        })
        .collect();
    let mut elsewhere: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in &pack.rules {
        for t in &rule.mitre {
            let parent = t.split_once('.').map(|(p, _)| p);
            let mut listed = false;
            for tc in techniques.iter_mut() {
                if &tc.id == t {
                    tc.rules.push(rule.id.clone());
                    listed = true;
                } else if parent == Some(tc.id.as_str()) {
                    if !tc.by_sub_technique.contains(&rule.id) {
                        tc.by_sub_technique.push(rule.id.clone());
                    }
                    listed = true;
                }
            }
            if !listed {
                elsewhere
                    .entry(t.clone())
                    .or_default()
                    .push(rule.id.clone());
            }
        }
    }
    for tc in techniques.iter_mut() {
        let direct = tc.rules.clone();
        tc.by_sub_technique.retain(|r| !direct.contains(r));
    }
    let rules = pack
        .rules
        .iter()
        .map(|r| RuleCoverage {
            id: r.id.clone(),
            title: r.title.clone(),
            severity: r.severity.name().into(),
            techniques: r.mitre.clone(),
            tests: TestStatus::of(tests.get(&r.id)),
        })
        .collect();
    Coverage {
        techniques,
        rules,
        elsewhere,
    }
}

impl Coverage {
    fn covered(&self) -> usize {
        self.techniques.iter().filter(|t| t.covered()).count()
    }

    /// One line that says it all.
    pub fn summary(&self) -> String {
        let count = |f: fn(&TestStatus) -> bool| self.rules.iter().filter(|r| f(&r.tests)).count();
        let tests = if count(|t| *t == TestStatus::NotRun) == self.rules.len() {
            "tests not run".to_owned()
        } else {
            format!(
                "tests: {} rules pass, {} fail, {} have none",
                count(|t| matches!(t, TestStatus::Passed(_))),
                count(|t| matches!(t, TestStatus::Failed { .. })),
                count(|t| *t == TestStatus::NoTests)
            )
        };
        format!(
            "{} of {} techniques covered by {} rules; {tests}",
            self.covered(),
            self.techniques.len(),
            self.rules.len()
        )
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        for (tactic, title) in TACTICS {
            let rows: Vec<&TechniqueCoverage> = self
                .techniques
                .iter()
                .filter(|t| t.tactics.iter().any(|x| x == tactic))
                .collect();
            if rows.is_empty() {
                continue;
            }
            out.push_str(&format!("{title}\n"));
            for t in rows {
                let by = match (t.rules.is_empty(), t.by_sub_technique.is_empty()) {
                    (true, true) => "NOT COVERED".to_owned(),
                    (false, true) => t.rules.join(", "),
                    (true, false) => {
                        format!("(by sub-techniques) {}", t.by_sub_technique.join(", "))
                    }
                    (false, false) => format!(
                        "{}; (by sub-techniques) {}",
                        t.rules.join(", "),
                        t.by_sub_technique.join(", ")
                    ),
                };
                out.push_str(&format!("  {:<10} {:<44} {by}\n", t.id, t.name));
            }
        }
        if !self.elsewhere.is_empty() {
            out.push_str("Named by rules, outside the list\n");
            for (t, rules) in &self.elsewhere {
                out.push_str(&format!("  {t:<10} {}\n", rules.join(", ")));
            }
        }
        out.push_str("\nRules\n");
        for r in &self.rules {
            out.push_str(&format!(
                "  {:<44} {:<9} {:<22} {}\n",
                r.id,
                r.severity,
                r.techniques.join(","),
                r.tests.label()
            ));
            if let TestStatus::Failed { first, .. } = &r.tests {
                out.push_str(&format!("      {first}\n"));
            }
        }
        out.push_str(&format!("\n{}\n", self.summary()));
        out
    }

    pub fn json(&self) -> Value {
        let techniques: Vec<Value> = self
            .techniques
            .iter()
            .map(|t| {
                json!({"id": t.id, "name": t.name, "tactics": t.tactics, "from": t.from,
                       "covered": t.covered(), "rules": t.rules,
                       "by_sub_technique": t.by_sub_technique})
            })
            .collect();
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let (status, failure) = match &r.tests {
                    TestStatus::NotRun => ("not run", None),
                    TestStatus::NoTests => ("no tests", None),
                    TestStatus::Passed(_) => ("pass", None),
                    TestStatus::Failed { first, .. } => ("fail", Some(first.clone())),
                };
                let (tests, failed) = match &r.tests {
                    TestStatus::Passed(n) => (*n, 0),
                    TestStatus::Failed { failed, total, .. } => (*total, *failed),
                    _ => (0, 0),
                };
                json!({"id": r.id, "title": r.title, "severity": r.severity,
                       "techniques": r.techniques, "tests": status, "test_count": tests,
                       "tests_failed": failed, "first_failure": failure})
            })
            .collect();
        json!({
            "techniques": techniques,
            "uncovered": self.techniques.iter().filter(|t| !t.covered()).map(|t| &t.id).collect::<Vec<_>>(),
            "elsewhere": self.elsewhere,
            "rules": rules,
            "summary": self.summary(),
        })
    }

    /// One self-contained page: the matrix, a column per tactic, each technique green when
    /// a rule covers it; then the rules and their tests.
    pub fn html(&self) -> String {
        let mut columns = String::new();
        for (tactic, title) in TACTICS {
            let cells: Vec<String> = self
                .techniques
                .iter()
                .filter(|t| t.tactics.iter().any(|x| x == tactic))
                .map(|t| {
                    let mut rules: Vec<String> = t.rules.iter().map(|r| escape_html(r)).collect();
                    rules.extend(t.by_sub_technique.iter().map(|r| format!("{} (sub)", escape_html(r))));
                    let class = if t.covered() { "covered" } else { "gap" };
                    let rules = if rules.is_empty() {
                        "<em>no rule</em>".to_owned()
                    } else {
                        rules.join("<br>")
                    };
                    format!(
                        "<div class=\"cell {class}\"><b>{}</b> {}<div class=\"rules\">{rules}</div></div>",
                        escape_html(&t.id),
                        escape_html(&t.name)
                    )
                })
                .collect();
            if !cells.is_empty() {
                columns.push_str(&format!(
                    "<section><h2>{}</h2>{}</section>",
                    escape_html(title),
                    cells.concat()
                ));
            }
        }
        let rows: String = self
            .rules
            .iter()
            .map(|r| {
                let (class, detail) = match &r.tests {
                    TestStatus::Failed { first, .. } => ("fail", escape_html(first)),
                    TestStatus::Passed(_) => ("pass", String::new()),
                    _ => ("none", String::new()),
                };
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}<div>{detail}</div></td></tr>",
                    escape_html(&r.id),
                    escape_html(&r.title),
                    escape_html(&r.severity),
                    escape_html(&r.techniques.join(", ")),
                    escape_html(&r.tests.label())
                )
            })
            .collect();
        let elsewhere: String = self
            .elsewhere
            .iter()
            .map(|(t, rules)| {
                format!(
                    "<li><b>{}</b>: {}</li>",
                    escape_html(t),
                    escape_html(&rules.join(", "))
                )
            })
            .collect();
        format!(
            r#"{head}
<body>
<header><h1>Detection coverage: ATT&amp;CK for Kubernetes</h1><p>{summary}</p>
<p class="meta">ATT&amp;CK Enterprise v16, Containers matrix, and the Kubernetes threat matrix's techniques outside it. Green: at least one rule; red: none.</p></header>
<main>
<div class="matrix">{columns}</div>
<h2>Named by rules, outside the list</h2><ul>{elsewhere}</ul>
<h2>Rules</h2>
<table><thead><tr><th>rule</th><th>title</th><th>severity</th><th>techniques</th><th>inline tests</th></tr></thead><tbody>{rows}</tbody></table>
</main>
</body>
</html>
"#,
            head = html_head("kubetrail detection coverage", STYLE, false),
            summary = escape_html(&self.summary()),
        )
    }
}

const STYLE: &str = "body{margin:0;font:14px/1.45 system-ui,sans-serif;color:#1d1f23;background:#fafafa}\
header{padding:18px 28px;background:#fff;border-bottom:1px solid #e5e7eb}h1{font-size:20px;margin:0 0 4px}\
.meta{color:#6b7280}main{padding:16px 28px 40px}.matrix{display:flex;gap:8px;overflow-x:auto}\
.matrix section{flex:1 0 150px}.matrix h2{font-size:13px;margin:0 0 6px}\
.cell{border-radius:6px;padding:6px;margin-bottom:6px;font-size:12px}.covered{background:#d9f2e3;border:1px solid #1b9e77}\
.gap{background:#fde8ea;border:1px solid #d7263d}.rules{color:#374151;margin-top:4px;word-break:break-word}\
table{width:100%;border-collapse:collapse;background:#fff}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}\
td.fail{color:#d7263d;font-weight:600}td.pass{color:#1b9e77}td div{font-weight:400;color:#6b7280}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_technique_list_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for line in TECHNIQUES.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "{line}");
            assert!(crate::rule::is_technique(f[0]), "{line}");
            assert!(seen.insert(f[0]), "{} twice", f[0]);
            for t in f[2].split(',') {
                assert!(TACTICS.iter().any(|(k, _)| *k == t), "{line}: tactic {t}");
            }
        }
        assert!(seen.len() > 40);
    }

    fn result(rule: &str, failure: Option<&str>) -> TestResult {
        TestResult {
            rule_id: rule.into(),
            test: "t".into(),
            failure: failure.map(str::to_owned),
        }
    }

    #[test]
    fn the_pack_covers_techniques_directly_and_by_sub_technique() {
        let pack = RulePack::builtin();
        let mut tests = HashMap::new();
        tests.insert(
            "exec-into-pod".to_owned(),
            vec![
                result("exec-into-pod", None),
                result("exec-into-pod", Some("expected 1 alert(s), got 0")),
            ],
        );
        tests.insert("cryptominer".to_owned(), vec![result("cryptominer", None)]);
        let c = coverage(&pack, &tests);
        let technique = |id: &str| c.techniques.iter().find(|t| t.id == id).unwrap();
        assert!(technique("T1609")
            .rules
            .contains(&"exec-into-pod".to_owned()));
        // Only sub-techniques of T1552 are named; the parent is covered through them.
        let t1552 = technique("T1552");
        assert!(t1552.rules.is_empty() && t1552.covered());
        assert!(t1552
            .by_sub_technique
            .contains(&"secrets-listed-cluster-wide".to_owned()));
        assert!(!technique("T1190").covered());
        assert!(c.elsewhere.contains_key("T1041"), "{:?}", c.elsewhere);
        let rule = |id: &str| c.rules.iter().find(|r| r.id == id).unwrap();
        assert!(matches!(
            rule("exec-into-pod").tests,
            TestStatus::Failed {
                failed: 1,
                total: 2,
                ..
            }
        ));
        assert_eq!(rule("cryptominer").tests, TestStatus::Passed(1));
        assert_eq!(rule("shell-in-container").tests, TestStatus::NotRun);

        let table = c.table();
        assert!(
            table.contains("T1190      Exploit Public-Facing Application            NOT COVERED"),
            "{table}"
        );
        assert!(
            table.contains("FAIL (1 of 2)\n      t: expected 1 alert(s), got 0"),
            "{table}"
        );
        let json = c.json();
        assert!(json["uncovered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "T1190"));
        assert_eq!(json["rules"].as_array().unwrap().len(), pack.rules.len());
        let html = c.html();
        assert!(html.contains("<b>T1609</b> Container Administration Command"));
        assert!(html.contains("class=\"cell gap\"><b>T1190</b>"));
        assert!(html.contains("FAIL (1 of 2)<div>t: expected 1 alert(s), got 0</div>"));
        assert!(!html.contains("<script"), "one page, nothing to run");
    }
}
