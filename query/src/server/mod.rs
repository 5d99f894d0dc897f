//! `kubetrail serve`: the lake over Arrow Flight SQL for responders' tools (ADBC, JDBC,
//! notebooks), every call authenticated, SQL read-only, each query bounded and recorded.

mod fresh_tables;
mod limits;
mod metrics;
mod planned;
mod service;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use kubetrail_lake::Lake;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use limits::Limits;

use crate::QueryError;

/// How the server is reached and what bounds it.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub addr: SocketAddr,
    /// PEM certificate chain and key: TLS when given.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub tokens_file: PathBuf,
    pub limits: Limits,
    /// Where Prometheus scrapes `/metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

/// Serves until `shutdown` resolves. Fails at once on a lake that is not there, a tokens
/// file that does not parse, TLS files that do not load, or an address in use.
pub async fn serve(
    lake: &Lake,
    settings: &ServerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), QueryError> {
    let tokens = tokens::Tokens::open(&settings.tokens_file).map_err(QueryError::Server)?;
    let tables = fresh_tables::FreshTables::open(lake).await?;
    let (to_log, log_writer) = crate::query_log::spawn_writer(lake.clone());
    let metrics = Arc::new(metrics::ServerMetrics::default());
    let recorder = QueryRecorder {
        to_log,
        metrics: metrics.clone(),
    };
    let admission = limits::Admission::new(settings.limits);
    if let Some(addr) = settings.metrics_addr {
        // The counters and the memory reading only: a clone of the recorder would keep the
        // query_log channel open, and the shutdown would wait on it forever.
        let memory = admission.memory_gauge();
        let render = Arc::new(move || metrics.render(memory()));
        kubetrail_lake::metrics_endpoint::serve(addr, render).await?;
    }
    let service = service::LakeService::new(tables, tokens, admission, recorder)?;
    let mut server = Server::builder();
    if let Some((cert, key)) = &settings.tls {
        // Another crate may have chosen already; either is a sound provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| QueryError::Server(format!("{}: {e}", p.display())))
        };
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        server = server
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| QueryError::Server(format!("TLS: {e}")))?;
    }
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| QueryError::Server(format!("cannot listen on {}: {e}", settings.addr)))?;
    let addr = listener.local_addr()?;
    ready(addr);
    let served = server
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY each answer's last segment waited for the client's
            // delayed ACK: ≈ 40 ms added to every query (a tonic server only sets it on
            // connections it accepts itself).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| QueryError::Server(e.to_string()));
    // The service (every sender of records) is gone: the writer commits what is left.
    let _ = log_writer.await;
    served
}

/// Where the server's query records go: a line in its log, and `query_log`.
#[derive(Clone)]
pub(crate) struct QueryRecorder {
    to_log: tokio::sync::mpsc::UnboundedSender<crate::query_log::QueryRecord>,
    pub(crate) metrics: Arc<metrics::ServerMetrics>,
}

impl QueryRecorder {
    pub(crate) fn record(&self, r: crate::query_log::QueryRecord) {
        tracing::info!(
            user = r.user,
            client = r.client,
            outcome = r.outcome.name(),
            rows = r.rows,
            bytes = r.bytes,
            millis = r.millis,
            error = r.error.as_deref().unwrap_or(""),
            sql = r.sql,
            "query"
        );
        self.metrics.finished(&r);
        let _ = self.to_log.send(r);
    }
}
