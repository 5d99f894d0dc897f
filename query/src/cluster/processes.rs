//! `kubetrail cluster scheduler` and `cluster executor`: Ballista's own scheduler and
//! executor, embedded so that they know kubetrail's functions and how the lake's tables
//! travel ([`LakeCodec`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::codec::LakeCodec;
use super::SchedulerAddr;
use crate::QueryError;

/// Plans hold every file of the tables they read: a year of a fleet's lake is a few
/// hundred thousand files, tens of MB of plan.
const MOST_MESSAGE_BYTES: u32 = 256 * 1024 * 1024;

/// Runs a scheduler on `addr` until the process ends.
pub async fn run_scheduler(addr: SocketAddr) -> Result<(), QueryError> {
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: addr.ip().to_string(),
        bind_port: addr.port(),
        override_session_builder: Some(Arc::new(kubetrail_state)),
        override_logical_codec: Some(Arc::new(LakeCodec::default())),
        ..SchedulerConfig::default()
    }
    .with_grpc_server_max_decoding_message_size(MOST_MESSAGE_BYTES)
    .with_grpc_server_max_encoding_message_size(MOST_MESSAGE_BYTES)
    .with_grpc_client_max_message_size(MOST_MESSAGE_BYTES);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| QueryError::Server(format!("scheduler: {e}")))?;
    start_server(cluster, addr, Arc::new(config))
        .await
        .map_err(|e| QueryError::Server(format!("scheduler on {addr}: {e}")))
}

/// Where an executor listens, whom it serves, and where it keeps shuffle files.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub scheduler: SchedulerAddr,
    /// Its Arrow Flight service (shuffle reads); its gRPC service is the next port.
    pub addr: SocketAddr,
    pub work_dir: PathBuf,
    /// Tasks at a time; the machine's cores by default.
    pub tasks: Option<usize>,
}

/// Runs an executor until the process ends.
pub async fn run_executor(settings: &ExecutorSettings) -> Result<(), QueryError> {
    let registry = BallistaFunctionRegistry::from(&kubetrail_state(SessionConfig::new())?);
    let mut config = ExecutorProcessConfig {
        bind_host: settings.addr.ip().to_string(),
        external_host: Some(settings.addr.ip().to_string()),
        port: settings.addr.port(),
        grpc_port: settings.addr.port().checked_add(1).ok_or_else(|| {
            QueryError::Server(format!("executor on {}: no port after it", settings.addr))
        })?,
        scheduler_host: settings.scheduler.host.clone(),
        scheduler_port: settings.scheduler.port,
        scheduler_connect_timeout_seconds: 10,
        work_dir: Some(settings.work_dir.to_string_lossy().into_owned()),
        grpc_max_decoding_message_size: MOST_MESSAGE_BYTES,
        grpc_max_encoding_message_size: MOST_MESSAGE_BYTES,
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(LakeCodec::default())),
        print_thread_info: false,
        ..ExecutorProcessConfig::default()
    };
    if let Some(tasks) = settings.tasks {
        config.vcores = tasks.max(1);
    }
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| QueryError::Server(format!("executor on {}: {e}", settings.addr)))
}

/// Ballista's session, with kubetrail's functions.
fn kubetrail_state(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let mut ctx = SessionContext::new_with_state(default_session_builder(config)?);
    crate::udf::register(&mut ctx)?;
    Ok(ctx.state())
}
