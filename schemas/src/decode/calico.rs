//! Calico flow logs (JSON): aggregated flows between endpoints with the policy verdict.

use serde_json::{Map, Value};

use super::json::{self, at, extra_text, int, ip, port, text};
use super::{DecodeError, DecodeOptions};
use crate::rows::FlowRecord;
use crate::time::{from_epoch_seconds, parse_timestamp};

pub(crate) fn decode(record: &[u8], options: &DecodeOptions) -> Result<FlowRecord, DecodeError> {
    let flow = json::parse_object(record)?;
    let start_time = epoch_or_rfc3339(&flow, "start_time")?;
    let end_time = epoch_or_rfc3339(&flow, "end_time")?;
    let event_time = start_time
        .or(end_time)
        .ok_or(DecodeError::Missing("start_time"))?;
    let src_namespace = endpoint_text(&flow, "source_namespace")?;
    let dst_namespace = endpoint_text(&flow, "dest_namespace")?;
    // Aggregated logs replace the pod name by "-" and keep a `*` pattern in *_name_aggr.
    let src_pod =
        endpoint_text(&flow, "source_name")?.or(endpoint_text(&flow, "source_name_aggr")?);
    let dst_pod = endpoint_text(&flow, "dest_name")?.or(endpoint_text(&flow, "dest_name_aggr")?);
    let reporter = text(&flow, "reporter")?;
    let sum = |a: &'static str, b: &'static str| -> Result<Option<i64>, DecodeError> {
        Ok(match (int(&flow, a)?, int(&flow, b)?) {
            (None, None) => None,
            (x, y) => Some(x.unwrap_or(0).saturating_add(y.unwrap_or(0))),
        })
    };
    let mut extra = Map::new();
    for key in [
        "reporter",
        "source_type",
        "dest_type",
        "dest_service_name",
        "dest_service_namespace",
        "dest_service_port",
        "policies",
        "num_flows",
        "num_flows_started",
        "num_flows_completed",
        "original_source_ips",
        "dest_domains",
        "process_name",
    ] {
        if let Some(v) = at(&flow, key) {
            extra.insert(key.to_owned(), v.clone());
        }
    }
    let reported_by_dest = reporter.as_deref() == Some("dst");
    let (namespace, pod) = if reported_by_dest {
        (dst_namespace.clone(), dst_pod.clone())
    } else {
        (src_namespace.clone(), src_pod.clone())
    };
    let action = text(&flow, "action")?;
    Ok(FlowRecord {
        event_time,
        cluster: options.cluster.clone(),
        namespace,
        pod,
        node: text(&flow, "host")?,
        src_ip: ip(&flow, "source_ip")?,
        dst_ip: ip(&flow, "dest_ip")?,
        src_port: port(&flow, "source_port")?,
        dst_port: port(&flow, "dest_port")?,
        protocol: text(&flow, "proto")?.map(|p| match p.parse::<i64>() {
            Ok(n) => json::protocol_name(n),
            Err(_) => p.to_ascii_uppercase(),
        }),
        bytes: sum("bytes_in", "bytes_out")?,
        packets: sum("packets_in", "packets_out")?,
        action: action.as_deref().map(str::to_ascii_lowercase),
        verdict: action,
        src_namespace,
        src_pod,
        src_labels: labels(&flow, "source_labels")?,
        dst_namespace,
        dst_pod,
        dst_labels: labels(&flow, "dest_labels")?,
        direction: reporter.map(|r| if r == "dst" { "ingress" } else { "egress" }.to_owned()),
        start_time,
        end_time,
        extra: extra_text(extra),
        flow_format: "calico".to_owned(),
        ..FlowRecord::default()
    })
}

fn endpoint_text(flow: &Value, key: &'static str) -> Result<Option<String>, DecodeError> {
    Ok(text(flow, key)?.filter(|v| !v.is_empty() && v != "-"))
}

/// Epoch seconds (number or string) or an RFC 3339 string.
fn epoch_or_rfc3339(flow: &Value, key: &'static str) -> Result<Option<i64>, DecodeError> {
    match at(flow, key) {
        Some(Value::String(s)) if s.parse::<i64>().is_err() => parse_timestamp(s)
            .map(Some)
            .map_err(|r| DecodeError::invalid(key, r)),
        _ => int(flow, key)?
            .map(|s| from_epoch_seconds(s).map_err(|r| DecodeError::invalid(key, r)))
            .transpose(),
    }
}

/// `{"labels": ["app=x", …]}`, a plain list, or a `{key: value}` map.
fn labels(flow: &Value, key: &'static str) -> Result<Vec<String>, DecodeError> {
    match at(flow, key) {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) if map.contains_key("labels") => {
            json::text_list(&Value::Object(map.clone()), "labels")
        }
        Some(Value::Object(map)) => Ok(map
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect()),
        Some(Value::Array(_)) => json::text_list(flow, key),
        Some(Value::String(s)) if s == "-" || s.is_empty() => Ok(Vec::new()),
        Some(_) => Err(DecodeError::invalid(key, "expected labels")),
    }
}
