//! `kubetrail cluster scheduler` and `kubetrail cluster executor`.

use kubetrail_query::cluster::{run_executor, run_scheduler, ExecutorSettings};
use kubetrail_query::QueryError;

use crate::cli::ClusterCmd;
use crate::config::Config;
use crate::Outcome;

pub async fn run(cmd: ClusterCmd, config: &Config) -> anyhow::Result<Outcome> {
    // Every function with state a client may send: the detection pack's watchlists.
    let functions = vec![kubetrail_detections::watchlists::cluster_codec()];
    match cmd {
        ClusterCmd::Scheduler { addr } => {
            // The line scripts wait for: the scheduler answers from here on.
            println!("scheduler at ballista://{addr}");
            with_deep_stacks(async move { run_scheduler(addr, &functions).await }).await?;
        }
        ClusterCmd::Executor {
            scheduler,
            lake,
            addr,
            work_dir,
            tasks,
        } => {
            let scheduler = scheduler.parse().map_err(anyhow::Error::msg)?;
            // Kept for the process's life: shuffle files of running queries live there.
            let temporary;
            let work_dir = match work_dir {
                Some(dir) => dir,
                None => {
                    temporary = tempfile::Builder::new()
                        .prefix("kubetrail-executor-")
                        .tempdir()?;
                    temporary.path().to_owned()
                }
            };
            let settings = ExecutorSettings {
                scheduler,
                addr,
                work_dir,
                tasks,
                lake: config.lake(lake.lake.as_deref())?,
                functions,
            };
            with_deep_stacks(async move { run_executor(&settings).await }).await?;
        }
    }
    Ok(Outcome::Ok)
}

/// Runs a scheduler or an executor on a runtime of its own whose threads have Ballista's
/// 32 MiB stacks: they plan and decode whole query plans recursively, and the scheduler
/// overflowed the default 2 MiB on a detection rule's plan.
async fn with_deep_stacks(
    process: impl std::future::Future<Output = Result<(), QueryError>> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_stack_size(32 << 20)
            .build()?
            .block_on(process)
            .map_err(anyhow::Error::from)
    })
    .await?
}
