//! GKE's Cloud Audit Log entries for the Kubernetes API (`protoPayload.methodName`
//! `io.k8s.…`), as Cloud Logging exports them and as pipelines pass them on: often without
//! `logName`, `insertId`, `@type`, `serviceName` or `status`, with the time as
//! `receiveTimestamp` only, the caller's address as `callerIP`, the object named only by
//! `methodName`, and a failure said only by the `Status` object in `response`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::objects::{objects, Objects};
use super::path::ResourcePath;
use super::{cow, derived_audit_id, json_text, node_of, options_cluster, pod_of, Envelope, Str};
use crate::decode::ip::canonical_ip_text;
use crate::decode::{DecodeError, DecodeOptions};
use crate::rows::AuditEvent;
use crate::time::parse_timestamp;

#[derive(Deserialize)]
pub(super) struct GcpResource<'a> {
    #[serde(borrow)]
    labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

#[derive(Deserialize)]
pub(super) struct GcpOperation<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    first: Option<bool>,
    last: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GkePayload<'a> {
    #[serde(borrow)]
    method_name: Str<'a>,
    #[serde(borrow)]
    resource_name: Str<'a>,
    #[serde(borrow)]
    authentication_info: Option<GkeAuthn<'a>>,
    #[serde(default)]
    authorization_info: Vec<GkeAuthz>,
    #[serde(borrow)]
    request_metadata: Option<GkeRequestMetadata<'a>>,
    #[serde(borrow)]
    status: Option<GkeStatus<'a>>,
    #[serde(borrow)]
    request: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GkeAuthn<'a> {
    #[serde(borrow)]
    principal_email: Str<'a>,
}

#[derive(Deserialize)]
struct GkeAuthz {
    granted: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GkeRequestMetadata<'a> {
    /// Cloud Logging writes `callerIp`; several exporters and SIEMs spell it `callerIP`.
    #[serde(borrow, alias = "callerIP")]
    caller_ip: Str<'a>,
    #[serde(borrow)]
    caller_supplied_user_agent: Str<'a>,
}

/// The gRPC status of the call. Proto3 leaves a zero out of JSON: `{}` is OK.
#[derive(Deserialize)]
struct GkeStatus<'a> {
    code: Option<i32>,
    #[serde(borrow)]
    message: Str<'a>,
}

/// A Kubernetes `Status` object in `response`: `{"status": "Failure", "code": 403,
/// "reason": "Forbidden"}`. Read loosely: any other object has a `status` of another type,
/// and is not a Status.
#[derive(Deserialize)]
struct ResponseStatus<'a> {
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

/// How the call ended, as HTTP code, reason and message.
type Outcome<'a> = (Option<i32>, Option<Cow<'a, str>>, Option<Cow<'a, str>>);

/// The outcome from `status` when the entry has one, else from a `Status` in `response`,
/// else unknown (not failed: many exports leave `status` out of successful calls).
fn outcome<'a>(status: Option<GkeStatus<'a>>, response: Option<&'a RawValue>) -> Outcome<'a> {
    if let Some(s) = status {
        return (
            Some(http_code_of_grpc(s.code.unwrap_or(0))),
            None,
            cow(s.message),
        );
    }
    let Some(head) = response.and_then(|r| serde_json::from_str::<ResponseStatus>(r.get()).ok())
    else {
        return (None, None, None);
    };
    let text = |v: Option<&RawValue>| {
        v.and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .map(Cow::<str>::Owned)
    };
    let code = head
        .code
        .and_then(|c| serde_json::from_str::<i32>(c.get()).ok())
        .filter(|c| (100..600).contains(c));
    let reason = text(head.reason).filter(|r| !r.is_empty());
    match text(head.status).as_deref() {
        Some("Success") => (code.or(Some(200)), reason, text(head.message)),
        Some("Failure") => (
            code.or_else(|| reason.as_deref().and_then(http_code_of_reason)),
            // A Failure that names no reason still says it failed.
            reason.or(Some(Cow::Borrowed("Failure"))),
            text(head.message),
        ),
        _ => (None, None, None),
    }
}

pub(super) fn gke_event<'a>(
    env: &Envelope<'a>,
    payload: &'a str,
    options: &DecodeOptions,
    cluster: Option<Cow<'a, str>>,
) -> Result<AuditEvent<'a>, DecodeError> {
    let p: GkePayload<'a> = serde_json::from_str(payload).map_err(DecodeError::json)?;
    let method = p
        .method_name
        .as_deref()
        .ok_or(DecodeError::Missing("protoPayload.methodName"))?;
    if !method.starts_with("io.k8s.") {
        return Err(DecodeError::unrecognized(format!(
            "GKE method '{method}' is not a Kubernetes API call"
        )));
    }
    let (time_field, time_text) = match (&env.timestamp, &env.receive_timestamp) {
        (Some(t), _) => ("timestamp", &**t),
        (None, Some(t)) => ("receiveTimestamp", &**t),
        (None, None) => return Err(DecodeError::Missing("timestamp (or receiveTimestamp)")),
    };
    let event_time = parse_timestamp(time_text).map_err(|r| DecodeError::invalid(time_field, r))?;
    let from_method = ResourcePath::from_gke_method(method);
    let path = p
        .resource_name
        .as_deref()
        .and_then(ResourcePath::from_gke_resource_name)
        .or_else(|| from_method.as_ref().map(|(path, _)| path.clone()))
        .unwrap_or_default();
    let verb = match from_method {
        Some((_, verb)) => verb,
        None => method.rsplit('.').next().unwrap_or_default().to_owned(),
    };
    let gke_cluster = env
        .resource
        .as_ref()
        .and_then(|r| r.labels.as_ref())
        .and_then(|l| l.get("cluster_name"))
        .map(|c| Cow::Owned(c.to_string()));
    let Objects {
        name,
        request: request_object,
        response: response_object,
        pod_ip,
    } = objects(
        path.resource.as_deref(),
        path.subresource.as_deref(),
        path.name.clone().map(Cow::Owned),
        [p.request, p.response].map(|o| o.map(RawValue::get)),
        &options.redactor,
    )?;
    let user_name = p.authentication_info.and_then(|a| cow(a.principal_email));
    let (src_ip, user_agent) = match p.request_metadata {
        Some(m) => (
            m.caller_ip.map(|ip| canonical_ip_text(ip.0)),
            cow(m.caller_supplied_user_agent),
        ),
        None => (None, None),
    };
    let label = |key: &str| {
        env.labels
            .as_ref()
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(|v| Cow::Owned(v.to_owned()))
    };
    let decision = label("authorization.k8s.io/decision").or_else(|| {
        if p.authorization_info.is_empty() {
            None
        } else if p.authorization_info.iter().all(|a| a.granted == Some(true)) {
            Some(Cow::Borrowed("allow"))
        } else {
            Some(Cow::Borrowed("forbid"))
        }
    });
    // One entry per call unless `operation` says this is the first of two.
    let stage = match env.operation.as_ref().map(|o| (o.first, o.last)) {
        Some((Some(true), Some(false))) => "ResponseStarted",
        _ => "ResponseComplete",
    };
    let (response_code, response_reason, response_message) = outcome(p.status, p.response);
    let level = if response_object.is_some() {
        "RequestResponse"
    } else if request_object.is_some() {
        "Request"
    } else {
        "Metadata"
    };
    let audit_id = match env
        .operation
        .as_ref()
        .and_then(|o| o.id.as_deref())
        .or(env.insert_id.as_deref())
    {
        Some(id) => id.to_owned(),
        None => derived_audit_id([
            Some(time_text),
            user_name.as_deref(),
            Some(method),
            p.resource_name.as_deref(),
            src_ip.as_deref(),
            user_agent.as_deref(),
        ]),
    };
    let owned = |t: Option<String>| t.map(Cow::Owned);
    Ok(AuditEvent {
        event_time,
        cluster: gke_cluster.or(cluster).or_else(|| options_cluster(options)),
        namespace: owned(path.namespace),
        pod: pod_of(path.resource.as_deref(), name.as_ref()),
        node: user_name.as_ref().and_then(node_of),
        source_ips: src_ip.iter().cloned().collect(),
        src_ip,
        audit_id: Some(Cow::Owned(audit_id)),
        stage: Some(Cow::Borrowed(stage)),
        level: Some(Cow::Borrowed(level)),
        verb: Some(Cow::Owned(verb)),
        user_name,
        user_agent,
        resource: owned(path.resource),
        subresource: owned(path.subresource),
        name,
        pod_ip,
        api_group: owned(path.group),
        api_version: owned(path.version),
        request_uri: cow(p.resource_name),
        response_code,
        response_reason,
        response_message,
        decision,
        authz_reason: label("authorization.k8s.io/reason"),
        request_object,
        response_object,
        annotations: env
            .labels
            .as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| Cow::Owned(json_text(l))),
        audit_format: Cow::Borrowed("gke"),
        ..AuditEvent::default()
    })
}

/// GKE reports the gRPC status of the call; responders think in HTTP codes.
fn http_code_of_grpc(code: i32) -> i32 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// The HTTP code the API server answers a `Status` reason with (`metav1.StatusReason`).
fn http_code_of_reason(reason: &str) -> Option<i32> {
    Some(match reason {
        "BadRequest" => 400,
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "NotFound" => 404,
        "MethodNotAllowed" => 405,
        "NotAcceptable" => 406,
        "AlreadyExists" | "Conflict" => 409,
        "Gone" | "Expired" => 410,
        "RequestEntityTooLarge" => 413,
        "UnsupportedMediaType" => 415,
        "Invalid" => 422,
        "TooManyRequests" => 429,
        "InternalError" | "ServerTimeout" => 500,
        "ServiceUnavailable" => 503,
        "Timeout" => 504,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_of(status: Option<&str>, response: Option<&str>) -> (Option<i32>, Option<String>) {
        let status = status.map(|s| serde_json::from_str::<GkeStatus>(s).unwrap());
        let response = response.map(|r| serde_json::from_str::<&RawValue>(r).unwrap());
        let (code, reason, _) = outcome(status, response);
        (code, reason.map(Cow::into_owned))
    }

    #[test]
    fn the_outcome_comes_from_status_else_a_status_response_else_is_unknown() {
        assert_eq!(outcome_of(Some("{}"), None), (Some(200), None));
        assert_eq!(outcome_of(Some(r#"{"code":7}"#), None), (Some(403), None));
        let failure = r#"{"status":"Failure","reason":"Forbidden","message":"no"}"#;
        assert_eq!(
            outcome_of(None, Some(failure)),
            (Some(403), Some("Forbidden".into()))
        );
        assert_eq!(
            outcome_of(None, Some(r#"{"status":"Failure"}"#)),
            (None, Some("Failure".into()))
        );
        assert_eq!(
            outcome_of(
                None,
                Some(r#"{"kind":"Status","status":"Failure","code":409,"reason":"AlreadyExists"}"#)
            ),
            (Some(409), Some("AlreadyExists".into()))
        );
        assert_eq!(
            outcome_of(None, Some(r#"{"status":"Success"}"#)),
            (Some(200), None)
        );
        // A pod's status is an object: the response is a pod, and says nothing of the call.
        assert_eq!(
            outcome_of(None, Some(r#"{"kind":"Pod","status":{"phase":"Pending"}}"#)),
            (None, None)
        );
        assert_eq!(outcome_of(None, Some("[1]")), (None, None));
        assert_eq!(outcome_of(None, None), (None, None));
    }
}
