//! Query latency as a responder's tool sees it, for the serving benchmark (`benches/e2e.py`,
//! step `serve`): N clients each run one SQL statement back to back for a while, either
//! through `kubetrail serve` (Arrow Flight SQL: the statement's flight info, then its
//! stream, read to the end) or in this process on the same lake (plan, execute, read the
//! stream to the end). Prints one JSON line: every query's seconds and the rows it returned.
//!
//! `query-latency --sql FILE --clients N --seconds S (--lake LOCATION | --flight URL --token T)`

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use clap::Parser;
use futures::TryStreamExt;
use kubetrail_lake::Lake;
use kubetrail_query::LakeSession;
use tonic::transport::Channel;

// The in-process side stands for `kubetrail sql` and the detection jobs, so it allocates as
// the kubetrail binary (and so the server) does: with glibc's malloc here, the server's
// overhead was measured against another allocator as much as against the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// The statement, in a file.
    #[arg(long)]
    sql: std::path::PathBuf,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// How long each client keeps querying (after its warm-up queries).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Queries each client runs first and does not count.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Query the lake in this process.
    #[arg(long, conflicts_with = "flight")]
    lake: Option<String>,
    /// Query through a Flight SQL server at this URL (http://127.0.0.1:PORT).
    #[arg(long, requires = "token")]
    flight: Option<String>,
    #[arg(long)]
    token: Option<String>,
}

#[derive(Clone)]
enum Target {
    InProcess(Arc<LakeSession>),
    Flight { url: String, token: String },
}

/// One client's connection: a session shared by the process, or a gRPC channel of its own.
enum Client {
    InProcess(Arc<LakeSession>),
    Flight(Box<FlightSqlServiceClient<Channel>>),
}

impl Client {
    async fn connect(target: &Target) -> Result<Client, String> {
        Ok(match target {
            Target::InProcess(session) => Client::InProcess(session.clone()),
            Target::Flight { url, token } => {
                let channel = Channel::from_shared(url.clone())
                    .map_err(|e| format!("{url}: {e}"))?
                    .connect()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let mut client = FlightSqlServiceClient::new(channel);
                client.set_token(token.clone());
                Client::Flight(Box::new(client))
            }
        })
    }

    /// Runs the statement and reads every row: the rows it returned.
    async fn query(&mut self, sql: &str) -> Result<usize, String> {
        match self {
            Client::InProcess(session) => {
                let stream = session
                    .sql(sql)
                    .await
                    .map_err(|e| e.to_string())?
                    .execute_stream()
                    .await
                    .map_err(|e| e.to_string())?;
                let batches: Vec<_> = stream.try_collect().await.map_err(|e| e.to_string())?;
                Ok(batches.iter().map(|b| b.num_rows()).sum())
            }
            Client::Flight(client) => {
                let info = client
                    .execute(sql.to_owned(), None)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut rows = 0;
                for endpoint in info.endpoint {
                    let ticket = endpoint.ticket.ok_or("an endpoint without a ticket")?;
                    let mut stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
                    while let Some(batch) = stream.try_next().await.map_err(|e| e.to_string())? {
                        rows += batch.num_rows();
                    }
                }
                Ok(rows)
            }
        }
    }
}

/// One client's latencies and the rows its last query returned.
async fn client(
    target: Target,
    sql: Arc<str>,
    warmup: usize,
    seconds: Duration,
) -> Result<(Vec<f64>, usize), String> {
    let mut client = Client::connect(&target).await?;
    let mut rows = None;
    for _ in 0..warmup {
        rows = Some(client.query(&sql).await?);
    }
    let mut latencies = Vec::new();
    let until = Instant::now() + seconds;
    while Instant::now() < until {
        let started = Instant::now();
        let returned = client.query(&sql).await?;
        latencies.push(started.elapsed().as_secs_f64());
        if let Some(earlier) = rows.filter(|&r| r != returned) {
            return Err(format!(
                "a query returned {returned} rows, an earlier one {earlier}"
            ));
        }
        rows = Some(returned);
    }
    Ok((latencies, rows.unwrap_or_default()))
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let sql: Arc<str> = std::fs::read_to_string(&args.sql)
        .map_err(|e| format!("{}: {e}", args.sql.display()))?
        .into();
    let target = match (&args.lake, &args.flight, &args.token) {
        (Some(location), None, _) => {
            let lake = Lake::open(location).map_err(|e| e.to_string())?;
            let session = LakeSession::open(&lake).await.map_err(|e| e.to_string())?;
            Target::InProcess(Arc::new(session))
        }
        (None, Some(url), Some(token)) => Target::Flight {
            url: url.clone(),
            token: token.clone(),
        },
        _ => return Err("give --lake, or --flight and --token".into()),
    };
    let seconds = Duration::from_secs_f64(args.seconds);
    let clients: Vec<_> = (0..args.clients.max(1))
        .map(|_| tokio::spawn(client(target.clone(), sql.clone(), args.warmup, seconds)))
        .collect();
    let mut latencies = Vec::new();
    let mut rows = Vec::new();
    for c in clients {
        let (l, r) = c.await.map_err(|e| e.to_string())??;
        latencies.extend(l);
        rows.push(r);
    }
    if rows.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("clients saw different row counts: {rows:?}"));
    }
    Ok(serde_json::json!({ "latencies_s": latencies, "rows": rows[0] }))
}

#[tokio::main]
async fn main() {
    match run(Args::parse()).await {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("query-latency: {}", e.lines().next().unwrap_or_default());
            std::process::exit(1);
        }
    }
}
