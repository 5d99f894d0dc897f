//! Queries on an Apache Ballista cluster: the same SQL, views and functions, planned by
//! Ballista's scheduler and run by its executors, which read the lake's Parquet files
//! themselves. A table travels as the files of the snapshot the client resolved
//! ([`lake_files`]), so every executor reads exactly the version the query started on; a
//! function built from settings travels with them ([`functions`]).

mod codec;
mod functions;
mod job_failure;
mod lake_files;
mod processes;

use std::sync::Arc;

use deltalake::delta_datafusion::engine::AsObjectStoreUrl;
use deltalake::DeltaTable;
use kubetrail_lake::Lake;
use kubetrail_schemas::Table;

pub use functions::FunctionCodec;
pub use processes::{run_executor, run_scheduler, ExecutorSettings};

use crate::QueryError;
pub(crate) use functions::FunctionCodecs;
pub(crate) use job_failure::job_failure;
use lake_files::{LakeFile, LakeFiles, LakeFilesSpec};

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// In this process.
    Local,
    /// On the Ballista cluster of this scheduler.
    Ballista(SchedulerAddr),
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        if s == "local" {
            return Ok(Engine::Local);
        }
        if !s.starts_with("ballista://") {
            return Err(format!(
                "engine {s:?}: expected local or ballista://HOST:PORT"
            ));
        }
        Ok(Engine::Ballista(s.parse()?))
    }
}

/// A scheduler's host and port: `HOST:PORT` or `ballista://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerAddr {
    pub host: String,
    pub port: u16,
}

impl SchedulerAddr {
    /// Fails in one line, within seconds, when nothing answers at the address: Ballista's
    /// client would report a transport error's debug form.
    pub(crate) async fn check_answers(&self) -> Result<(), QueryError> {
        let addr = format!("{}:{}", self.host, self.port);
        let connect = tokio::net::TcpStream::connect(&addr);
        match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(QueryError::Server(format!(
                "the Ballista scheduler at {addr} does not answer: {e}"
            ))),
            Err(_) => Err(QueryError::Server(format!(
                "the Ballista scheduler at {addr} does not answer within 5 s"
            ))),
        }
    }

    /// What Ballista's client connects to.
    pub(crate) fn url(&self) -> String {
        format!("df://{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for SchedulerAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<SchedulerAddr, String> {
        let bare = s
            .strip_prefix("ballista://")
            .unwrap_or(s)
            .trim_end_matches('/');
        let (host, port) = bare
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| format!("scheduler {s:?}: expected HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("scheduler {s:?}: {port:?} is not a port"))?;
        Ok(SchedulerAddr {
            host: host.to_owned(),
            port,
        })
    }
}

/// A table as the files its loaded snapshot holds (none for a table never written).
pub(crate) async fn lake_files(
    lake: &Lake,
    table: Table,
    delta: Option<&DeltaTable>,
) -> Result<LakeFiles, QueryError> {
    let name = table.name();
    let url = lake.table_url(name)?;
    let store = url.as_object_store_url().to_string();
    let prefix = url.path().trim_matches('/').to_owned();
    let Some(delta) = delta else {
        let spec = LakeFilesSpec {
            table: name.to_owned(),
            store,
            files: Vec::new(),
        };
        return Ok(LakeFiles::new(spec, table.schema())?);
    };
    let provider = delta
        .table_provider()
        .await
        .map_err(|e| QueryError::Table(name.to_owned(), e.to_string()))?;
    let snapshot = delta
        .snapshot()
        .map_err(|e| QueryError::Table(name.to_owned(), e.to_string()))?;
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        let event_date = file.partition_values().and_then(|values| {
            let at = values
                .fields()
                .iter()
                .position(|f| f.name() == kubetrail_schemas::table::PARTITION_COLUMN)?;
            match values.values().get(at)? {
                delta_kernel::expressions::Scalar::Date(days) => Some(*days),
                _ => None,
            }
        });
        files.push(LakeFile {
            path: format!("{prefix}/{}", file.object_store_path()),
            size: u64::try_from(file.size()).unwrap_or_default(),
            event_date,
        });
    }
    let spec = LakeFilesSpec {
        table: name.to_owned(),
        store,
        files,
    };
    Ok(LakeFiles::new(spec, provider.schema())?)
}

/// A client's codec for its logical plans: it carries the functions that `functions`
/// learns as the session registers them.
pub(crate) fn codec(functions: Arc<FunctionCodecs>) -> Arc<codec::LakeCodec> {
    Arc::new(codec::LakeCodec::new(functions))
}
