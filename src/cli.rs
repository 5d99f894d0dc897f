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
    /// Settings file (default: ./kubetrail.toml when present).
    #[arg(long, global = true, env = "KUBETRAIL_CONFIG")]
    pub config: Option<PathBuf>,
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
    /// Maintain the lake: compact, vacuum, drop old partitions.
    #[command(subcommand)]
    Lake(LakeCmd),
}

#[derive(Subcommand)]
pub enum LakeCmd {
    /// Compact each day's small files into files sorted by time.
    Optimize {
        #[command(flatten)]
        lake: LakeArgs,
        /// Only this table (default: every table).
        #[arg(long)]
        table: Option<String>,
        /// Only this day (YYYY-MM-DD).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Delete files no table version younger than --retain needs.
    Vacuum {
        #[command(flatten)]
        lake: LakeArgs,
        #[arg(long)]
        table: Option<String>,
        /// How long replaced files stay readable (time travel), e.g. 168h or 7d.
        #[arg(long, default_value = "168h", value_parser = parse_duration)]
        retain: std::time::Duration,
    },
    /// Drop whole days older than --older-than (files go at the next vacuum).
    Retention {
        #[command(flatten)]
        lake: LakeArgs,
        #[arg(long)]
        table: Option<String>,
        /// e.g. 400d.
        #[arg(long, value_parser = parse_duration)]
        older_than: std::time::Duration,
    },
}

/// `90s`, `15m`, `168h`, `400d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 168h or 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': the unit must be s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(n * seconds))
}

#[derive(Args, Clone)]
pub struct LakeArgs {
    /// Lake directory [default: the config file's `lake`, else ./kubetrail-lake].
    #[arg(long, env = "KUBETRAIL_LAKE")]
    pub lake: Option<String>,
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
