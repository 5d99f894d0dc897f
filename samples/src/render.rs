//! How each exporter writes down what happened: one function per native format.

use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};

use crate::cluster::{self, NODES, PODS};
use crate::model::{ApiCall, Endpoint, FalcoAlert, Flow, Micros, ProcessEvent, ProcessKind};

pub fn rfc3339(t: Micros) -> String {
    DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn rfc3339_nanos(t: Micros) -> String {
    DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn request_uri(c: &ApiCall) -> String {
    let mut uri = if c.api_group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{}/v1", c.api_group)
    };
    if let Some(ns) = &c.namespace {
        uri.push_str(&format!("/namespaces/{ns}"));
    }
    uri.push_str(&format!("/{}", c.resource));
    if let Some(name) = &c.name {
        if c.verb != "create" || c.subresource.is_some() {
            uri.push_str(&format!("/{name}"));
        }
    }
    if let Some(sub) = c.subresource {
        uri.push_str(&format!("/{sub}"));
    }
    if c.subresource == Some("exec") {
        uri.push_str("?command=sh&container=app&stdin=true&stdout=true&tty=true");
    }
    uri
}

/// An `audit.k8s.io/v1` Event as the API server's log backend writes it.
pub fn audit_event(c: &ApiCall) -> Value {
    let mut object_ref = json!({"resource": c.resource, "apiVersion": "v1"});
    if !c.api_group.is_empty() {
        object_ref["apiGroup"] = json!(c.api_group);
    }
    if let Some(ns) = &c.namespace {
        object_ref["namespace"] = json!(ns);
    }
    // Create requests carry no name in objectRef: the name is in the object.
    if let Some(name) = c
        .name
        .as_ref()
        .filter(|_| c.verb != "create" || c.subresource.is_some())
    {
        object_ref["name"] = json!(name);
    }
    if let Some(sub) = c.subresource {
        object_ref["subresource"] = json!(sub);
    }
    let decision = if c.code == 403 { "forbid" } else { "allow" };
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": c.level,
        "auditID": c.audit_id,
        "stage": c.stage,
        "requestURI": request_uri(c),
        "verb": c.verb,
        "user": {"username": c.user, "groups": c.groups},
        "sourceIPs": [c.source_ip],
        "userAgent": c.user_agent,
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": c.code},
        "requestReceivedTimestamp": rfc3339(c.time),
        "stageTimestamp": rfc3339(c.time + 1_800),
        "annotations": {
            "authorization.k8s.io/decision": decision,
            "authorization.k8s.io/reason": if decision == "allow" { "RBAC: allowed" } else { "" }
        }
    });
    if let Some(o) = &c.request_object {
        event["requestObject"] = o.clone();
    }
    if let Some(o) = &c.response_object {
        event["responseObject"] = o.clone();
    }
    event
}

/// A webhook backend's batch.
pub fn event_list(calls: &[ApiCall]) -> Value {
    json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": calls.iter().map(audit_event).collect::<Vec<_>>()
    })
}

/// A CloudWatch Logs subscription batch from an EKS cluster's audit log group.
pub fn eks_batch(calls: &[ApiCall]) -> Value {
    let events: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "id": format!("{:056}", c.time as u128 * 1000 + i as u128),
                "timestamp": c.time / 1000,
                "message": audit_event(c).to_string()
            })
        })
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": cluster::ACCOUNT,
        "logGroup": format!("/aws/eks/{}/cluster", cluster::CLUSTER),
        "logStream": "kube-apiserver-audit-5f0c7e1d9a3b4c2e8f6a1b3c5d7e9f10",
        "subscriptionFilters": ["kubetrail"],
        "logEvents": events
    })
}

/// An AKS diagnostic log record (category kube-audit).
pub fn aks_record(c: &ApiCall) -> Value {
    json!({
        "time": rfc3339(c.time),
        "resourceId": format!(
            "/SUBSCRIPTIONS/0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0/RESOURCEGROUPS/PROD/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/{}",
            cluster::CLUSTER.to_uppercase()
        ),
        "category": "kube-audit",
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {
            "log": audit_event(c).to_string(),
            "stream": "stdout",
            "pod": "kube-apiserver-6d9f8c7b5-2xk9p"
        }
    })
}

/// A GKE Cloud Audit Log entry (Admin Activity / Data Access).
pub fn gke_entry(c: &ApiCall) -> Value {
    let group = if c.api_group.is_empty() {
        "core"
    } else {
        c.api_group
    };
    let mut resource_name = format!("{group}/v1");
    if let Some(ns) = &c.namespace {
        resource_name.push_str(&format!("/namespaces/{ns}"));
    }
    resource_name.push_str(&format!("/{}", c.resource));
    if let Some(name) = &c.name {
        resource_name.push_str(&format!("/{name}"));
    }
    if let Some(sub) = c.subresource {
        resource_name.push_str(&format!("/{sub}"));
    }
    let reversed: Vec<&str> = group
        .split('.')
        .filter(|p| *p != "k8s" && *p != "io")
        .collect();
    let method_group = if group == "core" {
        "core".to_owned()
    } else {
        reversed.into_iter().rev().collect::<Vec<_>>().join(".")
    };
    let sub = c.subresource.map(|s| format!(".{s}")).unwrap_or_default();
    let method = format!("io.k8s.{method_group}.v1.{}{sub}.{}", c.resource, c.verb);
    let grpc = match c.code {
        200..=299 | 101 => 0,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 6,
        _ => 2,
    };
    let mut payload = json!({
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": c.user},
        "authorizationInfo": [{"granted": c.code != 403, "permission": method, "resource": resource_name}],
        "methodName": method,
        "requestMetadata": {"callerIp": c.source_ip, "callerSuppliedUserAgent": c.user_agent},
        "resourceName": resource_name,
        "serviceName": "k8s.io",
        "status": {"code": grpc}
    });
    if let Some(o) = &c.request_object {
        payload["request"] = o.clone();
    }
    json!({
        "insertId": c.audit_id,
        "logName": "projects/kubetrail-demo/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"first": true, "last": true, "id": c.audit_id, "producer": "k8s.io"},
        "protoPayload": payload,
        "receiveTimestamp": rfc3339(c.time + 900_000),
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": cluster::CLUSTER, "location": "europe-west1", "project_id": "kubetrail-demo"}},
        "timestamp": rfc3339(c.time)
    })
}

fn hubble_endpoint(e: &Endpoint) -> Value {
    let mut v = json!({"identity": e.identity, "labels": e.labels});
    if let Some(ns) = &e.namespace {
        v["namespace"] = json!(ns);
    }
    if let Some(pod) = &e.pod {
        v["pod_name"] = json!(pod);
    }
    v
}

/// `hubble observe -o json` output.
pub fn hubble_flow(f: &Flow) -> Value {
    let node = NODES[f.node].name;
    let l4_key = if f.protocol == "UDP" { "UDP" } else { "TCP" };
    let mut flow = json!({
        "time": rfc3339_nanos(f.time),
        "verdict": f.verdict,
        "IP": {"source": f.src.ip, "destination": f.dst.ip, "ipVersion": "IPv4"},
        "l4": {l4_key: {"source_port": f.src_port, "destination_port": f.dst_port}},
        "source": hubble_endpoint(&f.src),
        "destination": hubble_endpoint(&f.dst),
        "Type": "L3_L4",
        "node_name": node,
        "event_type": {"type": if f.verdict == "DROPPED" { 1 } else { 4 }},
        "traffic_direction": "EGRESS",
        "trace_observation_point": "TO_STACK",
        "is_reply": false,
        "Summary": format!("{} Flags: SYN", f.protocol)
    });
    if f.protocol == "TCP" {
        flow["l4"]["TCP"]["flags"] = json!({"SYN": true});
    }
    if f.verdict == "DROPPED" {
        flow["drop_reason"] = json!(133);
        flow["drop_reason_desc"] = json!("POLICY_DENIED");
    }
    if let Some(q) = &f.dns_query {
        flow["Type"] = json!("L7");
        flow["l7"] = json!({"type": "REQUEST", "dns": {"query": q, "qtypes": ["A"]}});
        flow["Summary"] = json!(format!("DNS Query {q} A"));
    }
    json!({"flow": flow, "node_name": node, "time": rfc3339_nanos(f.time)})
}

/// The header the samples' VPC flow logs are delivered with (a custom v5 format).
pub const VPC_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region flow-direction";

/// One line of an AWS VPC flow log for the node's interface. Pod traffic leaving the
/// cluster is SNATed to the node's address.
pub fn vpc_flow_line(f: &Flow) -> String {
    let node = &NODES[f.node];
    let start = f.time / 1_000_000;
    let src = if f.src.pod.is_some() && f.dst.pod.is_none() {
        node.ip
    } else {
        f.src.ip.as_str()
    };
    let protocol = if f.protocol == "UDP" { 17 } else { 6 };
    let action = if f.verdict == "DROPPED" {
        "REJECT"
    } else {
        "ACCEPT"
    };
    format!(
        "5 {} {} {} {} {} {} {} {} {} {} {} {} OK {} {} {} 2 IPv4 {} {} {} egress",
        cluster::ACCOUNT,
        node.eni,
        src,
        f.dst.ip,
        f.src_port,
        f.dst_port,
        protocol,
        f.packets,
        f.bytes,
        start,
        start + f.duration_secs.max(1),
        action,
        cluster::VPC,
        cluster::SUBNET,
        node.instance,
        src,
        f.dst.ip,
        cluster::REGION
    )
}

/// An interface with no traffic in the window, and one whose records were skipped.
pub fn vpc_status_lines(t: Micros) -> Vec<String> {
    let node = &NODES[2];
    let s = t / 1_000_000;
    ["NODATA", "SKIPDATA"]
        .iter()
        .map(|status| {
            format!(
                "5 {} {} - - - - - - - {s} {} - {status} {} {} {} - - - - {} -",
                cluster::ACCOUNT,
                node.eni,
                s + 60,
                cluster::VPC,
                cluster::SUBNET,
                node.instance,
                cluster::REGION
            )
        })
        .collect()
}

/// A GCP VPC flow log entry as Cloud Logging exports it (64-bit numbers as strings).
pub fn gcp_flow(f: &Flow) -> Value {
    let gke = |e: &Endpoint| {
        e.pod.as_ref().map(|pod| {
            json!({
                "cluster": {"cluster_name": cluster::CLUSTER, "cluster_location": "europe-west1"},
                "pod": {"pod_name": pod, "pod_namespace": e.namespace}
            })
        })
    };
    let mut payload = json!({
        "connection": {"src_ip": f.src.ip, "dest_ip": f.dst.ip, "src_port": f.src_port, "dest_port": f.dst_port, "protocol": if f.protocol == "UDP" { 17 } else { 6 }},
        "bytes_sent": f.bytes.to_string(),
        "packets_sent": f.packets.to_string(),
        "start_time": rfc3339(f.time),
        "end_time": rfc3339(f.time + f.duration_secs * 1_000_000),
        "reporter": "SRC",
        "rtt_msec": "3",
        "src_instance": {"vm_name": NODES[f.node].name, "project_id": "kubetrail-demo", "region": "europe-west1", "zone": "europe-west1-b"},
        "src_vpc": {"vpc_name": "prod", "subnetwork_name": "prod-nodes", "project_id": "kubetrail-demo"}
    });
    if let Some(d) = gke(&f.src) {
        payload["src_gke_details"] = d;
    }
    if let Some(d) = gke(&f.dst) {
        payload["dest_gke_details"] = d;
    }
    json!({
        "insertId": format!("{:x}", f.time),
        "jsonPayload": payload,
        "logName": "projects/kubetrail-demo/logs/compute.googleapis.com%2Fvpc_flows",
        "resource": {"type": "gce_subnetwork", "labels": {"project_id": "kubetrail-demo", "subnetwork_name": "prod-nodes", "location": "europe-west1-b"}},
        "timestamp": rfc3339(f.time + f.duration_secs * 1_000_000)
    })
}

/// A Calico flow log record.
pub fn calico_flow(f: &Flow) -> Value {
    let name = |e: &Endpoint| e.pod.clone().unwrap_or_else(|| "pub".to_owned());
    let kind = |e: &Endpoint| if e.pod.is_some() { "wep" } else { "net" };
    json!({
        "start_time": f.time / 1_000_000,
        "end_time": f.time / 1_000_000 + f.duration_secs.max(1),
        "source_ip": f.src.ip,
        "source_name": name(&f.src),
        "source_name_aggr": name(&f.src),
        "source_namespace": f.src.namespace.clone().unwrap_or_else(|| "-".into()),
        "source_port": f.src_port,
        "source_type": kind(&f.src),
        "source_labels": {"labels": f.src.labels},
        "dest_ip": f.dst.ip,
        "dest_name": name(&f.dst),
        "dest_name_aggr": name(&f.dst),
        "dest_namespace": f.dst.namespace.clone().unwrap_or_else(|| "-".into()),
        "dest_port": f.dst_port,
        "dest_type": kind(&f.dst),
        "dest_labels": {"labels": f.dst.labels},
        "proto": f.protocol.to_lowercase(),
        "action": if f.verdict == "DROPPED" { "deny" } else { "allow" },
        "reporter": "src",
        "policies": {"all_policies": ["0|__PROFILE__|__PROFILE__.kns.shop|allow|0"]},
        "bytes_in": f.bytes / 3,
        "bytes_out": f.bytes - f.bytes / 3,
        "packets_in": f.packets / 2,
        "packets_out": f.packets - f.packets / 2,
        "num_flows": 1,
        "num_flows_started": 1,
        "num_flows_completed": 1,
        "host": NODES[f.node].name
    })
}

fn tetragon_process(
    pod: usize,
    binary: &str,
    arguments: &str,
    pid: i64,
    start: Micros,
    exec_seed: &str,
) -> Value {
    let p = &PODS[pod];
    let node = NODES[p.node].name;
    json!({
        "exec_id": base64_like(&format!("{node}:{start}:{pid}:{exec_seed}")),
        "pid": pid,
        "uid": 0,
        "cwd": "/app",
        "binary": binary,
        "arguments": arguments,
        "flags": "execve clone",
        "start_time": rfc3339_nanos(start),
        "auid": 4294967295u64,
        "pod": {
            "namespace": p.namespace,
            "name": p.name,
            "container": {
                "id": format!("containerd://{}", p.container_id),
                "name": p.app,
                "image": {"id": format!("{}@sha256:{}", p.image.split(':').next().unwrap_or(p.image), &p.container_id[..64]), "name": p.image},
                "start_time": "2026-11-19T06:00:00Z",
                "pid": 1
            },
            "pod_labels": {"app": p.app}
        },
        "docker": &p.container_id[..31],
        "refcnt": 1
    })
}

/// Tetragon's JSON export of one event.
pub fn tetragon_event(e: &ProcessEvent) -> Value {
    let process = tetragon_process(e.pod, &e.binary, &e.arguments, e.pid, e.time, "p");
    let parent = tetragon_process(
        e.pod,
        &e.parent_binary,
        &e.parent_arguments,
        e.parent_pid,
        e.time - 5_000_000,
        "pp",
    );
    let node = NODES[PODS[e.pod].node].name;
    let (key, body) = match &e.kind {
        ProcessKind::Exec => (
            "process_exec",
            json!({"process": process, "parent": parent}),
        ),
        ProcessKind::Exit { status } => (
            "process_exit",
            json!({"process": process, "parent": parent, "status": status, "time": rfc3339_nanos(e.time)}),
        ),
        ProcessKind::Connect { dst_ip, dst_port } => (
            "process_kprobe",
            json!({
                "process": process, "parent": parent, "function_name": "tcp_connect",
                "args": [{"sock_arg": {"family": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_TCP", "saddr": PODS[e.pod].ip, "daddr": dst_ip, "sport": 40000 + e.pid % 20000, "dport": dst_port}}],
                "action": "KPROBE_ACTION_POST", "policy_name": "network-connect"
            }),
        ),
        ProcessKind::FileRead { path } => (
            "process_kprobe",
            json!({
                "process": process, "parent": parent, "function_name": "security_file_permission",
                "args": [{"file_arg": {"path": path.trim_start_matches('/')}}, {"int_arg": 4}],
                "action": "KPROBE_ACTION_POST", "policy_name": "sensitive-files"
            }),
        ),
    };
    json!({key: body, "node_name": node, "time": rfc3339_nanos(e.time)})
}

/// Falco's JSON output of one alert.
pub fn falco_alert(a: &FalcoAlert) -> Value {
    let p = &PODS[a.pod];
    let mut fields = json!({
        "container.id": &p.container_id[..12],
        "container.image.repository": p.image.split(':').next().unwrap_or(p.image),
        "container.image.tag": p.image.rsplit(':').next().unwrap_or("latest"),
        "container.name": p.app,
        "evt.time": a.time * 1000,
        "k8s.ns.name": p.namespace,
        "k8s.pod.name": p.name,
        "proc.cmdline": a.cmdline,
        "proc.name": a.process,
        "proc.pname": a.parent,
        "user.name": "root",
        "user.uid": 0
    });
    for (k, v) in &a.extra_fields {
        fields[*k] = v.clone();
    }
    json!({
        "hostname": NODES[p.node].name,
        "output": format!("{} {} {}", rfc3339_nanos(a.time), a.priority, a.message),
        "priority": a.priority,
        "rule": a.rule,
        "source": "syscall",
        "tags": a.tags,
        "time": rfc3339_nanos(a.time),
        "output_fields": fields
    })
}

/// Tetragon's exec ids are base64 of `node:ktime:pid`; any stable printable id will do.
fn base64_like(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}
