//! One line of a timeline: what happened, in the responder's words, and the lake row it
//! came from.

use std::fmt;
use std::sync::Arc;

use kubetrail_schemas::Table;

use super::entity::PodRef;
use crate::window::rfc3339;

/// Which of the three evidence streams a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Audit,
    Network,
    Runtime,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Audit, Stream::Network, Stream::Runtime];

    pub fn name(self) -> &'static str {
        match self {
            Stream::Audit => "audit",
            Stream::Network => "network",
            Stream::Runtime => "runtime",
        }
    }

    pub fn table(self) -> Table {
        match self {
            Stream::Audit => Table::K8sAudit,
            Stream::Network => Table::NetworkFlows,
            Stream::Runtime => Table::RuntimeEvents,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The lake row a line stands for (the first one, for a collapsed line).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Evidence {
    pub table: Table,
    /// Shared: the rows of one file or Kafka partition all carry the same text.
    pub source: Arc<str>,
    pub offset: i64,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}#{}", self.table, self.source, self.offset)
    }
}

/// What the stream says beyond the shared columns; the summary is written from it.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Audit {
        verb: String,
        resource: Option<String>,
        subresource: Option<String>,
        name: Option<String>,
        response_code: Option<i32>,
        user_agent: Option<String>,
        /// The command of an exec, from the request URI.
        command: Option<String>,
        impersonated: Option<String>,
        audit_id: Option<String>,
        stage: Option<String>,
    },
    Flow {
        protocol: Option<String>,
        verdict: Option<String>,
        packets: Option<i64>,
        dns_query: Option<String>,
        http: Option<String>,
        /// The pods at either end: from the flow log itself (Hubble, Calico) or, for logs
        /// that know only addresses, from the address the pod held at that moment.
        src_pod: Option<PodRef>,
        dst_pod: Option<PodRef>,
    },
    Runtime {
        event_type: String,
        binary: Option<String>,
        arguments: Option<String>,
        file_path: Option<String>,
        function_name: Option<String>,
        exit_code: Option<i64>,
        falco: Option<(String, String)>,
        output: Option<String>,
    },
}

/// A line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    /// µs since the epoch, UTC.
    pub time: i64,
    /// The last of the events a collapsed line stands for (`time` otherwise).
    pub last_time: i64,
    pub count: u64,
    pub stream: Stream,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub node: Option<String>,
    pub src_ip: Option<String>,
    pub src_port: Option<i32>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<i32>,
    pub bytes: Option<i64>,
    /// The source format (`k8s-audit`, `hubble`, `aws-vpc-flow`, `tetragon`, `falco`, …).
    pub format: String,
    /// Why this line is in the timeline: which entity it concerns.
    pub relation: String,
    pub alert_ids: Vec<String>,
    pub evidence: Evidence,
    pub detail: Detail,
}

impl TimelineEvent {
    /// A line of one lake row with nothing said about it yet; the stream's reader fills
    /// in the rest.
    pub(crate) fn new(stream: Stream, time: i64, evidence: Evidence) -> TimelineEvent {
        TimelineEvent {
            time,
            last_time: time,
            count: 1,
            stream,
            actor: None,
            action: String::new(),
            target: None,
            namespace: None,
            pod: None,
            node: None,
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            bytes: None,
            format: String::new(),
            relation: String::new(),
            alert_ids: Vec::new(),
            evidence,
            detail: Detail::Flow {
                protocol: None,
                verdict: None,
                packets: None,
                dns_query: None,
                http: None,
                src_pod: None,
                dst_pod: None,
            },
        }
    }

    /// The pod as `namespace/name`, when the line has one.
    pub fn pod_ref(&self) -> Option<String> {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(pod)) => Some(format!("{ns}/{pod}")),
            (None, Some(pod)) => Some(pod.clone()),
            _ => None,
        }
    }

    /// A flow's actor and target from its ends: the pod when known, else the address.
    pub(crate) fn describe_flow_ends(&mut self) {
        let Detail::Flow {
            src_pod, dst_pod, ..
        } = &self.detail
        else {
            return;
        };
        self.actor = src_pod
            .as_ref()
            .map(PodRef::to_string)
            .or_else(|| self.src_ip.clone());
        self.target = match (dst_pod, self.dst_port) {
            (Some(p), Some(port)) => Some(format!("{p}:{port}")),
            (Some(p), None) => Some(p.to_string()),
            (None, _) => self.dst(),
        };
    }

    pub fn src(&self) -> Option<String> {
        address(&self.src_ip, self.src_port)
    }

    pub fn dst(&self) -> Option<String> {
        address(&self.dst_ip, self.dst_port)
    }

    /// One line a responder reads at 3 a.m.: who did what to what, with the numbers that
    /// matter, and for a collapsed line how many and over how long.
    pub fn summary(&self) -> String {
        let mut line = match &self.detail {
            Detail::Audit { .. } => self.audit_summary(),
            Detail::Flow { .. } => self.flow_summary(),
            Detail::Runtime { .. } => self.runtime_summary(),
        };
        if self.count > 1 {
            line.push_str(&format!(
                " (×{}, {} to {})",
                thousands(self.count),
                clock(self.time),
                clock(self.last_time)
            ));
        }
        line
    }

    fn audit_summary(&self) -> String {
        let Detail::Audit {
            verb,
            resource,
            subresource,
            name,
            response_code,
            user_agent,
            command,
            ..
        } = &self.detail
        else {
            unreachable!("audit_summary is only called for audit lines")
        };
        let actor = self.actor.as_deref().unwrap_or("someone");
        let object = match (&self.namespace, name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n.clone(),
            (Some(ns), None) => format!("in {ns}"),
            (None, None) => "cluster-wide".to_owned(),
        };
        let resource = resource.as_deref().unwrap_or("?");
        let mut line = match (resource, subresource.as_deref()) {
            ("pods", Some("exec")) => match command {
                Some(c) => format!("{actor} exec'd `{c}` into {object}"),
                None => format!("{actor} exec'd into {object}"),
            },
            ("pods", Some("attach")) => format!("{actor} attached to {object}"),
            ("pods", Some("portforward")) => format!("{actor} port-forwarded to {object}"),
            ("pods", Some("ephemeralcontainers")) => {
                format!("{actor} added an ephemeral container to {object}")
            }
            (r, Some(sub)) => format!("{actor} {verb} {r}/{sub} {object}"),
            (r, None) => format!("{actor} {verb} {r} {object}"),
        };
        if let Some(code) = response_code.filter(|c| *c >= 400) {
            line.push_str(&format!(" → {code} {}", status_text(code)));
        }
        if let Some(ip) = &self.src_ip {
            line.push_str(&format!(" from {ip}"));
        }
        if let Some(agent) = user_agent.as_deref().and_then(short_agent) {
            line.push_str(&format!(" ({agent})"));
        }
        line
    }

    fn flow_summary(&self) -> String {
        let Detail::Flow {
            protocol,
            verdict,
            dns_query,
            http,
            ..
        } = &self.detail
        else {
            unreachable!("flow_summary is only called for flow lines")
        };
        let from = match &self.detail {
            Detail::Flow {
                src_pod: Some(p), ..
            } => format!("pod {p}"),
            _ => self.src_ip.clone().unwrap_or_else(|| "?".into()),
        };
        let to = self.target.clone().unwrap_or_else(|| "?".into());
        let denied = verdict.as_deref().is_some_and(|v| {
            matches!(
                v.to_ascii_uppercase().as_str(),
                "DROPPED" | "DENIED" | "REJECT" | "DENY" | "ERROR"
            )
        });
        let mut line = if denied {
            format!("{from} was denied connecting to {to}")
        } else {
            format!("{from} connected to {to}")
        };
        if let Some(p) = protocol {
            line.push_str(&format!(" ({p})"));
        }
        if let Some(b) = self.bytes.filter(|b| *b > 0) {
            line.push_str(&format!(", {}", human_bytes(b)));
        }
        if let Some(q) = dns_query {
            line.push_str(&format!(", DNS {q}"));
        }
        if let Some(h) = http {
            line.push_str(&format!(", {h}"));
        }
        line
    }

    fn runtime_summary(&self) -> String {
        let Detail::Runtime {
            event_type,
            binary,
            arguments,
            file_path,
            function_name,
            exit_code,
            falco,
            output,
        } = &self.detail
        else {
            unreachable!("runtime_summary is only called for runtime lines")
        };
        let who = self
            .pod_ref()
            .map(|p| format!("pod {p}"))
            .or_else(|| self.node.as_ref().map(|n| format!("node {n}")))
            .unwrap_or_else(|| "a container".into());
        if let Some((rule, priority)) = falco {
            let mut line = format!("Falco {priority}: {rule} in {who}");
            if let Some(o) = output {
                line.push_str(&format!(": {}", clip(falco_message(o, priority), 160)));
            }
            return line;
        }
        let program = match (binary, arguments) {
            (Some(b), Some(a)) if !a.is_empty() => format!("{b} {}", clip(a, 120)),
            (Some(b), _) => b.clone(),
            (None, _) => "a process".into(),
        };
        match event_type.as_str() {
            "process_exec" => format!("{who} ran `{program}`"),
            "process_exit" => match exit_code {
                Some(c) => format!("{who}: `{program}` exited with {c}"),
                None => format!("{who}: `{program}` exited"),
            },
            _ => {
                let binary = binary.as_deref().unwrap_or("a process");
                if let Some(dst) = self.dst() {
                    format!("{who}: `{binary}` connected to {dst}")
                } else if let Some(path) = file_path {
                    format!("{who}: `{binary}` opened {path}")
                } else {
                    let what = function_name.as_deref().unwrap_or(event_type);
                    format!("{who}: `{binary}` {what}")
                }
            }
        }
    }
}

/// Falco's output starts with the time and the priority, which the line already says.
fn falco_message<'a>(output: &'a str, priority: &str) -> &'a str {
    let mut rest = output.trim_start();
    if let Some((first, tail)) = rest.split_once(' ') {
        let first = first.trim_end_matches(':');
        if first.len() >= 19 && first.as_bytes()[4] == b'-' && first.as_bytes()[10] == b'T' {
            rest = tail.trim_start();
        }
    }
    if let Some(tail) = rest.strip_prefix(priority) {
        if tail.starts_with(' ') {
            rest = tail.trim_start();
        }
    }
    rest
}

fn address(ip: &Option<String>, port: Option<i32>) -> Option<String> {
    let ip = ip.as_ref()?;
    Some(match port {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip.clone(),
    })
}

/// `curl/8.5.0`, `kubectl/v1.30.4`: the product token, which is what tells a human from a
/// controller. Long browser-style strings are cut.
fn short_agent(agent: &str) -> Option<String> {
    let first = agent.split_whitespace().next()?;
    Some(clip(first, 48))
}

fn status_text(code: i32) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable",
        429 => "Too Many Requests",
        500..=599 => "Server Error",
        _ => "",
    }
}

/// Bytes in decimal units, one decimal: `12.3 MB`.
pub fn human_bytes(b: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `09:31:02`, or the full time when the line spans days.
fn clock(t: i64) -> String {
    let full = rfc3339(t);
    full.get(11..19).map(str::to_owned).unwrap_or(full)
}

pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(max).collect();
        c.push('…');
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_the_way_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2_100_000), "2.1 MB");
        assert_eq!(thousands(1440), "1,440");
        assert_eq!(thousands(999), "999");
        assert_eq!(short_agent("curl/8.5.0").as_deref(), Some("curl/8.5.0"));
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(
            falco_message(
                "2026-11-20T09:33:12.002000000Z Critical Executing binary (proc_exe=/tmp/x)",
                "Critical"
            ),
            "Executing binary (proc_exe=/tmp/x)"
        );
        assert_eq!(
            falco_message("10:00:01.1: Notice Shell", "Notice"),
            "10:00:01.1: Notice Shell"
        );
    }
}
