//! Typed reads from a parsed JSON value for the decoders that navigate rather than map
//! onto structs. A field that is present with the wrong type is an error, not a null.

use serde_json::{Map, Value};

use super::DecodeError;
use crate::decode::ip::canonical_ip;
use crate::time::parse_timestamp;

pub(crate) fn parse_object(record: &[u8]) -> Result<Value, DecodeError> {
    let value: Value = serde_json::from_str(super::utf8(record)?).map_err(DecodeError::json)?;
    if !value.is_object() {
        return Err(DecodeError::unrecognized("expected a JSON object"));
    }
    Ok(value)
}

/// The value at a dotted path; JSON null counts as absent.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.as_object()?.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

pub(crate) fn object<'a>(
    v: &'a Value,
    path: &'static str,
) -> Result<Option<&'a Map<String, Value>>, DecodeError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(wrong_type(path, "an object", other)),
    }
}

/// Text; numbers and booleans are taken as their JSON spelling.
pub(crate) fn text(v: &Value, path: &'static str) -> Result<Option<String>, DecodeError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(n @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(n.to_string())),
        Some(other) => Err(wrong_type(path, "a string", other)),
    }
}

/// An integer, or a string holding one (64-bit numbers often arrive as strings).
pub(crate) fn int(v: &Value, path: &'static str) -> Result<Option<i64>, DecodeError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok()))
            .map(Some)
            .ok_or_else(|| DecodeError::invalid(path, format!("{n} is not a 64-bit integer"))),
        Some(Value::String(s)) if s.is_empty() || s == "-" => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            DecodeError::invalid(
                path,
                format!("'{}' is not an integer", crate::time::shorten(s)),
            )
        }),
        Some(other) => Err(wrong_type(path, "an integer", other)),
    }
}

pub(crate) fn port(v: &Value, path: &'static str) -> Result<Option<i32>, DecodeError> {
    match int(v, path)? {
        None => Ok(None),
        Some(p) if (0..=65535).contains(&p) => Ok(Some(p as i32)),
        Some(p) => Err(DecodeError::invalid(path, format!("{p} is not a port"))),
    }
}

pub(crate) fn boolean(v: &Value, path: &'static str) -> Result<Option<bool>, DecodeError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(path, "a boolean", other)),
    }
}

pub(crate) fn text_list(v: &Value, path: &'static str) -> Result<Vec<String>, DecodeError> {
    match at(v, path) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(path, "a list of strings", other)),
            })
            .collect(),
        Some(other) => Err(wrong_type(path, "a list", other)),
    }
}

pub(crate) fn time(v: &Value, path: &'static str) -> Result<Option<i64>, DecodeError> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => parse_timestamp(s)
            .map(Some)
            .map_err(|r| DecodeError::invalid(path, r)),
        Some(other) => Err(wrong_type(path, "an RFC 3339 timestamp", other)),
    }
}

/// An IP address in canonical text form; `-` and empty are absent.
pub(crate) fn ip(v: &Value, path: &'static str) -> Result<Option<String>, DecodeError> {
    Ok(text(v, path)?
        .filter(|s| !s.is_empty() && s != "-")
        .map(|s| canonical_ip(&s)))
}

fn wrong_type(path: &'static str, expected: &str, got: &Value) -> DecodeError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    DecodeError::invalid(path, format!("expected {expected}, got {kind}"))
}

/// IANA protocol numbers as responders read them.
pub(crate) fn protocol_name(number: i64) -> String {
    match number {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        n => n.to_string(),
    }
}

/// Drops empty objects so `extra` stays null when there is nothing extra.
pub(crate) fn extra_text(extra: Map<String, Value>) -> Option<String> {
    let kept: Map<String, Value> = extra.into_iter().filter(|(_, v)| !v.is_null()).collect();
    (!kept.is_empty()).then(|| Value::Object(kept).to_string())
}
