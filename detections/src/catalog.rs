//! The pack as a responder reads it: `kubetrail detect catalog` prints it as Markdown, and
//! `docs/detections.md` is that output (a test keeps the two the same), so what the docs say
//! a rule does, needs and gets wrong is what the rule file says.

use std::collections::BTreeMap;
use std::fmt::Write;

use kubetrail_schemas::Table;

use crate::pack::RulePack;

const INTRODUCTION: &str = "What each rule is for, which streams it reads, what the API \
server's audit policy must record for it, and where it is known to fire on legitimate \
activity. Audit levels: `Metadata` (who did what to which object, from where, and the \
outcome), `Request` (also the request body: the pod spec, the role's rules, the ingress), \
`RequestResponse` (also the response body). A rule that needs `Request` says nothing about \
resources the policy logs at `Metadata`.

Every audit rule is also judged on EKS (CloudWatch), GKE and abbreviated forms of its \
positive tests (`detections/tests/detections.rs`, `platforms`); `impersonation` and \
`files-copied-from-pod` have no GKE form (GKE's entries name no impersonated user and no \
exec command). `kubetrail detect test` runs the tests counted here. Rules that compare with \
lists the operator keeps (indicators, deployers, the registry allow-list) read them from \
`[detections]` in `kubetrail.toml`.

An alert is one fact: while its entity keeps matching with no pause longer than the rule's \
`suppress` (1 h unless it says), the alert is updated (last seen, count, evidence) instead \
of raised again.";

/// The pack as Markdown: an introduction, then a table per area.
pub fn markdown(pack: &RulePack) -> String {
    let mut areas: BTreeMap<&str, Vec<&crate::Rule>> = BTreeMap::new();
    for rule in &pack.rules {
        areas.entry(rule.area.as_str()).or_default().push(rule);
    }
    let mut out = String::from("# The detection pack, rule by rule\n\n");
    out.push_str(INTRODUCTION);
    out.push('\n');
    for (area, rules) in areas {
        let _ = write!(
            out,
            "\n## {area}\n\n| rule | severity | ATT&CK | intent | reads | audit level | false positives | tests |\n|---|---|---|---|---|---|---|---|\n"
        );
        for r in rules {
            let streams: Vec<&str> = r
                .streams()
                .into_iter()
                .map(|t| match t {
                    Table::K8sAudit => "audit",
                    Table::NetworkFlows => "flows",
                    _ => "runtime",
                })
                .collect();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.severity,
                r.mitre.join(", "),
                cell(&r.description),
                streams.join(" + "),
                r.audit_level().map_or("—", |l| l.name()),
                cell(&r.false_positives.join(" ")),
                r.tests.len()
            );
        }
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
