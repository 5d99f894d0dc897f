//! GCP VPC flow logs as Cloud Logging writes them: `jsonPayload.connection` and friends,
//! with 64-bit numbers sent as strings.

use serde_json::Map;

use super::json::{self, at, extra_text, int, ip, port, protocol_name, text};
use super::{DecodeError, DecodeOptions};
use crate::rows::FlowRecord;

pub(crate) fn decode(record: &[u8], options: &DecodeOptions) -> Result<FlowRecord, DecodeError> {
    let entry = json::parse_object(record)?;
    let p = at(&entry, "jsonPayload").ok_or(DecodeError::Missing("jsonPayload"))?;
    if at(p, "connection").is_none() {
        return Err(DecodeError::Missing("jsonPayload.connection"));
    }
    let start_time = json::time(p, "start_time")?;
    let event_time = match start_time {
        Some(t) => t,
        None => json::time(&entry, "timestamp")?
            .ok_or(DecodeError::Missing("jsonPayload.start_time"))?,
    };
    let reporter = text(p, "reporter")?;
    let src_namespace = text(p, "src_gke_details.pod.pod_namespace")?;
    let src_pod = text(p, "src_gke_details.pod.pod_name")?;
    let dst_namespace = text(p, "dest_gke_details.pod.pod_namespace")?;
    let dst_pod = text(p, "dest_gke_details.pod.pod_name")?;
    let reported_by_dest = reporter.as_deref() == Some("DEST");
    // The reporting side's VM is the node that saw the flow.
    let side = if reported_by_dest { &DEST } else { &SRC };
    let mut extra = Map::new();
    for (key, path) in [
        ("reporter", "reporter"),
        ("rtt_msec", "rtt_msec"),
        ("src_location", "src_location"),
        ("dest_location", "dest_location"),
        ("src_vpc", "src_vpc"),
        ("dest_vpc", "dest_vpc"),
        ("src_service", "src_gke_details.service"),
        ("dest_service", "dest_gke_details.service"),
    ] {
        if let Some(v) = at(p, path) {
            extra.insert(key.to_owned(), v.clone());
        }
    }
    let (namespace, pod) = if reported_by_dest {
        (dst_namespace.clone(), dst_pod.clone())
    } else {
        (src_namespace.clone(), src_pod.clone())
    };
    Ok(FlowRecord {
        event_time,
        cluster: text(p, side.cluster)?
            .or(text(p, "src_gke_details.cluster.cluster_name")?)
            .or(text(p, "dest_gke_details.cluster.cluster_name")?)
            .or_else(|| options.cluster.clone()),
        namespace: namespace
            .or_else(|| src_namespace.clone())
            .or_else(|| dst_namespace.clone()),
        pod: pod.or_else(|| src_pod.clone()).or_else(|| dst_pod.clone()),
        node: text(p, side.vm)?,
        src_ip: ip(p, "connection.src_ip")?,
        dst_ip: ip(p, "connection.dest_ip")?,
        src_port: port(p, "connection.src_port")?,
        dst_port: port(p, "connection.dest_port")?,
        protocol: int(p, "connection.protocol")?.map(protocol_name),
        bytes: int(p, "bytes_sent")?,
        packets: int(p, "packets_sent")?,
        src_namespace,
        src_pod,
        dst_namespace,
        dst_pod,
        direction: reporter.map(|r| if r == "DEST" { "ingress" } else { "egress" }.to_owned()),
        start_time,
        end_time: json::time(p, "end_time")?,
        vpc_id: text(p, side.vpc)?,
        subnet_id: text(p, side.subnet)?,
        instance_id: text(p, side.vm)?,
        region: text(p, side.region)?,
        account_id: text(p, side.project)?,
        extra: extra_text(extra),
        flow_format: "gcp-vpc-flow".to_owned(),
        ..FlowRecord::default()
    })
}

/// Where the reporting side's details live.
struct Side {
    cluster: &'static str,
    vm: &'static str,
    vpc: &'static str,
    subnet: &'static str,
    region: &'static str,
    project: &'static str,
}

const SRC: Side = Side {
    cluster: "src_gke_details.cluster.cluster_name",
    vm: "src_instance.vm_name",
    vpc: "src_vpc.vpc_name",
    subnet: "src_vpc.subnetwork_name",
    region: "src_instance.region",
    project: "src_instance.project_id",
};

const DEST: Side = Side {
    cluster: "dest_gke_details.cluster.cluster_name",
    vm: "dest_instance.vm_name",
    vpc: "dest_vpc.vpc_name",
    subnet: "dest_vpc.subnetwork_name",
    region: "dest_instance.region",
    project: "dest_instance.project_id",
};
