//! A native `audit.k8s.io` Event onto an [`AuditEvent`] row.

use std::borrow::Cow;

use super::objects::{objects, Objects};
use super::path::ResourcePath;
use super::wrappers::Wrapper;
use super::{
    cow, derived_audit_id, node_of, options_cluster, pod_of, redact_text, Annotations, Envelope,
    ObjectRef,
};
use crate::decode::ip::canonical_ip_text;
use crate::decode::{DecodeError, DecodeOptions};
use crate::rows::AuditEvent;
use crate::time::parse_timestamp;

/// The row of a plain event, its texts taken out of the envelope.
pub(super) fn native_event<'a>(
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

pub(super) fn texts(list: Option<Vec<Cow<str>>>) -> Vec<Cow<str>> {
    list.unwrap_or_default()
}
