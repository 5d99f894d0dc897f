//! What happens in the cluster, independent of how any exporter writes it down.

use serde_json::Value;

/// Microseconds since the epoch, UTC.
pub type Micros = i64;

/// One request to the API server.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub time: Micros,
    pub audit_id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub source_ip: String,
    pub user_agent: String,
    pub verb: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub api_group: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub code: i64,
    pub level: &'static str,
    pub stage: &'static str,
    pub request_object: Option<Value>,
    pub response_object: Option<Value>,
    /// Which step of the incident this is, if any.
    pub attack_step: Option<&'static str>,
}

impl ApiCall {
    /// A `get pods` at cluster scope, answered 200 and logged at Metadata level; callers
    /// change what differs.
    pub fn new(
        time: Micros,
        audit_id: String,
        user: &str,
        groups: &[&str],
        source_ip: &str,
        user_agent: &str,
    ) -> ApiCall {
        ApiCall {
            time,
            audit_id,
            user: user.to_owned(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            source_ip: source_ip.to_owned(),
            user_agent: user_agent.to_owned(),
            verb: "get",
            resource: "pods",
            subresource: None,
            api_group: "",
            namespace: None,
            name: None,
            code: 200,
            level: "Metadata",
            stage: "ResponseComplete",
            request_object: None,
            response_object: None,
            attack_step: None,
        }
    }
}

/// One end of a flow.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub ip: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub labels: Vec<String>,
    pub identity: i64,
}

/// One network flow (a connection's worth of packets in one direction).
#[derive(Debug, Clone)]
pub struct Flow {
    pub time: Micros,
    pub duration_secs: i64,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub protocol: &'static str,
    pub src_port: i64,
    pub dst_port: i64,
    pub bytes: i64,
    pub packets: i64,
    /// `FORWARDED` or `DROPPED`.
    pub verdict: &'static str,
    /// Node the flow was seen on (index into `cluster::NODES`).
    pub node: usize,
    pub dns_query: Option<String>,
    pub attack_step: Option<&'static str>,
}

/// What a process did.
#[derive(Debug, Clone)]
pub enum ProcessKind {
    Exec,
    Exit { status: i64 },
    Connect { dst_ip: String, dst_port: i64 },
    FileRead { path: String },
}

/// One process event in a container.
#[derive(Debug, Clone)]
pub struct ProcessEvent {
    pub time: Micros,
    pub pod: usize,
    pub binary: String,
    pub arguments: String,
    pub pid: i64,
    pub parent_binary: String,
    pub parent_arguments: String,
    pub parent_pid: i64,
    pub kind: ProcessKind,
    pub attack_step: Option<&'static str>,
}

/// One Falco alert.
#[derive(Debug, Clone)]
pub struct FalcoAlert {
    pub time: Micros,
    pub rule: &'static str,
    pub priority: &'static str,
    pub pod: usize,
    pub cmdline: String,
    pub process: String,
    pub parent: String,
    pub tags: Vec<&'static str>,
    pub extra_fields: Vec<(&'static str, Value)>,
    pub message: String,
    pub attack_step: Option<&'static str>,
}
