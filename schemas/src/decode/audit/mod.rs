//! Kubernetes audit events: `audit.k8s.io/v1` and `v1beta1` Events, webhook `EventList`
//! batches, and the EKS (CloudWatch), AKS (diagnostic logs) and GKE (Cloud Audit Logs)
//! wrappers, all onto [`AuditEvent`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

mod gke;
mod path;

use super::ip::canonical_ip_text;
use super::scan::Scanner;
use super::{DecodeError, DecodeOptions, Output};
use crate::redact::{ObjectKind, Redactor};
use crate::rows::AuditEvent;
use crate::time::parse_timestamp;
use gke::{gke_event, GcpOperation, GcpResource};
use path::ResourcePath;

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

/// The name and kind of a request or response object, read without building the object.
#[derive(Deserialize)]
struct ObjectHead<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    metadata: Option<ObjectMeta<'a>>,
}

/// Just the address of a pod object (or of a status patch to one).
#[derive(Deserialize)]
struct PodStatusHead<'a> {
    #[serde(borrow)]
    status: Option<PodStatus<'a>>,
}

#[derive(Deserialize)]
struct PodStatus<'a> {
    #[serde(borrow, rename = "podIP")]
    pod_ip: Str<'a>,
}

#[derive(Deserialize)]
struct ObjectMeta<'a> {
    #[serde(borrow)]
    name: Str<'a>,
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

/// What the wrappers around an event said: which one it came in, and the cluster it names.
#[derive(Clone)]
struct Wrapper<'a> {
    format: &'static str,
    cluster: Option<Cow<'a, str>>,
}

impl<'a> Wrapper<'a> {
    /// The wrapper `format` naming the cluster found in `text` by `find`, else this one's.
    fn inner(&self, format: &'static str, text: &Str<'a>, find: fn(&str) -> Option<&str>) -> Self {
        let found = text.as_ref().and_then(|t| part_of(&t.0, find));
        Wrapper {
            format,
            cluster: found.or_else(|| self.cluster.clone()),
        }
    }
}

/// Decodes an event carried as a JSON string inside a wrapper. Its rows borrow from the
/// record unless the string held escapes, when they get texts of their own.
fn decode_text<'a>(
    text: &Text<'a>,
    options: &DecodeOptions,
    wrapper: Wrapper<'a>,
    depth: u8,
    out: &mut Output<AuditEvent<'a>>,
) {
    match &text.0 {
        Cow::Borrowed(text) => decode_nested(text, options, wrapper, depth, out),
        Cow::Owned(text) => {
            let mut inner: Output<AuditEvent> = Output::default();
            decode_nested(text, options, wrapper, depth, &mut inner);
            out.rows
                .extend(inner.rows.into_iter().map(|row| row.into_owned()));
            out.rejected.extend(inner.rejected);
        }
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

/// The row of a plain event, its texts taken out of the envelope.
fn native_event<'a>(
    env: &mut Envelope<'a>,
    options: &DecodeOptions,
    wrapper: Wrapper<'a>,
) -> Result<AuditEvent<'a>, DecodeError> {
    if let Some(version) = env.api_version.as_deref() {
        if !version.starts_with("audit.k8s.io/") {
            return Err(DecodeError::unrecognized(format!(
                "apiVersion '{version}' is not audit.k8s.io (a core Event is not an audit event)"
            )));
        }
    }
    let is_event = env.kind.as_deref() == Some("Event")
        || env.audit_id.is_some()
        || env.verb.is_some()
        || env.request_uri.is_some();
    if !is_event {
        return Err(DecodeError::unrecognized(
            "not an audit event (no kind Event, auditID, verb or requestURI)",
        ));
    }
    // Each time is read once; the event's time is the first of them the event has.
    let time = |field: &'static str, text: Option<&str>| -> Result<Option<i64>, DecodeError> {
        text.map(|t| parse_timestamp(t).map_err(|r| DecodeError::invalid(field, r)))
            .transpose()
    };
    let request_received_time = time(
        "requestReceivedTimestamp",
        env.request_received_timestamp.as_deref(),
    )?;
    let stage_time = time("stageTimestamp", env.stage_timestamp.as_deref())?;
    let legacy_time = env
        .timestamp
        .as_deref()
        .or(env.metadata_creation_timestamp.as_deref());
    let event_time = match request_received_time.or(stage_time) {
        Some(t) => t,
        None => time("timestamp", legacy_time)?.ok_or(DecodeError::Missing(
            "requestReceivedTimestamp (or stageTimestamp, timestamp)",
        ))?,
    };

    let (annotations, decision, authz_reason) = match env.annotations.take() {
        Some(Annotations::Map {
            text,
            decision,
            reason,
        }) => (Some(Cow::Borrowed(text)), cow(decision), cow(reason)),
        Some(Annotations::NotMap) => {
            return Err(DecodeError::invalid("annotations", "not an object"));
        }
        Some(Annotations::Empty) | None => (None, None, None),
    };

    // Abbreviated exports leave out `objectRef` or `verb`: the request URI still says
    // what the request was about, and with an HTTP method, what it did.
    let uri_path = match (&env.object_ref, &env.verb) {
        (Some(_), Some(_)) => None,
        _ => env
            .request_uri
            .as_deref()
            .and_then(ResourcePath::from_request_uri),
    };
    let verb = match (env.verb.take(), &uri_path) {
        (Some(verb), _) => Some(verb.0),
        (None, Some(path)) => path
            .verb(env.method.as_deref().or(env.http_method.as_deref()))
            .map(Cow::Borrowed),
        (None, None) => None,
    };
    let object_ref = match (env.object_ref.take(), &uri_path) {
        (Some(r), _) => Some(r),
        (None, Some(path)) => Some(ObjectRef::of_path(path)),
        (None, None) => None,
    };
    let has_ref = object_ref.is_some();
    let object_ref = object_ref.unwrap_or_default();
    let resource = cow(object_ref.resource);
    let Objects {
        name,
        request: request_object,
        response: response_object,
        pod_ip,
    } = objects(
        resource.as_deref(),
        object_ref.subresource.as_deref(),
        cow(object_ref.name),
        [env.request_object, env.response_object],
        &options.redactor,
    )?;

    let (user_name, user_uid, user_groups) = match env.user.take() {
        Some(u) => (cow(u.username), cow(u.uid), texts(u.groups)),
        None => (None, None, Vec::new()),
    };
    let (impersonated_user, impersonated_groups) = match env.impersonated_user.take() {
        Some(u) => (cow(u.username), texts(u.groups)),
        None => (None, Vec::new()),
    };
    let source_ips: Vec<Cow<str>> = env
        .source_ips
        .take()
        .map(|ips| ips.into_iter().map(canonical_ip_text).collect())
        .unwrap_or_default();
    let api_group = has_ref.then(|| cow(object_ref.api_group).unwrap_or_default());
    let status = env.response_status.take();
    let (response_code, response_reason, response_message) = match status {
        Some(s) => (s.code, cow(s.reason), cow(s.message)),
        None => (None, None, None),
    };
    Ok(AuditEvent {
        event_time,
        cluster: wrapper.cluster.or_else(|| options_cluster(options)),
        pod: pod_of(resource.as_deref(), name.as_ref()),
        node: user_name.as_ref().and_then(node_of),
        src_ip: source_ips.first().cloned(),
        namespace: cow(object_ref.namespace),
        audit_id: match env.audit_id.take() {
            Some(id) => Some(id.0),
            // Stable across re-ingest, and the same for every stage of one request.
            None => Some(Cow::Owned(derived_audit_id([
                env.request_received_timestamp
                    .as_deref()
                    .or(env.stage_timestamp.as_deref())
                    .or(legacy_time),
                user_name.as_deref(),
                verb.as_deref(),
                env.request_uri.as_deref(),
                source_ips.first().map(|ip| &**ip),
                env.user_agent.as_deref(),
            ]))),
        },
        stage: cow(env.stage.take()),
        level: cow(env.level.take()),
        verb,
        user_name,
        user_uid,
        user_groups,
        impersonated_user,
        impersonated_groups,
        source_ips,
        user_agent: cow(env.user_agent.take()),
        resource,
        subresource: cow(object_ref.subresource),
        name,
        pod_ip,
        api_group,
        api_version: cow(object_ref.api_version),
        request_uri: cow(env.request_uri.take()).map(|uri| redact_text(&options.redactor, uri)),
        response_code,
        response_reason,
        response_message,
        decision,
        authz_reason,
        request_received_time,
        stage_time,
        request_object,
        response_object,
        annotations,
        audit_format: Cow::Borrowed(wrapper.format),
    })
}

fn texts(list: Option<Vec<Cow<str>>>) -> Vec<Cow<str>> {
    list.unwrap_or_default()
}

/// The cluster the options name for records that name none.
fn options_cluster<'a>(options: &DecodeOptions) -> Option<Cow<'a, str>> {
    options.cluster.clone().map(Cow::Owned)
}

/// `/aws/eks/<cluster>/cluster`.
fn eks_cluster(log_group: &str) -> Option<&str> {
    let rest = log_group.strip_prefix("/aws/eks/")?;
    rest.strip_suffix("/cluster")
        .or(Some(rest))
        .filter(|c| !c.is_empty())
}

/// `/SUBSCRIPTIONS/…/MANAGEDCLUSTERS/<cluster>`.
fn aks_cluster(resource_id: &str) -> Option<&str> {
    let lower = resource_id.to_ascii_lowercase();
    let at = lower.find("/managedclusters/")? + "/managedclusters/".len();
    resource_id[at..]
        .split('/')
        .next()
        .filter(|c| !c.is_empty())
}

/// What an event says about the object it is about.
struct Objects<'a> {
    /// The reference's name, else the request or response object's `metadata.name`.
    name: Option<Cow<'a, str>>,
    /// JSON text of the request and response objects, secrets redacted.
    request: Option<Cow<'a, str>>,
    response: Option<Cow<'a, str>>,
    /// `status.podIP` of a pod object: kubelets report a pod's address in status updates.
    pod_ip: Option<Cow<'a, str>>,
}

/// Looks into the request and response objects only when the reference does not say
/// everything (no name, or no resource): parsing them costs more than the rest of the event.
fn objects<'a>(
    resource: Option<&str>,
    subresource: Option<&str>,
    name: Option<Cow<'a, str>>,
    [request, response]: [Option<&'a str>; 2],
    redactor: &Redactor,
) -> Result<Objects<'a>, DecodeError> {
    let [request_head, response_head] = if name.is_none() || resource.is_none() {
        [request, response].map(|o| o.and_then(object_head))
    } else {
        [None, None]
    };
    let object_kind = match ObjectKind::of(resource, subresource) {
        ObjectKind::Other => [&request_head, &response_head]
            .into_iter()
            .flatten()
            .filter_map(|h| h.kind.as_deref())
            .map(ObjectKind::of_kind)
            .find(|k| *k != ObjectKind::Other)
            .unwrap_or(ObjectKind::Other),
        known => known,
    };
    let head_name = |head: Option<ObjectHead<'a>>| head.and_then(|h| h.metadata?.name).map(|n| n.0);
    let name = name
        .or_else(|| head_name(request_head))
        .or_else(|| head_name(response_head));
    // Only pod objects are read for their address: the request first (a status update
    // carries the new address), else the response (the pod as stored).
    let pod_ip = (resource == Some("pods"))
        .then(|| {
            [request, response]
                .into_iter()
                .flatten()
                .find_map(pod_ip_in)
        })
        .flatten();
    let text = |o: Option<&'a str>| o.map(|o| redacted(o, object_kind, redactor)).transpose();
    Ok(Objects {
        name,
        request: text(request)?,
        response: text(response)?,
        pod_ip,
    })
}

/// The canonical `status.podIP` of a pod object, if it holds an address (a pod not yet
/// scheduled has none; anything else there is not an address and is left out).
fn pod_ip_in(raw: &str) -> Option<Cow<'_, str>> {
    let head: PodStatusHead = serde_json::from_str(raw).ok()?;
    let ip = head.status?.pod_ip?;
    ip.parse::<std::net::IpAddr>().ok()?;
    Some(canonical_ip_text(ip.0))
}

fn object_head(raw: &str) -> Option<ObjectHead<'_>> {
    serde_json::from_str(raw).ok()
}

/// An object's JSON text with its secrets redacted. Parsing an object costs more than the
/// rest of the event, so a workload is parsed only when it has environment values or a
/// credential-like string, and other objects only for configured paths.
fn redacted<'a>(
    raw: &'a str,
    kind: ObjectKind,
    redactor: &Redactor,
) -> Result<Cow<'a, str>, DecodeError> {
    let worth_parsing = match kind {
        ObjectKind::Secret | ObjectKind::Token => true,
        ObjectKind::Workload => {
            // `"env":` in an object or a merge patch, `/env` in a JSON patch's path.
            [&b"\"env\""[..], b"/env"]
                .iter()
                .any(|needle| memchr::memmem::find(raw.as_bytes(), needle).is_some())
                || redactor.has_credentials(raw.as_bytes())
        }
        ObjectKind::Other => false,
    };
    if !worth_parsing && !redactor.has_extra_paths() {
        return Ok(Cow::Borrowed(raw));
    }
    let mut value: Value = serde_json::from_str(raw).map_err(DecodeError::json)?;
    redactor.redact_object(kind, &mut value);
    Ok(Cow::Owned(value.to_string()))
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
