//! The Flight SQL service: every call authenticated, statements through the same read-only
//! check and session as `kubetrail sql`, results streamed batch by batch as they are made,
//! each query within its limits and recorded.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use futures::{Stream, StreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::fresh_tables::FreshTables;
use super::limits::Admission;
use super::planned::{PlannedStatements, TicketStatement};
use super::tokens::Tokens;
use super::QueryRecorder;
use crate::query_log::{Outcome, QueryRecord};
use crate::{LakeSession, QueryError};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// A statement planned over the lake as of a moment, and the session that planned it.
type Planned = (Arc<LakeSession>, Arc<dyn ExecutionPlan>);

/// Who is calling: the token's user and the client's address.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: String,
    pub(crate) client: String,
}

impl Caller {
    fn record(&self, sql: &str) -> QueryRecord {
        QueryRecord::start(&self.user, &self.client, "flight-sql", sql)
    }
}

pub(crate) struct State {
    pub(crate) tables: FreshTables,
    planned: PlannedStatements,
    pub(crate) tokens: Tokens,
    pub(crate) admission: Admission,
    pub(crate) recorder: QueryRecorder,
    sql_info: SqlInfoData,
}

#[derive(Clone)]
pub(crate) struct LakeService(pub(crate) Arc<State>);

impl LakeService {
    pub(crate) fn new(
        tables: FreshTables,
        tokens: Tokens,
        admission: Admission,
        recorder: QueryRecorder,
    ) -> Result<LakeService, QueryError> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "kubetrail");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        let sql_info = info
            .build()
            .map_err(|e| QueryError::Server(e.to_string()))?;
        Ok(LakeService(Arc::new(State {
            tables,
            planned: PlannedStatements::default(),
            tokens,
            admission,
            recorder,
            sql_info,
        })))
    }

    /// The caller of a request, or UNAUTHENTICATED (and a log line) without a valid
    /// bearer token.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let client = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let user = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.0.tokens.user_of(token.trim())
            }
            Some((scheme, basic)) if scheme.eq_ignore_ascii_case("basic") => {
                basic_user(basic, &self.0.tokens)
            }
            _ => None,
        };
        match user {
            Some(user) => Ok(Caller { user, client }),
            None => {
                self.0.recorder.metrics.refused_call();
                // The scheme only: a wrong token is still a secret of someone's.
                tracing::warn!(
                    client,
                    credential = header.split(' ').next().unwrap_or_default(),
                    "refused a call without a valid token"
                );
                Err(Status::unauthenticated(
                    "a valid bearer token is needed (kubetrail token create NAME)",
                ))
            }
        }
    }

    /// Plans the statement (which refuses anything but reading) down to the plan that runs,
    /// over the lake as it is now. Its schema is the one the batches will have: a logical
    /// plan's may still hold types the analyzer resolves later (a union whose first branch
    /// selects `NULL` names a `Null` column that arrives as text, and a client told `Null`
    /// fails on the data).
    async fn plan(&self, caller: &Caller, sql: &str) -> Result<Planned, Status> {
        let planned = async {
            let session = self.0.tables.session().await?;
            let plan = session.sql(sql).await?.create_physical_plan().await?;
            Ok::<_, QueryError>((session, plan))
        }
        .await;
        planned.map_err(|e| {
            let status = refusal(&e);
            let mut record = caller.record(sql);
            let message = Some(status.message().to_owned());
            record.finish(Outcome::of_error(&e), message, Instant::now());
            self.0.recorder.record(record);
            status
        })
    }

    /// A statement's flight info, its plan kept for the `DoGet` its ticket comes back in.
    fn statement_info(&self, sql: &str, planned: Planned) -> Result<FlightInfo, Status> {
        let (session, plan) = planned;
        let schema = plan.schema();
        let id = self.0.planned.keep(sql, session, plan);
        let ticket = TicketStatementQuery {
            statement_handle: TicketStatement::encode(id, sql).into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))
            .map(|info| info.with_endpoint(endpoint).with_ordered(true))
    }

    /// Runs a statement and streams its batches as they come, within the query's time
    /// and memory, once a turn is free.
    async fn execute(
        &self,
        caller: Caller,
        ticket: TicketStatement,
    ) -> Result<Response<DoGetStream>, Status> {
        let started = Instant::now();
        let sql = &ticket.sql;
        let limits = *self.0.admission.limits();
        let deadline = tokio::time::Instant::now() + limits.query_timeout;
        let mut record = caller.record(sql);
        let turn = match tokio::time::timeout_at(deadline, self.0.admission.turn()).await {
            Ok(turn) => turn,
            Err(_) => {
                let status = timeout_status(&limits);
                record.finish(Outcome::Timeout, Some(status.message().to_owned()), started);
                self.0.recorder.record(record);
                return Err(status);
            }
        };
        let planned = async {
            let (session, plan) = match self.0.planned.take(&ticket) {
                Some(kept) => kept,
                None => {
                    let session = self.0.tables.session().await?;
                    let plan = session.sql(sql).await?.create_physical_plan().await?;
                    (session, plan)
                }
            };
            // The query's own memory pool, drawing on the server's.
            let runtime = self
                .0
                .admission
                .runtime(session.context().runtime_env().as_ref())?;
            let stream = execute_stream(plan, session.task_in(runtime))?;
            let schema = stream.schema();
            Ok::<_, QueryError>((session, schema, stream))
        }
        .await;
        let (session, schema, stream) = match planned {
            Ok(p) => p,
            Err(e) => {
                let status = refusal(&e);
                record.finish(
                    Outcome::of_error(&e),
                    Some(status.message().to_owned()),
                    started,
                );
                self.0.recorder.record(record);
                return Err(status);
            }
        };
        self.0.recorder.metrics.started_running();
        let running = Running {
            state: self.0.clone(),
            record: Some(record),
            recorder: self.0.recorder.clone(),
            started,
            _turn: turn,
            _session: session,
        };
        // Batches until the end, the first error, or the deadline.
        let batches =
            futures::stream::unfold((stream, false), move |(mut stream, done)| async move {
                if done {
                    return None;
                }
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(None) => None,
                    Ok(Some(Ok(batch))) => Some((Ok(batch), (stream, false))),
                    Ok(Some(Err(e))) => Some((
                        Err(FlightError::Tonic(Box::new(execution_status(&e)))),
                        (stream, true),
                    )),
                    Err(_) => Some((
                        Err(FlightError::Tonic(Box::new(timeout_status(&limits)))),
                        (stream, true),
                    )),
                }
            });
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches);
        let counted = futures::stream::unfold(
            (encoded, running),
            |(mut encoded, mut running)| async move {
                match encoded.next().await {
                    Some(Ok(data)) => {
                        running.sent(&data);
                        Some((Ok(data), (encoded, running)))
                    }
                    Some(Err(e)) => {
                        let status = match e {
                            FlightError::Tonic(status) => *status,
                            other => Status::internal(one_line(&other.to_string())),
                        };
                        running.end(outcome_of(&status), Some(status.message().to_owned()));
                        Some((Err(status), (encoded, running)))
                    }
                    None => {
                        running.end(Outcome::Ok, None);
                        None
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(counted)))
    }

    /// A metadata answer (catalogs, schemas, tables) as one batch.
    fn one_batch(batch: arrow::array::RecordBatch) -> Response<DoGetStream> {
        let schema = batch.schema();
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter([Ok(batch)]))
            .map(|r| r.map_err(Status::from));
        Response::new(Box::pin(stream))
    }

    fn metadata_info<M: ProstMessageExt>(
        query: M,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }
}

/// A query that is streaming: its turn and session held until its stream is done or
/// dropped (a client that went away), and its record written either way.
struct Running {
    state: Arc<State>,
    record: Option<QueryRecord>,
    recorder: QueryRecorder,
    started: Instant,
    _turn: tokio::sync::OwnedSemaphorePermit,
    _session: Arc<LakeSession>,
}

impl Running {
    fn sent(&mut self, data: &FlightData) {
        if let Some(r) = &mut self.record {
            r.bytes += (data.data_header.len() + data.data_body.len()) as u64;
            if !data.data_body.is_empty() {
                if let Ok(message) = arrow::ipc::root_as_message(&data.data_header) {
                    if let Some(batch) = message.header_as_record_batch() {
                        r.rows += u64::try_from(batch.length()).unwrap_or_default();
                    }
                }
            }
        }
    }

    fn end(&mut self, outcome: Outcome, error: Option<String>) {
        if let Some(mut r) = self.record.take() {
            self.state.recorder.metrics.stopped_running();
            r.finish(outcome, error, self.started);
            tracing::debug!(
                server_memory = self.state.admission.memory_in_use(),
                "memory held by running queries"
            );
            self.recorder.record(r);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end(Outcome::Cancelled, None);
    }
}

/// How a query that failed while streaming ended, from what the client was told.
fn outcome_of(status: &Status) -> Outcome {
    match status.code() {
        tonic::Code::ResourceExhausted => Outcome::OutOfMemory,
        tonic::Code::DeadlineExceeded => Outcome::Timeout,
        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

/// `user:token` in a Basic header, when the token is that user's.
fn basic_user(encoded: &str, tokens: &Tokens) -> Option<String> {
    let (user, token) = basic_credentials(encoded)?;
    tokens.user_of(&token).filter(|u| *u == user)
}

/// The user name and token of a Basic header's value. Clients differ on base64 padding
/// (Go's Flight client leaves it out), so either is read.
fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let text = String::from_utf8(LENIENT.decode(encoded.trim()).ok()?).ok()?;
    let (user, token) = text.split_once(':')?;
    Some((user.to_owned(), token.to_owned()))
}

fn one_line(s: &str) -> String {
    crate::shell::one_line(s)
}

/// A statement refused or failed while planning, as the client sees it.
fn refusal(e: &QueryError) -> Status {
    match e {
        QueryError::ReadOnly(m) => Status::permission_denied(m.clone()),
        QueryError::Sql(e) => execution_status(e),
        other => Status::invalid_argument(one_line(&other.to_string())),
    }
}

fn execution_status(e: &DataFusionError) -> Status {
    let message = one_line(&e.to_string());
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(format!(
            "the query needs more memory than it may hold: {message}"
        )),
        DataFusionError::ExecutionJoin(_) | DataFusionError::Internal(_) => {
            Status::internal(message)
        }
        _ => Status::invalid_argument(message),
    }
}

fn timeout_status(limits: &super::Limits) -> Status {
    Status::deadline_exceeded(format!(
        "the query ran past its time limit ({} s; [server] query_timeout)",
        limits.query_timeout.as_secs()
    ))
}

#[tonic::async_trait]
impl FlightSqlService for LakeService {
    type FlightService = LakeService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // Basic (user name and token as password, what JDBC and ADBC send) is answered
        // with the bearer token the next calls carry.
        let caller = self.caller(&request)?;
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                basic_credentials(rest).map(|(_, t)| t).unwrap_or_default()
            }
            Some((_, rest)) => rest.trim().to_owned(),
            None => String::new(),
        };
        tracing::info!(user = caller.user, client = caller.client, "handshake");
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(answer)])));
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("the token is not a header value"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request)?;
        let planned = self.plan(&caller, &query.query).await?;
        let info = self
            .statement_info(&query.query, planned)?
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let ticket =
            TicketStatement::decode(&ticket.statement_handle).map_err(Status::invalid_argument)?;
        self.execute(caller, ticket).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request)?;
        let (_, plan) = self.plan(&caller, &query.query).await?;
        let schema = plan.schema();
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        // The handle is the statement itself: the server keeps nothing between calls.
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request)?;
        let sql = String::from_utf8(cmd.prepared_statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the handle is not a statement"))?;
        let planned = self.plan(&caller, &sql).await?;
        let info = self
            .statement_info(&sql, planned)?
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request)?;
        let sql = String::from_utf8(cmd.prepared_statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the handle is not a statement"))?;
        self.execute(caller, TicketStatement { plan: None, sql })
            .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.caller(&request)?;
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        builder.append("datafusion");
        Ok(Self::one_batch(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        builder.append("datafusion", "public");
        Ok(Self::one_batch(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        let session = self.0.tables.session().await.map_err(|e| refusal(&e))?;
        let mut builder = query.into_builder();
        let ctx = session.context();
        let public = ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .ok_or_else(|| Status::internal("no public schema"))?;
        let mut names = public.table_names();
        names.sort();
        for name in names {
            if let Ok(Some(table)) = public.table(&name).await {
                let kind = match table.table_type() {
                    datafusion::datasource::TableType::View => "VIEW",
                    _ => "TABLE",
                };
                builder
                    .append("datafusion", "public", &name, kind, &table.schema())
                    .map_err(|e| Status::internal(e.to_string()))?;
            }
        }
        Ok(Self::one_batch(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder().schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        Ok(Self::one_batch(
            builder
                .build()
                .map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder(&self.0.sql_info).schema();
        Self::metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        let batch = query
            .into_builder(&self.0.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::one_batch(batch))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        Err(Status::unimplemented(format!(
            "{} is not served: the lake is read-only",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
