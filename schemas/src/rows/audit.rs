//! `k8s_audit`: one row per audit event (one stage of one API request).

use arrow::datatypes::Field;
use serde::Serialize;

use super::{is_none, EventRow};
use crate::table::{int32, shared_fields, text, text_list, ts, Table};

/// One Kubernetes API-server audit event, whatever wrapper it arrived in.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// `stageTimestamp`, else `requestReceivedTimestamp`, else the legacy `timestamp`.
    pub event_time: i64,
    #[serde(skip_serializing_if = "is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub namespace: Option<String>,
    /// The pod the request was about (resource `pods`), so audit joins runtime and flows.
    #[serde(skip_serializing_if = "is_none")]
    pub pod: Option<String>,
    /// The node a kubelet identity (`system:node:<name>`) speaks for.
    #[serde(skip_serializing_if = "is_none")]
    pub node: Option<String>,
    /// First of `sourceIPs`: the client as the API server saw it.
    #[serde(skip_serializing_if = "is_none")]
    pub src_ip: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub audit_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub verb: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub user_uid: Option<String>,
    pub user_groups: Vec<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub impersonated_user: Option<String>,
    pub impersonated_groups: Vec<String>,
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub subresource: Option<String>,
    /// `objectRef.name`, else `metadata.name` of the request or response object.
    #[serde(skip_serializing_if = "is_none")]
    pub name: Option<String>,
    /// Empty string for the core group, as Kubernetes spells it.
    #[serde(skip_serializing_if = "is_none")]
    pub api_group: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub request_uri: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub response_code: Option<i32>,
    #[serde(skip_serializing_if = "is_none")]
    pub response_reason: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub response_message: Option<String>,
    /// `authorization.k8s.io/decision` annotation: `allow` or `forbid`.
    #[serde(skip_serializing_if = "is_none")]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub authz_reason: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub request_received_time: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub stage_time: Option<i64>,
    /// JSON text, secrets redacted.
    #[serde(skip_serializing_if = "is_none")]
    pub request_object: Option<String>,
    /// JSON text, secrets redacted.
    #[serde(skip_serializing_if = "is_none")]
    pub response_object: Option<String>,
    /// JSON text of all annotations.
    #[serde(skip_serializing_if = "is_none")]
    pub annotations: Option<String>,
    /// Which wrapper it came in: `k8s`, `eks`, `aks` or `gke`.
    pub audit_format: String,
}

impl EventRow for AuditEvent {
    const TABLE: Table = Table::K8sAudit;
    fn event_time(&self) -> i64 {
        self.event_time
    }
}

pub(crate) fn fields() -> Vec<Field> {
    let mut f = shared_fields(false);
    f.extend([
        text("audit_id"),
        text("stage"),
        text("level"),
        text("verb"),
        text("user_name"),
        text("user_uid"),
        text_list("user_groups"),
        text("impersonated_user"),
        text_list("impersonated_groups"),
        text_list("source_ips"),
        text("user_agent"),
        text("resource"),
        text("subresource"),
        text("name"),
        text("api_group"),
        text("api_version"),
        text("request_uri"),
        int32("response_code"),
        text("response_reason"),
        text("response_message"),
        text("decision"),
        text("authz_reason"),
        ts("request_received_time"),
        ts("stage_time"),
        text("request_object"),
        text("response_object"),
        text("annotations"),
        text("audit_format"),
    ]);
    f
}
