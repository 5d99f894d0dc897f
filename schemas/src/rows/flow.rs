//! `network_flows`: one row per flow record, whichever exporter wrote it.

use arrow::datatypes::Field;
use serde::Serialize;

use super::{is_none, EventRow};
use crate::table::{boolean, int, int32, shared_fields, text, text_list, ts, Table};

/// One network flow record from VPC flow logs, Hubble or Calico.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    pub event_time: i64,
    #[serde(skip_serializing_if = "is_none")]
    pub cluster: Option<String>,
    /// The namespace of the workload that observed the flow: source, else destination.
    #[serde(skip_serializing_if = "is_none")]
    pub namespace: Option<String>,
    /// The pod of that workload.
    #[serde(skip_serializing_if = "is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub src_ip: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub dst_ip: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub src_port: Option<i32>,
    #[serde(skip_serializing_if = "is_none")]
    pub dst_port: Option<i32>,
    /// `TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, else the IANA number as text.
    #[serde(skip_serializing_if = "is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub bytes: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub packets: Option<i64>,
    /// Normalised verdict: `allow`, `deny`, `redirect`, `audit`, `error`, or the source's
    /// own word in lower case.
    #[serde(skip_serializing_if = "is_none")]
    pub action: Option<String>,
    /// The verdict exactly as the source wrote it.
    #[serde(skip_serializing_if = "is_none")]
    pub verdict: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub src_namespace: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub src_pod: Option<String>,
    pub src_labels: Vec<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub src_identity: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub dst_namespace: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub dst_pod: Option<String>,
    pub dst_labels: Vec<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub dst_identity: Option<i64>,
    /// `ingress` or `egress`.
    #[serde(skip_serializing_if = "is_none")]
    pub direction: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub is_reply: Option<bool>,
    #[serde(skip_serializing_if = "is_none")]
    pub drop_reason: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub tcp_flags: Option<String>,
    /// `dns`, `http` or `kafka` for L7 flows.
    #[serde(skip_serializing_if = "is_none")]
    pub l7_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub dns_query: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub http_method: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub http_url: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub http_code: Option<i32>,
    #[serde(skip_serializing_if = "is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub start_time: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub end_time: Option<i64>,
    /// VPC flow log status: `OK`, `NODATA`, `SKIPDATA`.
    #[serde(skip_serializing_if = "is_none")]
    pub log_status: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub interface_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub subnet_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub region: Option<String>,
    /// Fields of the source this table has no column for, as JSON text.
    #[serde(skip_serializing_if = "is_none")]
    pub extra: Option<String>,
    /// `aws-vpc-flow`, `gcp-vpc-flow`, `hubble` or `calico`.
    pub flow_format: String,
}

impl EventRow for FlowRecord {
    const TABLE: Table = Table::NetworkFlows;
    fn event_time(&self) -> i64 {
        self.event_time
    }
}

pub(crate) fn fields() -> Vec<Field> {
    let mut f = shared_fields(true);
    f.extend([
        int("bytes"),
        int("packets"),
        text("action"),
        text("verdict"),
        text("src_namespace"),
        text("src_pod"),
        text_list("src_labels"),
        int("src_identity"),
        text("dst_namespace"),
        text("dst_pod"),
        text_list("dst_labels"),
        int("dst_identity"),
        text("direction"),
        boolean("is_reply"),
        text("drop_reason"),
        text("tcp_flags"),
        text("l7_protocol"),
        text("dns_query"),
        text("http_method"),
        text("http_url"),
        int32("http_code"),
        text("summary"),
        ts("start_time"),
        ts("end_time"),
        text("log_status"),
        text("account_id"),
        text("interface_id"),
        text("vpc_id"),
        text("subnet_id"),
        text("instance_id"),
        text("region"),
        text("extra"),
        text("flow_format"),
    ]);
    f
}
