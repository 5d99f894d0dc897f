//! `k8s_audit`: one row per audit event (one stage of one API request).

use std::borrow::Cow;

use arrow::datatypes::Field;

use super::columns::table_columns;
use crate::table::{int32, shared_fields, text, text_list, ts, Table};

type Text<'a> = Option<Cow<'a, str>>;

/// One Kubernetes API-server audit event, whatever wrapper it arrived in. Its texts borrow
/// from the record they were decoded from where they can: most are copied once, straight
/// into their column.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AuditEvent<'a> {
    /// `requestReceivedTimestamp`, else `stageTimestamp`, else the legacy `timestamp`.
    pub event_time: i64,
    pub cluster: Text<'a>,
    pub namespace: Text<'a>,
    /// The pod the request was about (resource `pods`), so audit joins runtime and flows.
    pub pod: Text<'a>,
    /// The node a kubelet identity (`system:node:<name>`) speaks for.
    pub node: Text<'a>,
    /// First of `sourceIPs`: the client as the API server saw it.
    pub src_ip: Text<'a>,
    pub audit_id: Text<'a>,
    pub stage: Text<'a>,
    pub level: Text<'a>,
    pub verb: Text<'a>,
    pub user_name: Text<'a>,
    pub user_uid: Text<'a>,
    pub user_groups: Vec<Cow<'a, str>>,
    pub impersonated_user: Text<'a>,
    pub impersonated_groups: Vec<Cow<'a, str>>,
    pub source_ips: Vec<Cow<'a, str>>,
    pub user_agent: Text<'a>,
    pub resource: Text<'a>,
    pub subresource: Text<'a>,
    /// `objectRef.name`, else `metadata.name` of the request or response object.
    pub name: Text<'a>,
    /// The address a pod object gives its pod (`status.podIP`): kubelets report it in pod
    /// status updates, so this column says which pod held an address when.
    pub pod_ip: Text<'a>,
    /// Empty string for the core group, as Kubernetes spells it.
    pub api_group: Text<'a>,
    pub api_version: Text<'a>,
    pub request_uri: Text<'a>,
    pub response_code: Option<i32>,
    pub response_reason: Text<'a>,
    pub response_message: Text<'a>,
    /// `authorization.k8s.io/decision` annotation: `allow` or `forbid`.
    pub decision: Text<'a>,
    pub authz_reason: Text<'a>,
    pub request_received_time: Option<i64>,
    pub stage_time: Option<i64>,
    /// JSON text, secrets redacted.
    pub request_object: Text<'a>,
    /// JSON text, secrets redacted.
    pub response_object: Text<'a>,
    /// JSON text of all annotations.
    pub annotations: Text<'a>,
    /// Which wrapper it came in: `k8s`, `eks`, `aks` or `gke`.
    pub audit_format: Cow<'a, str>,
}

impl AuditEvent<'_> {
    /// The same event holding its own texts, to outlive the record it came from.
    pub fn into_owned(self) -> AuditEvent<'static> {
        fn own(t: Text) -> Text<'static> {
            t.map(|t| Cow::Owned(t.into_owned()))
        }
        fn own_all(v: Vec<Cow<str>>) -> Vec<Cow<'static, str>> {
            v.into_iter().map(|t| Cow::Owned(t.into_owned())).collect()
        }
        AuditEvent {
            event_time: self.event_time,
            cluster: own(self.cluster),
            namespace: own(self.namespace),
            pod: own(self.pod),
            node: own(self.node),
            src_ip: own(self.src_ip),
            audit_id: own(self.audit_id),
            stage: own(self.stage),
            level: own(self.level),
            verb: own(self.verb),
            user_name: own(self.user_name),
            user_uid: own(self.user_uid),
            user_groups: own_all(self.user_groups),
            impersonated_user: own(self.impersonated_user),
            impersonated_groups: own_all(self.impersonated_groups),
            source_ips: own_all(self.source_ips),
            user_agent: own(self.user_agent),
            resource: own(self.resource),
            subresource: own(self.subresource),
            name: own(self.name),
            pod_ip: own(self.pod_ip),
            api_group: own(self.api_group),
            api_version: own(self.api_version),
            request_uri: own(self.request_uri),
            response_code: self.response_code,
            response_reason: own(self.response_reason),
            response_message: own(self.response_message),
            decision: own(self.decision),
            authz_reason: own(self.authz_reason),
            request_received_time: self.request_received_time,
            stage_time: self.stage_time,
            request_object: own(self.request_object),
            response_object: own(self.response_object),
            annotations: own(self.annotations),
            audit_format: Cow::Owned(self.audit_format.into_owned()),
        }
    }
}

table_columns!(
    /// `k8s_audit` being built from [`AuditEvent`]s.
    AuditColumns of Table::K8sAudit, from AuditEvent<'_> {
        TimeColumn: [event_time, request_received_time, stage_time],
        TextColumn: [
            cluster, namespace, pod, node, src_ip, audit_id, stage, level, verb, user_name,
            user_uid, impersonated_user, user_agent, resource, subresource, name, pod_ip,
            api_group, api_version, request_uri, response_reason, response_message,
            decision, authz_reason, request_object, response_object, annotations,
            audit_format,
        ],
        TextListColumn: [user_groups, impersonated_groups, source_ips],
        Int32Column: [response_code],
    }
);

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
