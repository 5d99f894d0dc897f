//! Falco alerts: the JSON output (`json_output: true`, also what Falcosidekick forwards)
//! and the plain text output `<time>: <Priority> <output>`.

use serde_json::Value;

use super::json::{self, at, text, text_list};
use super::{utf8, DecodeError, DecodeOptions};
use crate::rows::RuntimeEvent;
use crate::time::{from_epoch_nanos, parse_timestamp};

const PRIORITIES: [&str; 9] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "info",
    "debug",
];

pub(crate) fn is_priority(word: &str) -> bool {
    PRIORITIES.iter().any(|p| p.eq_ignore_ascii_case(word))
}

pub(crate) fn decode(record: &[u8], options: &DecodeOptions) -> Result<RuntimeEvent, DecodeError> {
    let trimmed = crate::format::trim_ascii(record);
    if trimmed.first() == Some(&b'{') {
        decode_json(trimmed, options)
    } else {
        decode_text(utf8(trimmed)?, options)
    }
}

fn decode_json(record: &[u8], options: &DecodeOptions) -> Result<RuntimeEvent, DecodeError> {
    let alert = json::parse_object(record)?;
    let rule = text(&alert, "rule")?.ok_or(DecodeError::Missing("rule"))?;
    let fields = match at(&alert, "output_fields") {
        None => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(DecodeError::invalid("output_fields", "expected an object")),
    };
    // output_fields keys contain dots ("k8s.ns.name"): look them up whole, not as paths.
    let field = |key: &str| -> Option<String> {
        match fields.get(key)? {
            Value::String(s) if s.is_empty() || s == "<NA>" => None,
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let field_int = |key: &str| field(key).and_then(|v| v.parse::<i64>().ok());
    let event_time = match json::time(&alert, "time")? {
        Some(t) => t,
        None => fields
            .get("evt.time")
            .or_else(|| fields.get("evt.time.iso8601"))
            .and_then(|v| match v {
                Value::Number(n) => n.as_i64().map(from_epoch_nanos),
                Value::String(s) => parse_timestamp(s).ok(),
                _ => None,
            })
            .ok_or(DecodeError::Missing("time"))?,
    };
    let image =
        field("container.image.repository").map(|repo| match field("container.image.tag") {
            Some(tag) => format!("{repo}:{tag}"),
            None => repo,
        });
    let binary = field("proc.exepath").or_else(|| field("proc.name"));
    let arguments = field("proc.args").or_else(|| {
        let cmdline = field("proc.cmdline")?;
        let name = field("proc.name").unwrap_or_default();
        Some(
            cmdline
                .strip_prefix(&name)
                .map_or(cmdline.clone(), |r| r.trim_start().to_owned()),
        )
    });
    let file_path = field("fd.name").filter(|n| n.starts_with('/'));
    let port_of = |key: &str| field_int(key).and_then(|p| i32::try_from(p).ok());
    Ok(RuntimeEvent {
        event_time,
        cluster: options.cluster.clone(),
        namespace: field("k8s.ns.name"),
        pod: field("k8s.pod.name"),
        node: text(&alert, "hostname")?,
        src_ip: field("fd.cip"),
        dst_ip: field("fd.sip"),
        src_port: port_of("fd.cport"),
        dst_port: port_of("fd.sport"),
        protocol: field("fd.l4proto").map(|p| p.to_ascii_uppercase()),
        event_type: "falco_alert".to_owned(),
        binary,
        arguments,
        pid: field_int("proc.pid"),
        parent_binary: field("proc.pname"),
        parent_pid: field_int("proc.ppid"),
        container_id: field("container.id").filter(|c| c != "host"),
        container_name: field("container.name"),
        image,
        file_path,
        rule: Some(rule),
        priority: Some(text(&alert, "priority")?.ok_or(DecodeError::Missing("priority"))?),
        output: text(&alert, "output")?,
        tags: text_list(&alert, "tags")?,
        event_source: text(&alert, "source")?,
        output_fields: (!fields.as_object().is_some_and(|f| f.is_empty()))
            .then(|| fields.to_string()),
        user_name: field("user.name"),
        uid: field_int("user.uid"),
        runtime_format: "falco".to_owned(),
        ..RuntimeEvent::default()
    })
}

fn decode_text(line: &str, options: &DecodeOptions) -> Result<RuntimeEvent, DecodeError> {
    let (time, rest) = line.split_once(": ").ok_or_else(|| {
        DecodeError::unrecognized(
            "neither Falco JSON nor Falco text ('<time>: <Priority> <output>')",
        )
    })?;
    let event_time = parse_timestamp(time).map_err(|r| DecodeError::invalid("time", r))?;
    let (priority, output) = rest.split_once(' ').unwrap_or((rest, ""));
    if !is_priority(priority) {
        return Err(DecodeError::invalid(
            "priority",
            format!(
                "'{}' is not a Falco priority",
                crate::time::shorten(priority)
            ),
        ));
    }
    Ok(RuntimeEvent {
        event_time,
        cluster: options.cluster.clone(),
        event_type: "falco_alert".to_owned(),
        priority: Some(priority.to_owned()),
        output: Some(output.to_owned()),
        runtime_format: "falco".to_owned(),
        ..RuntimeEvent::default()
    })
}
