//! `k8s_audit`: one row per audit event (one stage of one API request).

use arrow::array::ArrayRef;
use arrow::datatypes::Field;

use super::{columns, EventRow};
use crate::table::{int32, shared_fields, text, text_list, ts, Table};

/// One Kubernetes API-server audit event, whatever wrapper it arrived in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AuditEvent {
    /// `stageTimestamp`, else `requestReceivedTimestamp`, else the legacy `timestamp`.
    pub event_time: i64,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    /// The pod the request was about (resource `pods`), so audit joins runtime and flows.
    pub pod: Option<String>,
    /// The node a kubelet identity (`system:node:<name>`) speaks for.
    pub node: Option<String>,
    /// First of `sourceIPs`: the client as the API server saw it.
    pub src_ip: Option<String>,
    pub audit_id: Option<String>,
    pub stage: Option<String>,
    pub level: Option<String>,
    pub verb: Option<String>,
    pub user_name: Option<String>,
    pub user_uid: Option<String>,
    pub user_groups: Vec<String>,
    pub impersonated_user: Option<String>,
    pub impersonated_groups: Vec<String>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    /// `objectRef.name`, else `metadata.name` of the request or response object.
    pub name: Option<String>,
    /// The address a pod object gives its pod (`status.podIP`): kubelets report it in pod
    /// status updates, so this column says which pod held an address when.
    pub pod_ip: Option<String>,
    /// Empty string for the core group, as Kubernetes spells it.
    pub api_group: Option<String>,
    pub api_version: Option<String>,
    pub request_uri: Option<String>,
    pub response_code: Option<i32>,
    pub response_reason: Option<String>,
    pub response_message: Option<String>,
    /// `authorization.k8s.io/decision` annotation: `allow` or `forbid`.
    pub decision: Option<String>,
    pub authz_reason: Option<String>,
    pub request_received_time: Option<i64>,
    pub stage_time: Option<i64>,
    /// JSON text, secrets redacted.
    pub request_object: Option<String>,
    /// JSON text, secrets redacted.
    pub response_object: Option<String>,
    /// JSON text of all annotations.
    pub annotations: Option<String>,
    /// Which wrapper it came in: `k8s`, `eks`, `aks` or `gke`.
    pub audit_format: String,
}

impl EventRow for AuditEvent {
    const TABLE: Table = Table::K8sAudit;
    fn event_time(&self) -> i64 {
        self.event_time
    }
    fn column(rows: &[Self], name: &str) -> Option<ArrayRef> {
        columns::by_name!(rows, name, {
            time: [event_time, request_received_time, stage_time],
            text: [
                cluster, namespace, pod, node, src_ip, audit_id, stage, level, verb, user_name,
                user_uid, impersonated_user, user_agent, resource, subresource, name, pod_ip,
                api_group, api_version, request_uri, response_reason, response_message,
                decision, authz_reason, request_object, response_object, annotations,
                audit_format,
            ],
            texts: [user_groups, impersonated_groups, source_ips],
            int32: [response_code],
        })
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
        text("pod_ip"),
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
