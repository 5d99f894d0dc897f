//! Cilium Hubble flows: `hubble observe -o json` and exporter lines (`{"flow": …}`), or a
//! bare flow object.

use serde_json::{Map, Value};

use super::json::{self, at, boolean, extra_text, int, ip, port, text, text_list};
use super::{DecodeError, DecodeOptions};
use crate::rows::FlowRecord;

pub(crate) fn decode(record: &[u8], options: &DecodeOptions) -> Result<FlowRecord, DecodeError> {
    let outer = json::parse_object(record)?;
    let flow = match at(&outer, "flow") {
        Some(f @ Value::Object(_)) => f,
        Some(_) => return Err(DecodeError::invalid("flow", "expected an object")),
        None if at(&outer, "verdict").is_some() => &outer,
        None => return Err(DecodeError::unrecognized("no 'flow' object and no verdict")),
    };
    let event_time = json::time(flow, "time")?
        .or(json::time(&outer, "time")?)
        .ok_or(DecodeError::Missing("flow.time"))?;

    let (protocol, src_port, dst_port, tcp_flags) = l4(flow)?;
    let verdict = text(flow, "verdict")?;
    let src_namespace = text(flow, "source.namespace")?;
    let src_pod = text(flow, "source.pod_name")?;
    let dst_namespace = text(flow, "destination.namespace")?;
    let dst_pod = text(flow, "destination.pod_name")?;
    let src_labels = text_list(flow, "source.labels")?;
    let l7_protocol = ["dns", "http", "kafka"]
        .into_iter()
        .find(|p| at(flow, &format!("l7.{p}")).is_some())
        .map(str::to_owned);
    let cluster = options.cluster.clone().or_else(|| {
        src_labels
            .iter()
            .find_map(|l| l.strip_prefix("k8s:io.cilium.k8s.policy.cluster="))
            .map(str::to_owned)
    });
    let mut extra = Map::new();
    for (key, path) in [
        ("type", "Type"),
        ("trace_observation_point", "trace_observation_point"),
        ("l7_type", "l7.type"),
        ("dns_rcode", "l7.dns.rcode"),
        ("dns_ips", "l7.dns.ips"),
        ("src_workloads", "source.workloads"),
        ("dst_workloads", "destination.workloads"),
        ("src_service", "source_service.name"),
        ("dst_service", "destination_service.name"),
        ("interface", "interface.name"),
    ] {
        if let Some(v) = at(flow, path) {
            extra.insert(key.to_owned(), v.clone());
        }
    }
    Ok(FlowRecord {
        event_time,
        cluster,
        namespace: src_namespace.clone().or_else(|| dst_namespace.clone()),
        pod: src_pod.clone().or_else(|| dst_pod.clone()),
        node: text(flow, "node_name")?.or(text(&outer, "node_name")?),
        src_ip: ip(flow, "IP.source")?,
        dst_ip: ip(flow, "IP.destination")?,
        src_port,
        dst_port,
        protocol,
        action: verdict.as_deref().map(action_of),
        verdict,
        src_namespace,
        src_pod,
        src_labels,
        src_identity: int(flow, "source.identity")?,
        dst_namespace,
        dst_pod,
        dst_labels: text_list(flow, "destination.labels")?,
        dst_identity: int(flow, "destination.identity")?,
        direction: text(flow, "traffic_direction")?
            .filter(|d| d == "INGRESS" || d == "EGRESS")
            .map(|d| d.to_ascii_lowercase()),
        is_reply: boolean(flow, "is_reply")?.or(boolean(flow, "reply")?),
        drop_reason: text(flow, "drop_reason_desc")?.or(text(flow, "drop_reason")?),
        tcp_flags,
        l7_protocol,
        dns_query: text(flow, "l7.dns.query")?,
        http_method: text(flow, "l7.http.method")?,
        http_url: text(flow, "l7.http.url")?,
        http_code: int(flow, "l7.http.code")?.and_then(|c| i32::try_from(c).ok()),
        summary: text(flow, "Summary")?,
        extra: extra_text(extra),
        flow_format: "hubble".to_owned(),
        ..FlowRecord::default()
    })
}

type L4 = (Option<String>, Option<i32>, Option<i32>, Option<String>);

fn l4(flow: &Value) -> Result<L4, DecodeError> {
    let Some(l4) = json::object(flow, "l4")? else {
        return Ok((None, None, None, None));
    };
    let Some((name, body)) = l4.iter().next() else {
        return Ok((None, None, None, None));
    };
    let src = port(body, "source_port")?;
    let dst = port(body, "destination_port")?;
    // In the order of the TCP header bits, as VPC flow logs spell them.
    const ORDER: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"];
    let flags = match body.get("flags") {
        Some(Value::Object(f)) => {
            let set: Vec<&str> = ORDER
                .into_iter()
                .filter(|flag| f.get(*flag).and_then(Value::as_bool) == Some(true))
                .collect();
            (!set.is_empty()).then(|| set.join(","))
        }
        _ => None,
    };
    Ok((Some(name.clone()), src, dst, flags))
}

fn action_of(verdict: &str) -> String {
    match verdict {
        "FORWARDED" => "allow".into(),
        "DROPPED" => "deny".into(),
        "REDIRECTED" => "redirect".into(),
        "AUDIT" => "audit".into(),
        "ERROR" => "error".into(),
        other => other.to_ascii_lowercase(),
    }
}
