//! `runtime_events`: one row per process, file, network or alert event from a node.

use arrow::datatypes::Field;

use super::columns::table_columns;
use crate::table::{int, shared_fields, text, text_list, ts, Table};

/// One Tetragon event or Falco alert.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RuntimeEvent {
    pub event_time: i64,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub node: Option<String>,
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    pub src_port: Option<i32>,
    pub dst_port: Option<i32>,
    pub protocol: Option<String>,
    /// `process_exec`, `process_exit`, `process_kprobe`, … or `falco_alert`.
    pub event_type: String,
    pub binary: Option<String>,
    pub arguments: Option<String>,
    pub pid: Option<i64>,
    pub uid: Option<i64>,
    pub cwd: Option<String>,
    pub exec_id: Option<String>,
    pub process_start_time: Option<i64>,
    pub parent_exec_id: Option<String>,
    pub parent_binary: Option<String>,
    pub parent_arguments: Option<String>,
    pub parent_pid: Option<i64>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub image: Option<String>,
    pub image_id: Option<String>,
    /// `key=value` pairs.
    pub pod_labels: Vec<String>,
    /// Kernel function of a kprobe.
    pub function_name: Option<String>,
    pub policy_name: Option<String>,
    pub action: Option<String>,
    /// The kprobe's arguments as JSON text, exactly as Tetragon sent them.
    pub kprobe_args: Option<String>,
    /// First file argument, absolute (Tetragon omits the leading slash).
    pub file_path: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<String>,
    /// Falco rule name.
    pub rule: Option<String>,
    /// Falco priority, as Falco spells it (`Warning`, `Critical`, …).
    pub priority: Option<String>,
    pub output: Option<String>,
    pub tags: Vec<String>,
    /// Falco event source (`syscall`, `k8s_audit`, …).
    pub event_source: Option<String>,
    /// Falco `output_fields` as JSON text (dotted keys, values of any type).
    pub output_fields: Option<String>,
    pub user_name: Option<String>,
    /// `tetragon` or `falco`.
    pub runtime_format: String,
}

table_columns!(
    /// `runtime_events` being built from [`RuntimeEvent`]s.
    RuntimeColumns of Table::RuntimeEvents, from RuntimeEvent {
        TimeColumn: [event_time, process_start_time],
        TextColumn: [
            cluster, namespace, pod, node, src_ip, dst_ip, protocol, event_type, binary,
            arguments, cwd, exec_id, parent_exec_id, parent_binary, parent_arguments,
            container_id, container_name, image, image_id, function_name, policy_name,
            action, kprobe_args, file_path, signal, rule, priority, output, event_source,
            output_fields, user_name, runtime_format,
        ],
        Int32Column: [src_port, dst_port],
        Int64Column: [pid, uid, parent_pid, exit_code],
        TextListColumn: [pod_labels, tags],
    }
);

pub(crate) fn fields() -> Vec<Field> {
    let mut f = shared_fields(true);
    f.extend([
        text("event_type"),
        text("binary"),
        text("arguments"),
        int("pid"),
        int("uid"),
        text("cwd"),
        text("exec_id"),
        ts("process_start_time"),
        text("parent_exec_id"),
        text("parent_binary"),
        text("parent_arguments"),
        int("parent_pid"),
        text("container_id"),
        text("container_name"),
        text("image"),
        text("image_id"),
        text_list("pod_labels"),
        text("function_name"),
        text("policy_name"),
        text("action"),
        text("kprobe_args"),
        text("file_path"),
        int("exit_code"),
        text("signal"),
        text("rule"),
        text("priority"),
        text("output"),
        text_list("tags"),
        text("event_source"),
        text("output_fields"),
        text("user_name"),
        text("runtime_format"),
    ]);
    f
}
