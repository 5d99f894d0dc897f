//! What an audit event's request and response objects say: the object's name and a pod's
//! address where the reference lacks them, and their JSON text with secrets redacted.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::Str;
use crate::decode::ip::canonical_ip_text;
use crate::decode::DecodeError;
use crate::redact::{ObjectKind, Redactor};

/// The name and kind of a request or response object, read without building the object.
#[derive(Deserialize)]
pub(super) struct ObjectHead<'a> {
    #[serde(borrow)]
    pub(super) kind: Str<'a>,
    #[serde(borrow)]
    pub(super) metadata: Option<ObjectMeta<'a>>,
}

/// Just the address of a pod object (or of a status patch to one).
#[derive(Deserialize)]
pub(super) struct PodStatusHead<'a> {
    #[serde(borrow)]
    pub(super) status: Option<PodStatus<'a>>,
}

#[derive(Deserialize)]
pub(super) struct PodStatus<'a> {
    #[serde(borrow, rename = "podIP")]
    pub(super) pod_ip: Str<'a>,
}

#[derive(Deserialize)]
pub(super) struct ObjectMeta<'a> {
    #[serde(borrow)]
    pub(super) name: Str<'a>,
}

/// What an event says about the object it is about.
pub(super) struct Objects<'a> {
    /// The reference's name, else the request or response object's `metadata.name`.
    pub(super) name: Option<Cow<'a, str>>,
    /// JSON text of the request and response objects, secrets redacted.
    pub(super) request: Option<Cow<'a, str>>,
    pub(super) response: Option<Cow<'a, str>>,
    /// `status.podIP` of a pod object: kubelets report a pod's address in status updates.
    pub(super) pod_ip: Option<Cow<'a, str>>,
}

/// Looks into the request and response objects only when the reference does not say
/// everything (no name, or no resource): parsing them costs more than the rest of the event.
pub(super) fn objects<'a>(
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
pub(super) fn pod_ip_in(raw: &str) -> Option<Cow<'_, str>> {
    let head: PodStatusHead = serde_json::from_str(raw).ok()?;
    let ip = head.status?.pod_ip?;
    ip.parse::<std::net::IpAddr>().ok()?;
    Some(canonical_ip_text(ip.0))
}

pub(super) fn object_head(raw: &str) -> Option<ObjectHead<'_>> {
    serde_json::from_str(raw).ok()
}

/// An object's JSON text with its secrets redacted. Parsing an object costs more than the
/// rest of the event, so a workload is parsed only when it has environment values or a
/// credential-like string, and other objects only for configured paths.
pub(super) fn redacted<'a>(
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
