//! A DataFusion session over the lake: every table registered (empty if never written),
//! the `events` view, and kubetrail's functions.

use std::sync::Arc;

use arrow::array::RecordBatch;
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::config::Dialect;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::delta_datafusion::engine::AsObjectStoreUrl;
use deltalake::DeltaTable;
use kubetrail_lake::{Lake, LakeError};
use kubetrail_schemas::Table;
use thiserror::Error;

use crate::cluster::{self, Engine, FunctionCodec, FunctionCodecs};
use crate::scan_filters::DistinctScanFilters;
use crate::views;
use crate::window::Window;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error("{0}")]
    Sql(DataFusionError),
    /// A query that failed on a Ballista cluster, its reason in one line.
    #[error("{0}")]
    Cluster(String),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("table {0}: {1}")]
    Table(String, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A statement that would do more than read the lake.
    #[error("{0}")]
    ReadOnly(String),
    /// The server could not start or stopped.
    #[error("{0}")]
    Server(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> QueryError {
        match cluster::job_failure(&e.to_string()) {
            Some(reason) => QueryError::Cluster(reason),
            None => QueryError::Sql(e),
        }
    }
}

/// Where a lake table lives and whether it has been written.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: String,
    /// `None` for a table never written (registered empty).
    pub version: Option<u64>,
    pub files: usize,
}

/// The query side of the lake. Reads only.
pub struct LakeSession {
    ctx: SessionContext,
    lake: Lake,
    tables: Vec<TableInfo>,
    /// The window the event tables show; `None` for all of them.
    window: Option<Window>,
    /// How the functions registered with state travel to a cluster (unused locally).
    functions: Arc<FunctionCodecs>,
}

impl LakeSession {
    /// Opens the lake, on a local disk or object storage. A location that holds nothing
    /// is an error: the query side never creates a lake.
    pub async fn open(lake: &Lake) -> Result<LakeSession, QueryError> {
        LakeSession::open_on(lake, &Engine::Local).await
    }

    /// Opens the lake for queries that `engine` runs. On a Ballista cluster each table is
    /// the files of its snapshot as of now, read by the executors.
    pub async fn open_on(lake: &Lake, engine: &Engine) -> Result<LakeSession, QueryError> {
        lake.check_exists().await?;
        let mut loaded = Vec::new();
        for table in Table::ALL {
            loaded.push((table, lake.open_table(table.name()).await?));
        }
        match engine {
            Engine::Local => LakeSession::from_tables(lake, &loaded, None).await,
            Engine::Ballista(scheduler) => LakeSession::on_cluster(lake, &loaded, scheduler).await,
        }
    }

    async fn on_cluster(
        lake: &Lake,
        loaded: &[(Table, Option<DeltaTable>)],
        scheduler: &cluster::SchedulerAddr,
    ) -> Result<LakeSession, QueryError> {
        scheduler.check_answers().await?;
        let functions = Arc::new(FunctionCodecs::default());
        let mut config = session_config()
            .upgrade_for_ballista()
            .with_ballista_logical_extension_codec(cluster::codec(functions.clone()));
        // Ballista 55's adaptive planner left a rule's job (an anti join on an empty
        // baseline) running forever; the static planner finishes the whole pack.
        config
            .options_mut()
            .set("ballista.planner.adaptive.enabled", "false")?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        let mut ctx = SessionContext::remote_with_state(&scheduler.url(), state).await?;
        crate::udf::register(&mut ctx)?;
        let mut tables = Vec::new();
        for (table, delta) in loaded {
            let files = cluster::lake_files(lake, *table, delta.as_ref()).await?;
            tables.push(TableInfo {
                name: table.name().to_owned(),
                version: delta.as_ref().and_then(|d| d.version()),
                files: files.spec().files.len(),
            });
            ctx.register_table(table.name(), Arc::new(files))?;
        }
        LakeSession::with_views(ctx, lake, tables, functions).await
    }

    /// The session once its tables are in: the views over them.
    async fn with_views(
        ctx: SessionContext,
        lake: &Lake,
        tables: Vec<TableInfo>,
        functions: Arc<FunctionCodecs>,
    ) -> Result<LakeSession, QueryError> {
        views::register(&ctx).await?;
        Ok(LakeSession {
            ctx,
            lake: lake.clone(),
            tables,
            window: None,
            functions,
        })
    }

    /// A session over tables already loaded (`None`: never written), in `runtime` (its
    /// memory pool) or a runtime of its own.
    pub(crate) async fn from_tables(
        lake: &Lake,
        loaded: &[(Table, Option<DeltaTable>)],
        runtime: Option<Arc<RuntimeEnv>>,
    ) -> Result<LakeSession, QueryError> {
        let mut ctx = new_context(runtime);
        crate::udf::register(&mut ctx)?;
        let mut tables = Vec::new();
        for (table, delta) in loaded {
            tables.push(register_table(&ctx, *table, delta.as_ref()).await?);
        }
        keep_reads(&ctx, lake);
        LakeSession::with_views(ctx, lake, tables, Arc::default()).await
    }

    /// What a plan of this session runs in, with `runtime` (a query's memory pool) in place
    /// of the session's own. Planning needs no pool, so a server plans every query in one
    /// shared session and gives each its pool only here: a session of its own per query
    /// (its state copied, every function registered again) was a seventh of the server's
    /// CPU on small queries.
    pub(crate) fn task_in(&self, runtime: Arc<RuntimeEnv>) -> Arc<TaskContext> {
        Arc::new(TaskContext::from(&self.ctx).with_runtime(runtime))
    }

    /// The same session with `moved` tables at their new versions, when no view reads
    /// any of them (`None` otherwise: a view holds the providers it was planned over): a
    /// new catalog holding the other tables' and the views' providers as they are, so
    /// nothing is planned or registered again. The server's own `query_log` moves every
    /// few seconds under load; building the whole session again for it took ≈40 ms.
    pub(crate) async fn with_tables_moved(
        &self,
        moved: &[(Table, &DeltaTable)],
    ) -> Result<Option<LakeSession>, QueryError> {
        let state = self.ctx.state();
        let options = state.config().options();
        let (catalog_name, schema_name) = (
            options.catalog.default_catalog.clone(),
            options.catalog.default_schema.clone(),
        );
        let old = state
            .catalog_list()
            .catalog(&catalog_name)
            .and_then(|c| c.schema(&schema_name))
            .ok_or_else(|| QueryError::Table(schema_name.clone(), "not in the session".into()))?;
        let is_moved = |name: &str| moved.iter().any(|(t, _)| t.name() == name);
        let schema = Arc::new(MemorySchemaProvider::new());
        for name in old.table_names() {
            let Some(provider) = old.table(&name).await? else {
                continue;
            };
            // Every view's own scans: a view over a view is in the list too, so together
            // they name every table a view reads.
            if let Some(view) = provider.downcast_ref::<ViewTable>() {
                let mut reads_moved = false;
                view.logical_plan().apply(|node| {
                    if let LogicalPlan::TableScan(scan) = node {
                        reads_moved |= is_moved(scan.table_name.table());
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
                if reads_moved {
                    return Ok(None);
                }
            }
            if !is_moved(&name) {
                schema.register_table(name, provider)?;
            }
        }
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(&schema_name, schema)?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(catalog_name, catalog);
        let state = SessionStateBuilder::new_from_existing(state)
            .with_catalog_list(catalogs)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let mut tables = self.tables.clone();
        for (table, delta) in moved {
            let info = register_table(&ctx, *table, Some(delta)).await?;
            match tables.iter_mut().find(|t| t.name == info.name) {
                Some(t) => *t = info,
                None => tables.push(info),
            }
        }
        Ok(Some(LakeSession {
            ctx,
            lake: self.lake.clone(),
            tables,
            window: self.window,
            functions: self.functions.clone(),
        }))
    }

    /// The window the event tables show, if the session was opened on one.
    pub fn window(&self) -> Option<&Window> {
        self.window.as_ref()
    }

    /// Opens the lake with each event table (and the `events` view) showing only `window`:
    /// detection rules never name dates. `k8s_audit_history` (and so on) show the
    /// `history` before the window, for baselines; `k8s_audit_all` the whole table.
    pub async fn open_window(
        lake: &Lake,
        window: &Window,
        history: std::time::Duration,
    ) -> Result<LakeSession, QueryError> {
        LakeSession::open_window_on(lake, window, history, &Engine::Local).await
    }

    /// [`LakeSession::open_window`], for queries that `engine` runs.
    pub async fn open_window_on(
        lake: &Lake,
        window: &Window,
        history: std::time::Duration,
        engine: &Engine,
    ) -> Result<LakeSession, QueryError> {
        let mut session = LakeSession::open_on(lake, engine).await?;
        session.window = Some(*window);
        let history_from = window
            .from()
            .saturating_sub(i64::try_from(history.as_micros()).unwrap_or(i64::MAX));
        let before = Window::new(history_from.max(0), window.from())
            .unwrap_or_else(|_| Window::new(0, 1).expect("a valid window"));
        for table in Table::EVENTS {
            let name = table.name();
            let provider = session
                .ctx
                .deregister_table(name)?
                .ok_or_else(|| QueryError::Table(name.to_owned(), "not registered".into()))?;
            session
                .ctx
                .register_table(format!("{name}_all"), provider)?;
            for (view, range) in [
                (name.to_owned(), window),
                (format!("{name}_history"), &before),
            ] {
                let sql = format!(
                    "CREATE VIEW {view} AS SELECT * FROM {name}_all WHERE {}",
                    range.predicate()
                );
                session.ctx.sql(&sql).await?.collect().await?;
            }
        }
        views::register(&session.ctx).await?;
        Ok(session)
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers a function built from settings (replacing one of the same name), with
    /// how it travels: on a cluster, `codec` writes its state into each plan, and the
    /// scheduler and executors rebuild it from there.
    pub fn register_function(&self, udf: ScalarUDF, codec: &Arc<dyn FunctionCodec>) {
        self.functions.learn(codec);
        self.ctx.register_udf(udf);
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// Plans one SQL statement. Evidence is read-only: `INSERT`, `COPY` and other DML are
    /// refused (session-local views and tables are allowed; they change nothing on disk).
    /// One statement that only reads (see `read_only`), planned.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame, QueryError> {
        crate::read_only::check_read_only(sql).map_err(QueryError::ReadOnly)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        Ok(self.ctx.sql_with_options(sql, options).await?)
    }

    /// Whether a table has a column (lakes written by older versions lack newer ones).
    pub async fn has_column(&self, table: &str, column: &str) -> bool {
        match self.ctx.table_provider(table).await {
            Ok(t) => t.schema().field_with_name(column).is_ok(),
            Err(_) => false,
        }
    }

    /// Runs one SQL statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        let started = std::time::Instant::now();
        let batches = self.sql(sql).await?.collect().await?;
        // `KUBETRAIL_LOG=kubetrail_query=debug` shows what a command costs, statement by statement.
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), sql, "query");
        Ok(batches)
    }
}

/// PostgreSQL's dialect: responders know it, and the generic dialect cannot project a
/// column named `cluster` after another one (it reads it as a `CLUSTER BY`). Unquoted
/// names fold to lower case as usual, so `SELECT Verb` works on our snake_case columns.
fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().sql_parser.dialect = Dialect::PostgreSQL;
    let parquet = &mut config.options_mut().execution.parquet;
    parquet.pushdown_filters = true;
    // Filters run cheapest column first: `pod_ip IS NOT NULL AND event_time >= …` decodes
    // the day's times only where a pod address is (a timeline's pod status scan over 10M
    // rows: 1.15 → 0.65 s of CPU).
    parquet.reorder_filters = true;
    config
}

fn new_context(runtime: Option<Arc<RuntimeEnv>>) -> SessionContext {
    let mut state = SessionStateBuilder::new()
        .with_config(session_config())
        .with_default_features();
    if let Some(runtime) = runtime {
        state = state.with_runtime_env(runtime);
    }
    let state = state
        // Last: after DataFusion has pushed its copy of the filters into the Delta scan.
        .with_physical_optimizer_rule(Arc::new(DistinctScanFilters))
        .build();
    SessionContext::new_with_state(state)
}

async fn register_table(
    ctx: &SessionContext,
    table: Table,
    delta: Option<&DeltaTable>,
) -> Result<TableInfo, QueryError> {
    let name = table.name();
    let Some(delta) = delta else {
        return register_empty(ctx, name, table.schema());
    };
    let files = delta
        .snapshot()
        .map(|s| s.log_data().num_files())
        .unwrap_or_default();
    let provider = delta
        .table_provider()
        .await
        .map_err(|e| QueryError::Table(name.to_owned(), e.to_string()))?;
    // Puts the table's object store (a local disk, or the lake's bucket with its
    // credentials) where the session's scans look for it.
    delta
        .update_datafusion_session(&ctx.state())
        .map_err(|e| QueryError::Table(name.to_owned(), e.to_string()))?;
    ctx.register_table(name, provider)?;
    Ok(TableInfo {
        name: name.to_owned(),
        version: delta.version(),
        files,
    })
}

/// The lake's data-file reads go through its read cache: every rule of the pack reads the
/// same column chunks, and on object storage each read is a request. The tables share one
/// store (the bucket's), registered by the first of them.
fn keep_reads(ctx: &SessionContext, lake: &Lake) {
    let store_url = lake.root().as_object_store_url();
    let runtime = ctx.runtime_env();
    if let Ok(store) = runtime.object_store(&store_url) {
        runtime.register_object_store(store_url.as_ref(), lake.cached_reads(store));
    }
}

/// A table never written is queryable and empty, so every query works on a new lake.
fn register_empty(
    ctx: &SessionContext,
    name: &str,
    schema: arrow::datatypes::SchemaRef,
) -> Result<TableInfo, QueryError> {
    let empty = MemTable::try_new(schema, vec![vec![]])?;
    ctx.register_table(name, Arc::new(empty))?;
    Ok(TableInfo {
        name: name.to_owned(),
        version: None,
        files: 0,
    })
}
