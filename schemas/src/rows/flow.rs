//! `network_flows`: one row per flow record, whichever exporter wrote it.

use arrow::datatypes::Field;

use super::columns::table_columns;
use crate::table::{boolean, int, int32, shared_fields, text, text_list, ts, Table};

/// One network flow record from VPC flow logs, Hubble or Calico.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlowRecord {
    pub event_time: i64,
    pub cluster: Option<String>,
    /// The namespace of the workload that observed the flow: source, else destination.
    pub namespace: Option<String>,
    /// The pod of that workload.
    pub pod: Option<String>,
    pub node: Option<String>,
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    pub src_port: Option<i32>,
    pub dst_port: Option<i32>,
    /// `TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, else the IANA number as text.
    pub protocol: Option<String>,
    pub bytes: Option<i64>,
    pub packets: Option<i64>,
    /// Normalised verdict: `allow`, `deny`, `redirect`, `audit`, `error`, or the source's
    /// own word in lower case.
    pub action: Option<String>,
    /// The verdict exactly as the source wrote it.
    pub verdict: Option<String>,
    pub src_namespace: Option<String>,
    pub src_pod: Option<String>,
    pub src_labels: Vec<String>,
    pub src_identity: Option<i64>,
    pub dst_namespace: Option<String>,
    pub dst_pod: Option<String>,
    pub dst_labels: Vec<String>,
    pub dst_identity: Option<i64>,
    /// `ingress` or `egress`.
    pub direction: Option<String>,
    pub is_reply: Option<bool>,
    pub drop_reason: Option<String>,
    pub tcp_flags: Option<String>,
    /// `dns`, `http` or `kafka` for L7 flows.
    pub l7_protocol: Option<String>,
    pub dns_query: Option<String>,
    pub http_method: Option<String>,
    pub http_url: Option<String>,
    pub http_code: Option<i32>,
    pub summary: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// VPC flow log status: `OK`, `NODATA`, `SKIPDATA`.
    pub log_status: Option<String>,
    pub account_id: Option<String>,
    pub interface_id: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub instance_id: Option<String>,
    pub region: Option<String>,
    /// Fields of the source this table has no column for, as JSON text.
    pub extra: Option<String>,
    /// `aws-vpc-flow`, `gcp-vpc-flow`, `hubble` or `calico`.
    pub flow_format: String,
}

table_columns!(
    /// `network_flows` being built from [`FlowRecord`]s.
    FlowColumns of Table::NetworkFlows, from FlowRecord {
        TimeColumn: [event_time, start_time, end_time],
        TextColumn: [
            cluster, namespace, pod, node, src_ip, dst_ip, protocol, action, verdict,
            src_namespace, src_pod, dst_namespace, dst_pod, direction, drop_reason,
            tcp_flags, l7_protocol, dns_query, http_method, http_url, summary, log_status,
            account_id, interface_id, vpc_id, subnet_id, instance_id, region, extra,
            flow_format,
        ],
        Int32Column: [src_port, dst_port, http_code],
        Int64Column: [bytes, packets, src_identity, dst_identity],
        BoolColumn: [is_reply],
        TextListColumn: [src_labels, dst_labels],
    }
);

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
