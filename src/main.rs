//! The `kubetrail` command line: parses arguments and wires the crates together.
//!
//! Exit codes: 0 success; 1 error (one line on stderr); 2 bad usage; 3 finished, but
//! some input records were rejected into `dead_letters`.

mod cli;
mod cluster;
mod config;
mod demo;
mod detect;
mod export;
mod ingest;
mod lake;
mod produce;
mod progress;
mod query;
mod redaction;
mod serve;
mod timeline;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

// Decoding allocates and frees many small strings per event on every core: mimalloc takes a
// quarter off ingest's time against glibc's allocator. Without transparent huge pages (the
// `no_thp` feature), which would otherwise double the resident memory of queries
// (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn version() -> anyhow::Result<Outcome> {
    let (librdkafka, features) = kubetrail_ingest::kafka::librdkafka();
    println!(
        "kubetrail {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        env!("KUBETRAIL_COMMIT")
    );
    println!("librdkafka {librdkafka} (builtin.features: {features})");
    println!("DataFusion {}", datafusion::DATAFUSION_VERSION);
    println!("delta-rs {}", deltalake::crate_version());
    Ok(Outcome::Ok)
}

/// How a command that ran to the end went.
pub enum Outcome {
    Ok,
    /// Some records went to dead letters.
    Rejected,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A long-running ingester says what it commits (one line per commit, partitions
    // assigned and revoked); one-shot commands stay quiet unless something is wrong.
    let ours = match &cli.command {
        Command::Ingest(cli::IngestCmd::Kafka(_)) => "kubetrail_ingest=info",
        Command::Detect(cli::DetectCmd::Schedule { .. }) => {
            "kubetrail=info,kubetrail_detections=info"
        }
        // A server logs each query and each refused call.
        Command::Serve(_) => "kubetrail=info,kubetrail_query=info",
        Command::Cluster(_) => "warn,ballista_scheduler=info,ballista_executor=info",
        _ => "kubetrail_ingest=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBETRAIL_LOG").unwrap_or_else(|_| {
                // delta-rs logs a failed commit as an error of its own; kubetrail reports
                // it (one line), so the second line is off. Its merge warns of a metric
                // it derives itself on every alerts write: nothing a responder can act on.
                // Ballista's client logs a failed job as an error; kubetrail reports it.
                tracing_subscriber::EnvFilter::new(format!(
                    "warn,{ours},buoyant_kernel=off,deltalake_core::writer::stats=error,\
                     deltalake_core::kernel::transaction=off,deltalake_core::operations::merge=error,\
                     ballista_core::execution_plans::distributed_query=off"
                ))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match config::Config::load(cli.config.as_deref()) {
        Ok(config) => match cli.command {
            Command::Ingest(cmd) => ingest::run(cmd, &config).await,
            Command::Sql(cmd) => query::sql(cmd, &config).await,
            Command::Shell(cmd) => query::shell(cmd, &config).await,
            Command::Tables(cmd) => query::tables(cmd, &config).await,
            Command::Demo(cmd) => demo::run(cmd).await,
            Command::Samples(cmd) => samples(cmd),
            Command::Lake(cmd) => lake::run(cmd, &config).await,
            Command::Produce(cmd) => produce::run(cmd, &config).await,
            Command::Timeline(cmd) => timeline::run(cmd, &config).await,
            Command::Detect(cmd) => detect::run(cmd, &config).await,
            Command::Export(cmd) => export::run(cmd, &config).await,
            Command::Serve(cmd) => serve::serve(cmd, &config).await,
            Command::Token(cmd) => serve::token(cmd, &config),
            Command::Cluster(cmd) => cluster::run(cmd, &config).await,
            Command::Version => version(),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(3),
        Err(e) => {
            // One line, never a backtrace: the causes joined, each said once (many library
            // errors repeat their cause in their own message).
            let mut line = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if !line.contains(&cause) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&cause);
                }
            }
            let mut line = line.split_whitespace().collect::<Vec<_>>().join(" ");
            if line.is_empty() {
                line = "unknown error".into();
            }
            eprintln!("kubetrail: {line}");
            // Out now, before the runtime shuts down: tasks still in flight (delta-rs's log
            // replay waits on the runtime from a thread of its own) would be cancelled and
            // panic, a second message after the one line. Whatever must be kept was
            // committed before the error came back.
            let _ = std::io::stderr().flush();
            std::process::exit(1)
        }
    }
}

fn samples(cmd: cli::SamplesCmd) -> anyhow::Result<Outcome> {
    if cmd.events == 0 {
        let files = kubetrail_samples::write_sample_set(&cmd.out, cmd.seed)?;
        for f in &files {
            println!("{:<28} {:<14} {:>6} events", f.name, f.format, f.events);
        }
    } else {
        let files = kubetrail_samples::write_volume(&cmd.out, cmd.events, cmd.seed, cmd.days)?;
        println!(
            "wrote {} audit events and {} each of flows and runtime events: {}",
            cmd.events,
            cmd.events / kubetrail_samples::OTHER_STREAMS_PER_AUDIT,
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Outcome::Ok)
}
