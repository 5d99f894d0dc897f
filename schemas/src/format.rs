//! The native formats kubetrail reads, and recognising them from content.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::table::Table;

/// A source format: each has exactly one decoder and feeds exactly one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// audit.k8s.io Events, EventLists, and their EKS, AKS and GKE wrappers.
    K8sAudit,
    AwsVpcFlow,
    GcpVpcFlow,
    Hubble,
    Calico,
    Tetragon,
    Falco,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 7] = [
        SourceFormat::K8sAudit,
        SourceFormat::AwsVpcFlow,
        SourceFormat::GcpVpcFlow,
        SourceFormat::Hubble,
        SourceFormat::Calico,
        SourceFormat::Tetragon,
        SourceFormat::Falco,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::K8sAudit => "k8s-audit",
            SourceFormat::AwsVpcFlow => "aws-vpc-flow",
            SourceFormat::GcpVpcFlow => "gcp-vpc-flow",
            SourceFormat::Hubble => "hubble",
            SourceFormat::Calico => "calico",
            SourceFormat::Tetragon => "tetragon",
            SourceFormat::Falco => "falco",
        }
    }

    pub fn table(self) -> Table {
        match self {
            SourceFormat::K8sAudit => Table::K8sAudit,
            SourceFormat::AwsVpcFlow
            | SourceFormat::GcpVpcFlow
            | SourceFormat::Hubble
            | SourceFormat::Calico => Table::NetworkFlows,
            SourceFormat::Tetragon | SourceFormat::Falco => Table::RuntimeEvents,
        }
    }

    /// Recognises the format of one record (a JSON value or a text line), or `None`.
    pub fn sniff(record: &[u8]) -> Option<SourceFormat> {
        let trimmed = trim_ascii(record);
        match trimmed.first()? {
            b'{' | b'[' => {
                let value: Value = serde_json::from_slice(trimmed).ok()?;
                let first = match &value {
                    Value::Array(items) => items.first()?,
                    v => v,
                };
                sniff_json(first.as_object()?)
            }
            _ => sniff_text(std::str::from_utf8(trimmed).ok()?),
        }
    }
}

fn sniff_json(obj: &serde_json::Map<String, Value>) -> Option<SourceFormat> {
    let has = |k: &str| obj.contains_key(k);
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default();
    if has("auditID") || str_of("kind") == "Event" || str_of("kind") == "EventList" {
        return Some(SourceFormat::K8sAudit);
    }
    if str_of("apiVersion").starts_with("audit.k8s.io") {
        return Some(SourceFormat::K8sAudit);
    }
    // Cloud wrappers of audit events.
    if has("logEvents") || has("@message") || (has("message") && has("logGroup")) {
        return Some(SourceFormat::K8sAudit);
    }
    if str_of("category").starts_with("kube-audit") || has("records") {
        return Some(SourceFormat::K8sAudit);
    }
    // GKE entries, with or without `serviceName`: pipelines drop it, the method stays.
    if let Some(payload) = obj.get("protoPayload").and_then(Value::as_object) {
        let service = payload.get("serviceName").and_then(Value::as_str);
        let method = payload.get("methodName").and_then(Value::as_str);
        if service == Some("k8s.io") || method.is_some_and(|m| m.starts_with("io.k8s.")) {
            return Some(SourceFormat::K8sAudit);
        }
    }
    // Abbreviated events: no kind, ID or API version, but a request to the API.
    if has("requestURI") && (has("verb") || has("user") || has("objectRef")) {
        return Some(SourceFormat::K8sAudit);
    }
    if obj
        .get("jsonPayload")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("connection"))
    {
        return Some(SourceFormat::GcpVpcFlow);
    }
    if has("flow") || (has("verdict") && (has("IP") || has("l4"))) {
        return Some(SourceFormat::Hubble);
    }
    if obj.keys().any(|k| k.starts_with("process_")) {
        return Some(SourceFormat::Tetragon);
    }
    if has("rule") && has("priority") && has("output") {
        return Some(SourceFormat::Falco);
    }
    if (has("source_ip") || has("source_namespace")) && (has("dest_ip") || has("dest_namespace")) {
        return Some(SourceFormat::Calico);
    }
    None
}

fn sniff_text(line: &str) -> Option<SourceFormat> {
    let mut words = line.split_ascii_whitespace();
    let first = words.next()?;
    // A VPC flow log header, or a record: version, account id, interface id.
    if first == "version" || first == "account-id" || first == "account_id" {
        return Some(SourceFormat::AwsVpcFlow);
    }
    if first.parse::<u8>().is_ok() {
        let account = words.next()?;
        let interface = words.next()?;
        let account_ok = account == "-" || account.bytes().all(|b| b.is_ascii_digit());
        if account_ok && (interface.starts_with("eni-") || interface == "-") {
            return Some(SourceFormat::AwsVpcFlow);
        }
    }
    // Falco's text output: "<RFC 3339 time>: <Priority> <output>".
    if let Some((time, rest)) = line.split_once(": ") {
        let priority = rest.split_ascii_whitespace().next().unwrap_or_default();
        if crate::time::parse_timestamp(time).is_ok() && crate::decode::falco::is_priority(priority)
        {
            return Some(SourceFormat::Falco);
        }
    }
    None
}

pub(crate) fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &bytes[start..end]
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SourceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = SourceFormat::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown format '{s}' (expected auto or one of: {})",
                    names.join(", ")
                )
            })
    }
}
