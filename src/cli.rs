//! Arguments of every verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kubetrail",
    version,
    about = "Forensic data pipeline for Kubernetes: audit logs, network flows and runtime events in a Delta lake, with SQL on top"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Load evidence into the lake.
    #[command(subcommand)]
    Ingest(IngestCmd),
    /// Run one SQL statement over the lake.
    Sql(SqlCmd),
    /// Interactive SQL shell.
    Shell(LakeArgs),
    /// Row counts, files and time range of each table.
    Tables(LakeArgs),
    /// The whole pipeline on the built-in incident scenario, with nothing to set up.
    Demo(DemoCmd),
    /// Write the native-format sample files (or, with --events, benchmark volumes).
    Samples(SamplesCmd),
}

#[derive(Args, Clone)]
pub struct LakeArgs {
    /// Lake directory.
    #[arg(long, env = "KUBETRAIL_LAKE", default_value = "./kubetrail-lake")]
    pub lake: String,
}

#[derive(Subcommand)]
pub enum IngestCmd {
    /// Ingest files (plain or gzip) or stdin (`-`).
    File(IngestFileCmd),
}

#[derive(Args)]
pub struct IngestFileCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// auto, k8s-audit, aws-vpc-flow, gcp-vpc-flow, hubble, calico, tetragon or falco.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Cluster name for records that do not carry one.
    #[arg(long, env = "KUBETRAIL_CLUSTER")]
    pub cluster: Option<String>,
    /// Extra JSON path to redact in audit request/response objects (repeatable), e.g.
    /// spec.containers.*.env.*.value
    #[arg(long = "redact-path")]
    pub redact_paths: Vec<String>,
    /// Do not show a progress bar even on a terminal.
    #[arg(long)]
    pub quiet: bool,
    /// Files to ingest; `-` reads standard input.
    #[arg(required = true)]
    pub paths: Vec<String>,
}

#[derive(Args)]
pub struct SqlCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// table, csv, json or parquet.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Write the result to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The statement.
    pub sql: String,
}

#[derive(Args)]
pub struct DemoCmd {
    /// Where to build the demo lake (default: a new temporary directory).
    #[arg(long)]
    pub lake: Option<PathBuf>,
}

#[derive(Args)]
pub struct SamplesCmd {
    /// Directory to write into.
    #[arg(long)]
    pub out: PathBuf,
    /// Events per stream for benchmark volumes; 0 writes the sample set.
    #[arg(long, default_value_t = 0)]
    pub events: u64,
    /// Days the volume spans.
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    #[arg(long, default_value_t = kubetrail_samples::SEED)]
    pub seed: u64,
}
