//! Tetragon's JSON export: `{"process_exec": {...}, "node_name", "time"}` and the other
//! `process_*` event types (exit, kprobe, tracepoint, uprobe, lsm, and the older
//! connect/close/listen), one compact line or one pretty-printed object per record.

use serde_json::Value;

use super::json::{self, at, int, ip, port, text};
use super::{DecodeError, DecodeOptions};
use crate::rows::RuntimeEvent;

pub(crate) fn decode(record: &[u8], options: &DecodeOptions) -> Result<RuntimeEvent, DecodeError> {
    let outer = json::parse_object(record)?;
    let (event_type, body) = outer
        .as_object()
        .into_iter()
        .flatten()
        .find(|(k, v)| k.starts_with("process_") && v.is_object())
        .ok_or_else(|| DecodeError::unrecognized("no process_* event object"))?;
    let process = at(body, "process").ok_or(DecodeError::Missing("process"))?;
    // An exec happens when its process starts: Tetragon's own test data leaves out the
    // envelope time for execs, and the start time is the same instant.
    let exec_start = if event_type == "process_exec" {
        json::time(process, "start_time")?
    } else {
        None
    };
    let event_time = json::time(&outer, "time")?
        .or(json::time(body, "time")?)
        .or(exec_start)
        .ok_or(DecodeError::Missing("time"))?;

    let labels = match json::object(process, "pod.pod_labels")? {
        Some(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect(),
        None => Vec::new(),
    };
    let container_id = text(process, "pod.container.id")?
        .map(|id| {
            id.split_once("://")
                .map_or(id.clone(), |(_, rest)| rest.to_owned())
        })
        .or(text(process, "docker")?);
    let args = at(body, "args");
    let (file_path, sock) = match args {
        Some(Value::Array(items)) => (first_path(items), first_sock(items)?),
        Some(_) => return Err(DecodeError::invalid("args", "expected a list")),
        None => (None, None),
    };
    let (src_ip, dst_ip, src_port, dst_port, protocol) = match sock {
        Some(s) => s,
        None => (
            ip(body, "source_ip")?,
            ip(body, "destination_ip")?,
            port(body, "source_port")?,
            port(body, "destination_port")?,
            text(body, "protocol")?,
        ),
    };
    Ok(RuntimeEvent {
        event_time,
        cluster: options.cluster.clone(),
        namespace: text(process, "pod.namespace")?,
        pod: text(process, "pod.name")?,
        node: text(&outer, "node_name")?,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        protocol,
        event_type: event_type.clone(),
        binary: text(process, "binary")?,
        arguments: text(process, "arguments")?,
        pid: int(process, "pid")?,
        uid: int(process, "uid")?,
        cwd: text(process, "cwd")?,
        exec_id: text(process, "exec_id")?,
        process_start_time: json::time(process, "start_time")?,
        parent_exec_id: text(process, "parent_exec_id")?.or(text(body, "parent.exec_id")?),
        parent_binary: text(body, "parent.binary")?,
        parent_arguments: text(body, "parent.arguments")?,
        parent_pid: int(body, "parent.pid")?,
        container_id,
        container_name: text(process, "pod.container.name")?,
        image: text(process, "pod.container.image.name")?,
        image_id: text(process, "pod.container.image.id")?,
        pod_labels: labels,
        function_name: text(body, "function_name")?,
        policy_name: text(body, "policy_name")?,
        action: text(body, "action")?,
        kprobe_args: args.map(Value::to_string),
        file_path,
        exit_code: int(body, "status")?,
        signal: text(body, "signal")?,
        runtime_format: "tetragon".to_owned(),
        ..RuntimeEvent::default()
    })
}

/// The first file or path argument, made absolute: Tetragon writes `etc/passwd`.
fn first_path(args: &[Value]) -> Option<String> {
    args.iter().find_map(|arg| {
        let path = at(arg, "file_arg.path")
            .or_else(|| at(arg, "path_arg.path"))?
            .as_str()?;
        Some(if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        })
    })
}

type Endpoints = (
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<String>,
);

/// The first socket argument of a kprobe (`tcp_connect`, `tcp_sendmsg`, …).
fn first_sock(args: &[Value]) -> Result<Option<Endpoints>, DecodeError> {
    let Some(sock) = args.iter().find_map(|arg| at(arg, "sock_arg")) else {
        return Ok(None);
    };
    let protocol = text(sock, "protocol")?.map(|p| p.trim_start_matches("IPPROTO_").to_owned());
    Ok(Some((
        ip(sock, "saddr")?,
        ip(sock, "daddr")?,
        port(sock, "sport")?,
        port(sock, "dport")?,
        protocol,
    )))
}
