//! `kubetrail cluster scheduler` and `cluster executor`: Ballista's own scheduler and
//! executor, embedded so that they know kubetrail's functions, how the lake's tables and
//! functions with state travel ([`LakeCodec`], [`LakePhysicalCodec`]), and (executors)
//! the lake's object store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_core::RuntimeProducer;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service};
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use deltalake::delta_datafusion::engine::AsObjectStoreUrl;
use kubetrail_lake::Lake;

use super::codec::{LakeCodec, LakePhysicalCodec};
use super::functions::{FunctionCodec, FunctionCodecs};
use super::SchedulerAddr;
use crate::QueryError;

/// Plans hold every file of the tables they read: a year of a fleet's lake is a few
/// hundred thousand files, tens of MB of plan.
const MOST_MESSAGE_BYTES: u32 = 256 * 1024 * 1024;

/// An executor says it lives this often; one silent for [`EXECUTOR_TIMEOUT_SECONDS`] is
/// dead and its tasks run elsewhere. Ballista's defaults (60 s, 180 s) leave a query
/// waiting three minutes on a killed executor; a responder's query should not.
const HEARTBEAT_SECONDS: u64 = 5;
pub(crate) const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Runs a scheduler on `addr` until the process ends. `functions`: how functions with
/// state are rebuilt from a plan (every codec the binary knows).
pub async fn run_scheduler(
    addr: SocketAddr,
    functions: &[Arc<dyn FunctionCodec>],
) -> Result<(), QueryError> {
    let functions = Arc::new(FunctionCodecs::new(functions));
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: addr.ip().to_string(),
        bind_port: addr.port(),
        override_session_builder: Some(Arc::new(kubetrail_state)),
        override_logical_codec: Some(Arc::new(LakeCodec::new(functions.clone()))),
        override_physical_codec: Some(Arc::new(LakePhysicalCodec::new(functions))),
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: HEARTBEAT_SECONDS,
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT_SECONDS,
        ..SchedulerConfig::default()
    }
    .with_grpc_server_max_decoding_message_size(MOST_MESSAGE_BYTES)
    .with_grpc_server_max_encoding_message_size(MOST_MESSAGE_BYTES)
    .with_grpc_client_max_message_size(MOST_MESSAGE_BYTES);
    config
        .validate()
        .map_err(|e| QueryError::Server(format!("scheduler: {e}")))?;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| QueryError::Server(format!("scheduler: {e}")))?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(|e| QueryError::Server(format!("scheduler: {e}")))?;
    tokio::spawn(cancel_jobs_without_executors(scheduler.clone()));
    start_grpc_service(addr, scheduler)
        .await
        .map_err(|e| QueryError::Server(format!("scheduler on {addr}: {e}")))
}

/// Ballista fails the jobs that were running when the last executor was lost, but leaves
/// a job submitted to a cluster with no executor waiting for one forever (an autoscaler's
/// cold start); a responder's query, or a scheduled rule, would hang. Once no executor has
/// been connected for [`EXECUTOR_TIMEOUT_SECONDS`], every job is cancelled, and the client
/// says why ([`super::job_failure`]).
async fn cancel_jobs_without_executors(
    scheduler: SchedulerServer<LogicalPlanNode, PhysicalPlanNode>,
) {
    let timeout = std::time::Duration::from_secs(EXECUTOR_TIMEOUT_SECONDS);
    let mut empty_since: Option<std::time::Instant> = None;
    loop {
        // Each second: a pack's rules keep coming, each to be refused at once.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        // Ready: at least one executor alive (`min_ready_executors`).
        if scheduler.is_ready() {
            empty_since = None;
            continue;
        }
        if empty_since
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            < timeout
        {
            continue;
        }
        for job in scheduler.state.task_manager.get_running_job_cache().keys() {
            tracing::warn!(%job, "no executor for {EXECUTOR_TIMEOUT_SECONDS} s: cancelling the job");
            if let Err(e) = scheduler.cancel_job(job.clone()).await {
                tracing::warn!(%job, "the job could not be cancelled: {e}");
            }
        }
    }
}

/// Where an executor listens, whom it serves, what it reads, and where it keeps shuffle
/// files.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    pub scheduler: SchedulerAddr,
    /// Its Arrow Flight service (shuffle reads); its gRPC service is the next port.
    pub addr: SocketAddr,
    pub work_dir: PathBuf,
    /// Tasks at a time; the machine's cores by default.
    pub tasks: Option<usize>,
    /// The lake it reads: on object storage, its bucket's store (with the lake's storage
    /// options; credentials stay with the executor, plans carry none). A local lake is
    /// read through the file system.
    pub lake: Lake,
    /// How functions with state are rebuilt from a plan (every codec the binary knows).
    pub functions: Vec<Arc<dyn FunctionCodec>>,
}

/// Runs an executor until the process ends.
pub async fn run_executor(settings: &ExecutorSettings) -> Result<(), QueryError> {
    let registry = BallistaFunctionRegistry::from(&kubetrail_state(SessionConfig::new())?);
    let functions = Arc::new(FunctionCodecs::new(&settings.functions));
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
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        work_dir: Some(settings.work_dir.to_string_lossy().into_owned()),
        grpc_max_decoding_message_size: MOST_MESSAGE_BYTES,
        grpc_max_encoding_message_size: MOST_MESSAGE_BYTES,
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(LakeCodec::new(functions.clone()))),
        override_physical_codec: Some(Arc::new(LakePhysicalCodec::new(functions))),
        override_runtime_producer: Some(lake_runtime(&settings.lake, &settings.work_dir)?),
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

/// Each session's runtime, as Ballista's default one (spills into `work_dir`) and with
/// the lake's bucket store: built once, shared by every session.
fn lake_runtime(lake: &Lake, work_dir: &std::path::Path) -> Result<RuntimeProducer, QueryError> {
    let bucket = lake
        .bucket_store()?
        .map(|store| (lake.root().as_object_store_url(), store));
    let work_dir = work_dir.to_owned();
    Ok(Arc::new(move |_: &SessionConfig| {
        let runtime = RuntimeEnvBuilder::new()
            .with_temp_file_path(work_dir.clone())
            .build()?;
        if let Some((url, store)) = &bucket {
            runtime.register_object_store(url.as_ref(), store.clone());
        }
        Ok(Arc::new(runtime))
    }))
}

/// Ballista's session, with kubetrail's functions.
fn kubetrail_state(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let mut ctx = SessionContext::new_with_state(default_session_builder(config)?);
    crate::udf::register(&mut ctx)?;
    Ok(ctx.state())
}
