//! Kubernetes audit events: `audit.k8s.io/v1` and `v1beta1` Events, webhook `EventList`
//! batches, and the EKS (CloudWatch), AKS (diagnostic logs) and GKE (Cloud Audit Logs)
//! wrappers, all onto [`AuditEvent`].
//!
//! Here: reading a record's envelope in one pass and sending it where it belongs, and the
//! helpers every source shares. `native.rs` maps an Event, `wrappers.rs` unwraps EKS and
//! AKS, `gke.rs` maps a Cloud Audit Log entry, `objects.rs` reads (and redacts) request and
//! response objects, `path.rs` reads request paths.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

mod gke;
mod native;
mod objects;
mod path;
mod wrappers;

use super::scan::Scanner;
use super::{DecodeError, DecodeOptions, Output};
use crate::redact::Redactor;
use crate::rows::AuditEvent;
use gke::{gke_event, GcpOperation, GcpResource};
use native::native_event;
use path::ResourcePath;
use wrappers::{aks_cluster, decode_text, eks_cluster, Wrapper};

/// A JSON string that borrows from the record unless it holds escapes. (serde borrows into
/// a `Cow<str>` only when the field is exactly that type, never inside `Option` or `Vec`:
/// every optional text used to be a fresh allocation.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

type Str<'a> = Option<Text<'a>>;

/// The text of an optional field, as the row holds it.
fn cow(text: Str) -> Option<Cow<str>> {
    text.map(|t| t.0)
}

/// Every shape an audit record can take, read in one pass ([`Envelope::scan`]): the fields
/// of an Event plus the fields by which the wrappers are recognised.
#[derive(Default)]
struct Envelope<'a> {
    kind: Str<'a>,
    api_version: Str<'a>,
    audit_id: Str<'a>,
    level: Str<'a>,
    stage: Str<'a>,
    request_uri: Str<'a>,
    verb: Str<'a>,
    user: Option<UserInfo<'a>>,
    impersonated_user: Option<UserInfo<'a>>,
    source_ips: Option<Vec<Cow<'a, str>>>,
    user_agent: Str<'a>,
    object_ref: Option<ObjectRef<'a>>,
    response_status: Option<Status<'a>>,
    /// JSON text, as the record holds it.
    request_object: Option<&'a str>,
    response_object: Option<&'a str>,
    request_received_timestamp: Str<'a>,
    stage_timestamp: Str<'a>,
    /// v1beta1 and GKE.
    timestamp: Str<'a>,
    /// GKE entries that lost `timestamp` on their way.
    receive_timestamp: Str<'a>,
    /// The HTTP method, which a few exports keep beside (or instead of) the verb, under
    /// one name or the other.
    method: Str<'a>,
    http_method: Str<'a>,
    metadata_creation_timestamp: Str<'a>,
    annotations: Option<Annotations<'a>>,

    // The wrappers, rare next to plain events: read by serde from their own text.
    // EventList
    items: Option<Vec<&'a RawValue>>,
    // EKS through CloudWatch Logs: a subscription batch, or one exported log event.
    log_events: Option<Vec<CloudWatchEvent<'a>>>,
    log_group: Str<'a>,
    message: Str<'a>,
    at_message: Str<'a>,
    // AKS diagnostic logs, alone or in an Event Hubs `records` batch.
    category: Str<'a>,
    properties: Option<AksProperties<'a>>,
    resource_id: Str<'a>,
    records: Option<Vec<&'a RawValue>>,
    // GKE Cloud Audit Logs.
    proto_payload: Option<&'a str>,
    resource: Option<GcpResource<'a>>,
    operation: Option<GcpOperation<'a>>,
    insert_id: Str<'a>,
    labels: Option<BTreeMap<String, Value>>,
}

impl<'a> Envelope<'a> {
    /// Reads a record's JSON text into an empty envelope. A field given twice is an
    /// error, as is anything that is not JSON, even in fields nobody reads.
    // Filled in place: an envelope is a kilobyte, and returned by value and then passed
    // on by value it was copied twice per event (callgrind: 0.9 % of ingest's
    // instructions).
    fn scan(&mut self, record: &'a str) -> Result<(), DecodeError> {
        let mut s = Scanner::new(record);
        let e = self;
        let present = s.object("an audit event object", |s, key| match key {
            "kind" => once(&mut e.kind, text(s)?, key),
            "apiVersion" => once(&mut e.api_version, text(s)?, key),
            "auditID" => once(&mut e.audit_id, text(s)?, key),
            "level" => once(&mut e.level, text(s)?, key),
            "stage" => once(&mut e.stage, text(s)?, key),
            "requestURI" => once(&mut e.request_uri, text(s)?, key),
            "verb" => once(&mut e.verb, text(s)?, key),
            "user" => once(&mut e.user, UserInfo::scan(s)?, key),
            "impersonatedUser" => once(&mut e.impersonated_user, UserInfo::scan(s)?, key),
            "sourceIPs" => once(&mut e.source_ips, s.texts()?, key),
            "userAgent" => once(&mut e.user_agent, text(s)?, key),
            "objectRef" => once(&mut e.object_ref, ObjectRef::scan(s)?, key),
            "responseStatus" => once(&mut e.response_status, Status::scan(s)?, key),
            "requestObject" => once(&mut e.request_object, s.raw()?, key),
            "responseObject" => once(&mut e.response_object, s.raw()?, key),
            "requestReceivedTimestamp" => once(&mut e.request_received_timestamp, text(s)?, key),
            "stageTimestamp" => once(&mut e.stage_timestamp, text(s)?, key),
            "timestamp" => once(&mut e.timestamp, text(s)?, key),
            "receiveTimestamp" => once(&mut e.receive_timestamp, text(s)?, key),
            "method" => once(&mut e.method, text(s)?, key),
            "httpMethod" => once(&mut e.http_method, text(s)?, key),
            "metadata" => {
                let mut created = None;
                s.object("an object", |s, key| match key {
                    "creationTimestamp" => once(&mut created, text(s)?, key),
                    _ => s.skip(),
                })?;
                once(&mut e.metadata_creation_timestamp, created, key)
            }
            "annotations" => once(&mut e.annotations, Annotations::scan(s)?, key),
            "items" => once(&mut e.items, by_serde(s)?, key),
            "logEvents" => once(&mut e.log_events, by_serde(s)?, key),
            "logGroup" => once(&mut e.log_group, text(s)?, key),
            "message" => once(&mut e.message, text(s)?, key),
            "@message" => once(&mut e.at_message, text(s)?, key),
            "category" => once(&mut e.category, text(s)?, key),
            "properties" => once(&mut e.properties, by_serde(s)?, key),
            "resourceId" => once(&mut e.resource_id, text(s)?, key),
            "records" => once(&mut e.records, by_serde(s)?, key),
            "protoPayload" => once(&mut e.proto_payload, s.raw()?, key),
            "resource" => once(&mut e.resource, by_serde(s)?, key),
            "operation" => once(&mut e.operation, by_serde(s)?, key),
            "insertId" => once(&mut e.insert_id, text(s)?, key),
            "labels" => once(&mut e.labels, by_serde(s)?, key),
            _ => s.skip(),
        })?;
        s.finish()?;
        if !present {
            return Err(DecodeError::Shape(
                "invalid type: null, expected an audit event object".into(),
            ));
        }
        Ok(())
    }
}

/// Sets a field read from the record, refusing one given twice.
// Inlined: it runs for nearly every field of every event (callgrind, one worker, 50k
// events: -0.4 % of ingest's instructions).
#[inline(always)]
fn once<T>(slot: &mut Option<T>, value: Option<T>, key: &str) -> Result<(), DecodeError> {
    if slot.is_some() && value.is_some() {
        return Err(DecodeError::Shape(format!("duplicate field `{key}`")));
    }
    if value.is_some() {
        *slot = value;
    }
    Ok(())
}

#[inline]
fn text<'a>(s: &mut Scanner<'a>) -> Result<Str<'a>, DecodeError> {
    Ok(s.text()?.map(Text))
}

/// A value read by serde from its own text.
fn by_serde<'a, T: Deserialize<'a>>(s: &mut Scanner<'a>) -> Result<Option<T>, DecodeError> {
    match s.raw()? {
        Some(raw) => serde_json::from_str(raw)
            .map(Some)
            .map_err(DecodeError::json),
        None => Ok(None),
    }
}

struct UserInfo<'a> {
    username: Str<'a>,
    uid: Str<'a>,
    groups: Option<Vec<Cow<'a, str>>>,
}

impl<'a> UserInfo<'a> {
    fn scan(s: &mut Scanner<'a>) -> Result<Option<Self>, DecodeError> {
        let (mut username, mut uid, mut groups) = (None, None, None);
        let present = s.object("a user object", |s, key| match key {
            "username" => once(&mut username, text(s)?, key),
            "uid" => once(&mut uid, text(s)?, key),
            "groups" => once(&mut groups, s.texts()?, key),
            _ => s.skip(),
        })?;
        Ok(present.then_some(UserInfo {
            username,
            uid,
            groups,
        }))
    }
}

#[derive(Default)]
struct ObjectRef<'a> {
    resource: Str<'a>,
    namespace: Str<'a>,
    name: Str<'a>,
    api_group: Str<'a>,
    api_version: Str<'a>,
    subresource: Str<'a>,
}

impl<'a> ObjectRef<'a> {
    fn scan(s: &mut Scanner<'a>) -> Result<Option<Self>, DecodeError> {
        let mut r = ObjectRef::default();
        let present = s.object("an objectRef object", |s, key| match key {
            "resource" => once(&mut r.resource, text(s)?, key),
            "namespace" => once(&mut r.namespace, text(s)?, key),
            "name" => once(&mut r.name, text(s)?, key),
            "apiGroup" => once(&mut r.api_group, text(s)?, key),
            "apiVersion" => once(&mut r.api_version, text(s)?, key),
            "subresource" => once(&mut r.subresource, text(s)?, key),
            _ => s.skip(),
        })?;
        Ok(present.then_some(r))
    }
}

impl ObjectRef<'_> {
    /// The reference a request path makes, for events that carry none.
    fn of_path(path: &ResourcePath) -> Self {
        let text = |t: &Option<String>| t.clone().map(|t| Text(Cow::Owned(t)));
        ObjectRef {
            resource: text(&path.resource),
            namespace: text(&path.namespace),
            name: text(&path.name),
            api_group: text(&path.group),
            api_version: text(&path.version),
            subresource: text(&path.subresource),
        }
    }
}

struct Status<'a> {
    code: Option<i32>,
    reason: Str<'a>,
    message: Str<'a>,
}

impl<'a> Status<'a> {
    fn scan(s: &mut Scanner<'a>) -> Result<Option<Self>, DecodeError> {
        let (mut code, mut reason, mut message) = (None, None, None);
        let present = s.object("a responseStatus object", |s, key| match key {
            "code" => once(&mut code, s.int32()?, key),
            "reason" => once(&mut reason, text(s)?, key),
            "message" => once(&mut message, text(s)?, key),
            _ => s.skip(),
        })?;
        Ok(present.then_some(Status {
            code,
            reason,
            message,
        }))
    }
}

#[derive(Deserialize)]
struct CloudWatchEvent<'a> {
    #[serde(borrow)]
    message: Text<'a>,
}

/// An event's annotations, read in the one pass over the record.
enum Annotations<'a> {
    /// A map: its JSON text as the record holds it (the column keeps it whole) and the
    /// two annotations that get columns of their own. A value of those two that is not
    /// text is left out and the event still lands.
    Map {
        text: &'a str,
        decision: Str<'a>,
        reason: Str<'a>,
    },
    /// A map with nothing in it: no column says anything.
    Empty,
    /// Anything else is not an annotation set: the event is rejected, once it is known
    /// to be an audit event at all.
    NotMap,
}

impl<'a> Annotations<'a> {
    fn scan(s: &mut Scanner<'a>) -> Result<Option<Self>, DecodeError> {
        let (mut decision, mut reason, mut keys) = (None, None, 0);
        let read = s.raw_with(|s| {
            s.object("an object", |s, key| {
                keys += 1;
                let slot = match key {
                    "authorization.k8s.io/decision" => &mut decision,
                    "authorization.k8s.io/reason" => &mut reason,
                    _ => return s.skip(),
                };
                match text(s) {
                    Ok(value) => *slot = value,
                    Err(DecodeError::Shape(_)) => s.skip()?,
                    Err(e) => return Err(e),
                }
                Ok(())
            })
        });
        match read {
            Ok((_, false)) => Ok(None),
            Ok((_, true)) if keys == 0 => Ok(Some(Annotations::Empty)),
            Ok((text, true)) => Ok(Some(Annotations::Map {
                text,
                decision,
                reason,
            })),
            // Not an object (the scanner stands at it still): checked as JSON all the same.
            Err(DecodeError::Shape(_)) => s.skip().map(|()| Some(Annotations::NotMap)),
            Err(e) => Err(e),
        }
    }
}

#[derive(Deserialize)]
struct AksProperties<'a> {
    #[serde(borrow)]
    log: Str<'a>,
}

/// Wrappers nest at most this deep (a `records` batch of AKS logs, say); deeper is hostile.
const MAX_DEPTH: u8 = 4;

pub(crate) fn decode<'a>(
    record: &'a [u8],
    options: &DecodeOptions,
    out: &mut Output<AuditEvent<'a>>,
) {
    let outer = Wrapper {
        format: "k8s",
        cluster: None,
    };
    match super::utf8(record) {
        Ok(text) => decode_nested(text, options, outer, 0, out),
        Err(e) => out.reject(record, e),
    }
}

fn decode_nested<'a>(
    record: &'a str,
    options: &DecodeOptions,
    wrapper: Wrapper<'a>,
    depth: u8,
    out: &mut Output<AuditEvent<'a>>,
) {
    if depth > MAX_DEPTH {
        out.reject(
            record,
            DecodeError::invalid("record", "wrappers nested too deeply"),
        );
        return;
    }
    let mut env = Envelope::default();
    if let Err(e) = env.scan(record) {
        return out.reject(record, e);
    }
    // Wrappers first: each inner event is decoded on its own, so one bad event in a batch
    // becomes one dead letter and the rest land.
    if let Some(items) = &env.items {
        if env.kind.as_deref() != Some("EventList") && env.kind.is_some() {
            return out.reject(
                record,
                DecodeError::unrecognized("an items list that is not an EventList"),
            );
        }
        for item in items {
            decode_nested(item.get(), options, wrapper.clone(), depth + 1, out);
        }
        return;
    }
    let eks = || wrapper.inner("eks", &env.log_group, eks_cluster);
    if let Some(events) = &env.log_events {
        for event in events {
            decode_text(&event.message, options, eks(), depth + 1, out);
        }
        return;
    }
    if let Some(message) = env.message.as_ref().or(env.at_message.as_ref()) {
        return decode_text(message, options, eks(), depth + 1, out);
    }
    if let Some(records) = &env.records {
        for item in records {
            decode_nested(item.get(), options, wrapper.clone(), depth + 1, out);
        }
        return;
    }
    if let Some(log) = env.properties.as_ref().and_then(|p| p.log.as_ref()) {
        if let Some(category) = env.category.as_deref() {
            if !category.starts_with("kube-audit") {
                return out.reject(
                    record,
                    DecodeError::unrecognized(format!(
                        "AKS log category '{category}' is not kube-audit"
                    )),
                );
            }
        }
        let aks = wrapper.inner("aks", &env.resource_id, aks_cluster);
        return decode_text(log, options, aks, depth + 1, out);
    }
    let result = match env.proto_payload {
        Some(payload) => gke_event(&env, payload, options, wrapper.cluster),
        None => native_event(&mut env, options, wrapper),
    };
    match result {
        Ok(row) => out.rows.push(row),
        Err(e) => out.reject(record, e),
    }
}

/// The cluster the options name for records that name none.
fn options_cluster<'a>(options: &DecodeOptions) -> Option<Cow<'a, str>> {
    options.cluster.clone().map(Cow::Owned)
}

/// A text field with the credentials in it redacted (a request URI's `?token=`).
fn redact_text<'a>(redactor: &Redactor, text: Cow<'a, str>) -> Cow<'a, str> {
    match redactor.redact_text(&text) {
        Cow::Owned(redacted) => Cow::Owned(redacted),
        Cow::Borrowed(_) => text,
    }
}

/// The pod a request was about: its name when the resource is `pods`.
fn pod_of<'a>(resource: Option<&str>, name: Option<&Cow<'a, str>>) -> Option<Cow<'a, str>> {
    (resource == Some("pods")).then(|| name.cloned()).flatten()
}

fn node_of<'a>(user: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    part_of(user, |u| u.strip_prefix("system:node:"))
}

/// The part of a text that `find` picks, borrowed as the text is.
fn part_of<'a>(text: &Cow<'a, str>, find: impl Fn(&str) -> Option<&str>) -> Option<Cow<'a, str>> {
    match text {
        Cow::Borrowed(t) => find(t).map(Cow::Borrowed),
        Cow::Owned(t) => find(t).map(|part| Cow::Owned(part.to_owned())),
    }
}

/// An audit ID for an event exported without one: a hash of what identifies the request
/// (never of its stage), so a re-ingest finds the same id and a timeline still shows one
/// line per request. Marked as derived, never mistaken for the API server's own.
fn derived_audit_id<const N: usize>(parts: [Option<&str>; N]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        match part {
            Some(p) => {
                h.update([1u8]);
                h.update(p.as_bytes());
            }
            None => h.update([0u8]),
        }
    }
    format!("derived-{}", &hex::encode(h.finalize())[..32])
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the one pass makes of an annotations value: (text kept, decision, reason), or
    /// "empty", "not a map", or the error.
    fn annotations(json: &str) -> Result<String, String> {
        let mut s = Scanner::new(json);
        let read = Annotations::scan(&mut s).map_err(|e| e.to_string())?;
        s.finish().map_err(|e| e.to_string())?;
        let show = |t: &Str| t.as_ref().map_or("-".to_owned(), |t| t.0.to_string());
        Ok(match read {
            None => "null".to_owned(),
            Some(Annotations::Empty) => "empty".to_owned(),
            Some(Annotations::NotMap) => "not a map".to_owned(),
            Some(Annotations::Map {
                text,
                decision,
                reason,
            }) => format!("{text} | {} | {}", show(&decision), show(&reason)),
        })
    }

    #[test]
    fn annotations_are_kept_whole_and_their_two_read_in_one_pass() {
        let both = r#"{"a":1,"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: \"x\""}"#;
        assert_eq!(
            annotations(&format!(" {both} ")),
            Ok(format!(r#"{both} | allow | RBAC: "x""#))
        );
        for (json, read) in [
            ("null", "null"),
            ("{}", "empty"),
            ("{ \n }", "empty"),
            (r#""allow""#, "not a map"),
            ("[]", "not a map"),
            ("7", "not a map"),
            (
                r#"{"authorization.k8s.io/decision":{"x":[1]}}"#,
                r#"{"authorization.k8s.io/decision":{"x":[1]}} | - | -"#,
            ),
            (
                r#"{"authorization.k8s.io/reason":null}"#,
                r#"{"authorization.k8s.io/reason":null} | - | -"#,
            ),
        ] {
            assert_eq!(annotations(json).as_deref(), Ok(read), "{json}");
        }
        // Not JSON is not JSON, map or not, read or skipped.
        for bad in [
            r#"{"a":}"#,
            r#"{"authorization.k8s.io/decision":"allow""#,
            "[1,]",
            r#""open"#,
        ] {
            let err = annotations(bad).unwrap_err();
            assert!(err.starts_with("invalid JSON"), "{bad}: {err}");
        }
    }
}
