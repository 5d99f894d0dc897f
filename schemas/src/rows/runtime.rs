//! `runtime_events`: one row per process, file, network or alert event from a node.

use arrow::datatypes::Field;
use serde::Serialize;

use super::{is_none, EventRow};
use crate::table::{int, shared_fields, text, text_list, ts, Table};

/// One Tetragon event or Falco alert.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct RuntimeEvent {
    pub event_time: i64,
    #[serde(skip_serializing_if = "is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub namespace: Option<String>,
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
    #[serde(skip_serializing_if = "is_none")]
    pub protocol: Option<String>,
    /// `process_exec`, `process_exit`, `process_kprobe`, … or `falco_alert`.
    pub event_type: String,
    #[serde(skip_serializing_if = "is_none")]
    pub binary: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub arguments: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub pid: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub uid: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub exec_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub process_start_time: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub parent_exec_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub parent_binary: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub parent_arguments: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub parent_pid: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub image_id: Option<String>,
    /// `key=value` pairs.
    pub pod_labels: Vec<String>,
    /// Kernel function of a kprobe.
    #[serde(skip_serializing_if = "is_none")]
    pub function_name: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub policy_name: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub action: Option<String>,
    /// The kprobe's arguments as JSON text, exactly as Tetragon sent them.
    #[serde(skip_serializing_if = "is_none")]
    pub kprobe_args: Option<String>,
    /// First file argument, absolute (Tetragon omits the leading slash).
    #[serde(skip_serializing_if = "is_none")]
    pub file_path: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "is_none")]
    pub signal: Option<String>,
    /// Falco rule name.
    #[serde(skip_serializing_if = "is_none")]
    pub rule: Option<String>,
    /// Falco priority, as Falco spells it (`Warning`, `Critical`, …).
    #[serde(skip_serializing_if = "is_none")]
    pub priority: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub output: Option<String>,
    pub tags: Vec<String>,
    /// Falco event source (`syscall`, `k8s_audit`, …).
    #[serde(skip_serializing_if = "is_none")]
    pub event_source: Option<String>,
    /// Falco `output_fields` as JSON text (dotted keys, values of any type).
    #[serde(skip_serializing_if = "is_none")]
    pub output_fields: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub user_name: Option<String>,
    /// `tetragon` or `falco`.
    pub runtime_format: String,
}

impl EventRow for RuntimeEvent {
    const TABLE: Table = Table::RuntimeEvents;
    fn event_time(&self) -> i64 {
        self.event_time
    }
}

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
