//! Kubernetes audit events: `audit.k8s.io/v1` and `v1beta1` Events, webhook `EventList`
//! batches, and the EKS (CloudWatch), AKS (diagnostic logs) and GKE (Cloud Audit Logs)
//! wrappers, all onto [`AuditEvent`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{DecodeError, DecodeOptions, Output};
use crate::redact::Redactor;
use crate::rows::AuditEvent;
use crate::time::parse_timestamp;

type Str<'a> = Option<Cow<'a, str>>;

/// Every shape an audit record can take, read in one pass: the fields of an Event plus the
/// fields by which the wrappers are recognised.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    api_version: Str<'a>,
    #[serde(rename = "auditID", borrow)]
    audit_id: Str<'a>,
    #[serde(borrow)]
    level: Str<'a>,
    #[serde(borrow)]
    stage: Str<'a>,
    #[serde(rename = "requestURI", borrow)]
    request_uri: Str<'a>,
    #[serde(borrow)]
    verb: Str<'a>,
    #[serde(borrow)]
    user: Option<UserInfo<'a>>,
    #[serde(borrow)]
    impersonated_user: Option<UserInfo<'a>>,
    #[serde(rename = "sourceIPs", borrow)]
    source_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    user_agent: Str<'a>,
    #[serde(borrow)]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow)]
    response_status: Option<Status<'a>>,
    #[serde(borrow)]
    request_object: Option<&'a RawValue>,
    #[serde(borrow)]
    response_object: Option<&'a RawValue>,
    #[serde(borrow)]
    request_received_timestamp: Str<'a>,
    #[serde(borrow)]
    stage_timestamp: Str<'a>,
    /// v1beta1 and GKE.
    #[serde(borrow)]
    timestamp: Str<'a>,
    #[serde(borrow)]
    metadata: Option<LegacyMeta<'a>>,
    /// Kept as they came (only two are read): the column holds them as JSON text.
    #[serde(borrow)]
    annotations: Option<BTreeMap<Cow<'a, str>, &'a RawValue>>,

    // EventList
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
    // EKS through CloudWatch Logs: a subscription batch, or one exported log event.
    #[serde(borrow)]
    log_events: Option<Vec<CloudWatchEvent<'a>>>,
    #[serde(borrow)]
    log_group: Str<'a>,
    #[serde(borrow)]
    message: Str<'a>,
    #[serde(rename = "@message", borrow)]
    at_message: Str<'a>,
    // AKS diagnostic logs, alone or in an Event Hubs `records` batch.
    #[serde(borrow)]
    category: Str<'a>,
    #[serde(borrow)]
    properties: Option<AksProperties<'a>>,
    #[serde(borrow)]
    resource_id: Str<'a>,
    #[serde(borrow)]
    records: Option<Vec<&'a RawValue>>,
    // GKE Cloud Audit Logs.
    #[serde(borrow)]
    proto_payload: Option<&'a RawValue>,
    #[serde(borrow)]
    resource: Option<GcpResource<'a>>,
    #[serde(borrow)]
    operation: Option<GcpOperation<'a>>,
    #[serde(borrow)]
    insert_id: Str<'a>,
    labels: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct UserInfo<'a> {
    #[serde(borrow)]
    username: Str<'a>,
    #[serde(borrow)]
    uid: Str<'a>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(borrow)]
    resource: Str<'a>,
    #[serde(borrow)]
    namespace: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    api_group: Str<'a>,
    #[serde(borrow)]
    api_version: Str<'a>,
    #[serde(borrow)]
    subresource: Str<'a>,
}

#[derive(Deserialize)]
struct Status<'a> {
    code: Option<i32>,
    #[serde(borrow)]
    reason: Str<'a>,
    #[serde(borrow)]
    message: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyMeta<'a> {
    #[serde(borrow)]
    creation_timestamp: Str<'a>,
}

#[derive(Deserialize)]
struct CloudWatchEvent<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct AksProperties<'a> {
    #[serde(borrow)]
    log: Str<'a>,
}

#[derive(Deserialize)]
struct GcpResource<'a> {
    #[serde(borrow)]
    labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

#[derive(Deserialize)]
struct GcpOperation<'a> {
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
    #[serde(borrow)]
    caller_ip: Str<'a>,
    #[serde(borrow)]
    caller_supplied_user_agent: Str<'a>,
}

#[derive(Deserialize)]
struct GkeStatus<'a> {
    code: Option<i32>,
    #[serde(borrow)]
    message: Str<'a>,
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

pub(crate) fn decode(record: &[u8], options: &DecodeOptions, out: &mut Output<AuditEvent>) {
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
#[derive(Clone, Copy)]
struct Wrapper<'a> {
    format: &'static str,
    cluster: Option<&'a str>,
}

fn decode_nested(
    record: &str,
    options: &DecodeOptions,
    wrapper: Wrapper,
    depth: u8,
    out: &mut Output<AuditEvent>,
) {
    if depth > MAX_DEPTH {
        out.reject(
            record,
            DecodeError::invalid("record", "wrappers nested too deeply"),
        );
        return;
    }
    let env: Envelope = match serde_json::from_str(record) {
        Ok(env) => env,
        Err(e) => return out.reject(record, DecodeError::json(e)),
    };
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
            decode_nested(item.get(), options, wrapper, depth + 1, out);
        }
        return;
    }
    let eks = Wrapper {
        format: "eks",
        cluster: env
            .log_group
            .as_deref()
            .and_then(eks_cluster)
            .or(wrapper.cluster),
    };
    if let Some(events) = &env.log_events {
        for event in events {
            decode_nested(&event.message, options, eks, depth + 1, out);
        }
        return;
    }
    if let Some(message) = env.message.as_deref().or(env.at_message.as_deref()) {
        return decode_nested(message, options, eks, depth + 1, out);
    }
    if let Some(records) = &env.records {
        for item in records {
            decode_nested(item.get(), options, wrapper, depth + 1, out);
        }
        return;
    }
    if let Some(log) = env.properties.as_ref().and_then(|p| p.log.as_deref()) {
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
        let aks = Wrapper {
            format: "aks",
            cluster: env
                .resource_id
                .as_deref()
                .and_then(aks_cluster)
                .or(wrapper.cluster),
        };
        return decode_nested(log, options, aks, depth + 1, out);
    }
    let result = match env.proto_payload {
        Some(payload) => gke_event(&env, payload, options, wrapper.cluster),
        None => native_event(env, options, wrapper),
    };
    match result {
        Ok(row) => out.rows.push(row),
        Err(e) => out.reject(record, e),
    }
}

fn native_event(
    env: Envelope,
    options: &DecodeOptions,
    wrapper: Wrapper,
) -> Result<AuditEvent, DecodeError> {
    if let Some(version) = env.api_version.as_deref() {
        if !version.starts_with("audit.k8s.io/") {
            return Err(DecodeError::unrecognized(format!(
                "apiVersion '{version}' is not audit.k8s.io (a core Event is not an audit event)"
            )));
        }
    }
    let is_event =
        env.kind.as_deref() == Some("Event") || env.audit_id.is_some() || env.verb.is_some();
    if !is_event {
        return Err(DecodeError::unrecognized(
            "not an audit event (no kind Event, auditID or verb)",
        ));
    }
    let time_text = env
        .request_received_timestamp
        .as_deref()
        .or(env.stage_timestamp.as_deref())
        .or(env.timestamp.as_deref())
        .or(env
            .metadata
            .as_ref()
            .and_then(|m| m.creation_timestamp.as_deref()))
        .ok_or(DecodeError::Missing(
            "requestReceivedTimestamp (or stageTimestamp, timestamp)",
        ))?;
    let event_time =
        parse_timestamp(time_text).map_err(|r| DecodeError::invalid("timestamp", r))?;
    let optional_time = |field: &'static str, v: &Str| -> Result<Option<i64>, DecodeError> {
        v.as_deref()
            .map(|t| parse_timestamp(t).map_err(|r| DecodeError::invalid(field, r)))
            .transpose()
    };
    let request_received_time =
        optional_time("requestReceivedTimestamp", &env.request_received_timestamp)?;
    let stage_time = optional_time("stageTimestamp", &env.stage_timestamp)?;

    let object_ref = env.object_ref;
    let resource = object_ref
        .as_ref()
        .and_then(|o| o.resource.as_deref().map(str::to_owned));
    let subresource = object_ref
        .as_ref()
        .and_then(|o| o.subresource.as_deref().map(str::to_owned));
    let Objects {
        name,
        request: request_object,
        response: response_object,
        pod_ip,
    } = objects(
        resource.as_deref(),
        object_ref
            .as_ref()
            .and_then(|o| o.name.as_deref().map(str::to_owned)),
        [env.request_object, env.response_object],
        &options.redactor,
    )?;

    let (user_name, user_uid, user_groups) = match env.user {
        Some(u) => (
            u.username.map(Cow::into_owned),
            u.uid.map(Cow::into_owned),
            u.groups.unwrap_or_default(),
        ),
        None => (None, None, Vec::new()),
    };
    let (impersonated_user, impersonated_groups) = match env.impersonated_user {
        Some(u) => (
            u.username.map(Cow::into_owned),
            u.groups.unwrap_or_default(),
        ),
        None => (None, Vec::new()),
    };
    let source_ips: Vec<String> = env
        .source_ips
        .unwrap_or_default()
        .into_iter()
        .map(|ip| canonical_ip(&ip))
        .collect();
    let annotations = env.annotations;
    let annotation = |key: &str| {
        let raw = annotations.as_ref()?.get(key)?;
        serde_json::from_str::<Option<String>>(raw.get()).ok()?
    };
    let namespace = object_ref
        .as_ref()
        .and_then(|o| o.namespace.as_deref().map(str::to_owned));
    let (api_group, api_version) = match &object_ref {
        Some(o) => (
            Some(o.api_group.as_deref().unwrap_or_default().to_owned()),
            o.api_version.as_deref().map(str::to_owned),
        ),
        None => (None, None),
    };
    let status = env.response_status;
    Ok(AuditEvent {
        event_time,
        cluster: wrapper
            .cluster
            .or(options.cluster.as_deref())
            .map(str::to_owned),
        pod: pod_of(resource.as_deref(), name.as_deref()),
        node: user_name.as_deref().and_then(node_of),
        src_ip: source_ips.first().cloned(),
        namespace,
        audit_id: env.audit_id.map(Cow::into_owned),
        stage: env.stage.map(Cow::into_owned),
        level: env.level.map(Cow::into_owned),
        verb: env.verb.map(Cow::into_owned),
        user_name,
        user_uid,
        user_groups,
        impersonated_user,
        impersonated_groups,
        source_ips,
        user_agent: env.user_agent.map(Cow::into_owned),
        resource,
        subresource,
        name,
        pod_ip,
        api_group,
        api_version,
        request_uri: env.request_uri.map(Cow::into_owned),
        response_code: status.as_ref().and_then(|s| s.code),
        response_reason: status
            .as_ref()
            .and_then(|s| s.reason.as_deref().map(str::to_owned)),
        response_message: status
            .as_ref()
            .and_then(|s| s.message.as_deref().map(str::to_owned)),
        decision: annotation("authorization.k8s.io/decision"),
        authz_reason: annotation("authorization.k8s.io/reason"),
        request_received_time,
        stage_time,
        request_object,
        response_object,
        annotations: annotations.filter(|a| !a.is_empty()).map(|a| json_text(&a)),
        audit_format: wrapper.format.to_owned(),
    })
}

fn gke_event(
    env: &Envelope,
    payload: &RawValue,
    options: &DecodeOptions,
    cluster: Option<&str>,
) -> Result<AuditEvent, DecodeError> {
    let p: GkePayload = serde_json::from_str(payload.get()).map_err(DecodeError::json)?;
    let method = p
        .method_name
        .as_deref()
        .ok_or(DecodeError::Missing("protoPayload.methodName"))?;
    if !method.starts_with("io.k8s.") {
        return Err(DecodeError::unrecognized(format!(
            "GKE method '{method}' is not a Kubernetes API call"
        )));
    }
    let time_text = env
        .timestamp
        .as_deref()
        .ok_or(DecodeError::Missing("timestamp"))?;
    let event_time =
        parse_timestamp(time_text).map_err(|r| DecodeError::invalid("timestamp", r))?;
    let path = p
        .resource_name
        .as_deref()
        .map(GkeResource::parse)
        .unwrap_or_default();
    let verb = method.rsplit('.').next().map(str::to_owned);
    let gke_cluster = env
        .resource
        .as_ref()
        .and_then(|r| r.labels.as_ref())
        .and_then(|l| l.get("cluster_name"))
        .map(|c| c.to_string());
    let Objects {
        name,
        request: request_object,
        response: response_object,
        pod_ip,
    } = objects(
        path.resource.as_deref(),
        path.name.clone(),
        [p.request, p.response],
        &options.redactor,
    )?;
    let user_name = p
        .authentication_info
        .and_then(|a| a.principal_email)
        .map(Cow::into_owned);
    let (src_ip, user_agent) = match p.request_metadata {
        Some(m) => (
            m.caller_ip.as_deref().map(canonical_ip),
            m.caller_supplied_user_agent.map(Cow::into_owned),
        ),
        None => (None, None),
    };
    let label = |key: &str| {
        env.labels
            .as_ref()
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let decision = label("authorization.k8s.io/decision").or_else(|| {
        if p.authorization_info.is_empty() {
            None
        } else if p.authorization_info.iter().all(|a| a.granted == Some(true)) {
            Some("allow".to_owned())
        } else {
            Some("forbid".to_owned())
        }
    });
    let stage = env.operation.as_ref().map(|o| match (o.first, o.last) {
        (Some(true), Some(false)) => "ResponseStarted".to_owned(),
        _ => "ResponseComplete".to_owned(),
    });
    let (status_code, status_message) = match p.status {
        Some(s) => (s.code, s.message.map(Cow::into_owned)),
        None => (None, None),
    };
    Ok(AuditEvent {
        event_time,
        cluster: gke_cluster
            .or_else(|| cluster.map(str::to_owned))
            .or_else(|| options.cluster.clone()),
        namespace: path.namespace.clone(),
        pod: pod_of(path.resource.as_deref(), name.as_deref()),
        node: user_name.as_deref().and_then(node_of),
        source_ips: src_ip.iter().cloned().collect(),
        src_ip,
        audit_id: env
            .operation
            .as_ref()
            .and_then(|o| o.id.as_deref().map(str::to_owned))
            .or_else(|| env.insert_id.as_deref().map(str::to_owned)),
        stage,
        level: Some(
            if response_object.is_some() {
                "RequestResponse"
            } else if request_object.is_some() {
                "Request"
            } else {
                "Metadata"
            }
            .to_owned(),
        ),
        verb,
        user_name,
        user_agent,
        resource: path.resource,
        subresource: path.subresource,
        name,
        pod_ip,
        api_group: path.group,
        api_version: path.version,
        request_uri: p.resource_name.map(Cow::into_owned),
        response_code: status_code.map(http_code_of_grpc),
        response_message: status_message,
        decision,
        authz_reason: label("authorization.k8s.io/reason"),
        request_object,
        response_object,
        annotations: env.labels.as_ref().filter(|l| !l.is_empty()).map(json_text),
        audit_format: "gke".to_owned(),
        ..AuditEvent::default()
    })
}

/// `core/v1/namespaces/default/pods/nginx/exec` and friends.
#[derive(Default)]
struct GkeResource {
    group: Option<String>,
    version: Option<String>,
    namespace: Option<String>,
    resource: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl GkeResource {
    fn parse(path: &str) -> GkeResource {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let owned = |i: usize, from: &[&str]| from.get(i).map(|s| s.to_string());
        if parts.len() < 3 {
            return GkeResource::default();
        }
        let group = if parts[0] == "core" { "" } else { parts[0] };
        let rest = &parts[2..];
        let mut r = GkeResource {
            group: Some(group.to_owned()),
            version: Some(parts[1].to_owned()),
            ..GkeResource::default()
        };
        if rest[0] == "namespaces" && rest.len() >= 3 {
            r.namespace = owned(1, rest);
            r.resource = owned(2, rest);
            r.name = owned(3, rest);
            r.subresource = owned(4, rest);
        } else {
            r.resource = owned(0, rest);
            r.name = owned(1, rest);
            r.subresource = owned(2, rest);
            if rest[0] == "namespaces" {
                r.namespace = r.name.clone();
            }
        }
        r
    }
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
struct Objects {
    /// The reference's name, else the request or response object's `metadata.name`.
    name: Option<String>,
    /// JSON text of the request and response objects, secrets redacted.
    request: Option<String>,
    response: Option<String>,
    /// `status.podIP` of a pod object: kubelets report a pod's address in status updates.
    pod_ip: Option<String>,
}

/// Looks into the request and response objects only when the reference does not say
/// everything (no name, or no resource): parsing them costs more than the rest of the event.
fn objects(
    resource: Option<&str>,
    name: Option<String>,
    [request, response]: [Option<&RawValue>; 2],
    redactor: &Redactor,
) -> Result<Objects, DecodeError> {
    let heads = if name.is_none() || resource.is_none() {
        [request, response].map(|o| o.and_then(object_head))
    } else {
        [None, None]
    };
    let name = name.or_else(|| heads.iter().flatten().find_map(|h| h.1.clone()));
    let is_secret = resource == Some("secrets")
        || heads
            .iter()
            .flatten()
            .any(|h| h.0.as_deref().is_some_and(is_secret_kind));
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
    let text = |o: Option<&RawValue>| o.map(|o| redacted(o, is_secret, redactor)).transpose();
    Ok(Objects {
        name,
        request: text(request)?,
        response: text(response)?,
        pod_ip,
    })
}

/// The canonical `status.podIP` of a pod object, if it holds an address (a pod not yet
/// scheduled has none; anything else there is not an address and is left out).
fn pod_ip_in(raw: &RawValue) -> Option<String> {
    let head: PodStatusHead = serde_json::from_str(raw.get()).ok()?;
    let ip = head.status?.pod_ip?;
    ip.parse::<std::net::IpAddr>().ok()?;
    Some(canonical_ip(&ip))
}

fn object_head(raw: &RawValue) -> Option<(Option<String>, Option<String>)> {
    let head: ObjectHead = serde_json::from_str(raw.get()).ok()?;
    Some((
        head.kind.map(Cow::into_owned),
        head.metadata.and_then(|m| m.name).map(Cow::into_owned),
    ))
}

fn is_secret_kind(kind: &str) -> bool {
    kind == "Secret" || kind == "SecretList"
}

fn redacted(raw: &RawValue, is_secret: bool, redactor: &Redactor) -> Result<String, DecodeError> {
    if !is_secret && !redactor.has_extra_paths() {
        return Ok(raw.get().to_owned());
    }
    let mut value: Value = serde_json::from_str(raw.get()).map_err(DecodeError::json)?;
    if is_secret {
        redactor.redact_secret_object(&mut value);
    }
    redactor.redact_paths(&mut value);
    Ok(value.to_string())
}

fn pod_of(resource: Option<&str>, name: Option<&str>) -> Option<String> {
    (resource == Some("pods"))
        .then(|| name.map(str::to_owned))
        .flatten()
}

fn node_of(user: &str) -> Option<String> {
    user.strip_prefix("system:node:").map(str::to_owned)
}

/// IPs as text in canonical form: `::ffff:10.0.0.1` is `10.0.0.1`, IPv6 is compressed.
pub(crate) fn canonical_ip(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
