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
    /// Send native-format files to a Kafka topic, one record per event.
    Produce(ProduceCmd),
    /// Everything about one pod, identity, address, node or container across the three
    /// streams, in time order.
    Timeline(TimelineCmd),
    /// Detection rules: list them, run their inline tests, run them over the lake.
    #[command(subcommand)]
    Detect(DetectCmd),
    /// Serve the lake over Arrow Flight SQL (ADBC, JDBC, pyarrow): token-authenticated,
    /// read-only, each query bounded in memory and time.
    Serve(ServeCmd),
    /// Tokens for `serve`: the file keeps only their hashes.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The lake in other tools' shapes.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Run queries on an Apache Ballista cluster: its scheduler, or one of its executors.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// kubetrail's version and commit, and the versions of librdkafka (with its built-in
    /// features: TLS, SASL), DataFusion and delta-rs.
    Version,
}

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Ballista's scheduler: plans the queries `--engine ballista://HOST:PORT` sends and
    /// hands their tasks to the executors.
    Scheduler {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:50050")]
        addr: std::net::SocketAddr,
    },
    /// A Ballista executor: runs tasks, reading the lake's files itself (a local lake must
    /// be at the same path on every executor's machine; a lake on object storage is read
    /// with this executor's own `[lake.storage]` options and credentials).
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long)]
        scheduler: String,
        #[command(flatten)]
        lake: LakeArgs,
        /// Where to listen for shuffle reads; its gRPC service takes the next port.
        #[arg(long, default_value = "127.0.0.1:50061")]
        addr: std::net::SocketAddr,
        /// Where shuffle files go [default: a new temporary directory].
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks at a time [default: the machine's cores].
        #[arg(long)]
        tasks: Option<usize>,
    },
}

/// Where a command's queries run.
#[derive(Args, Default)]
pub struct EngineArg {
    /// `local` or `ballista://HOST:PORT` [default: [query] engine, else local].
    #[arg(long)]
    pub engine: Option<String>,
}

#[derive(Args)]
pub struct ServeCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Where to listen [default: [server] addr, else 127.0.0.1:50051].
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// The tokens file [default: [server] tokens_file].
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// PEM certificate (chain): TLS, with --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics [default: [server] metrics_addr, else none].
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Add NAME and print its token, once.
    Create {
        name: String,
        #[arg(long)]
        tokens_file: Option<PathBuf>,
    },
    /// Remove NAME's token; a running server refuses it from its next call.
    Revoke {
        name: String,
        #[arg(long)]
        tokens_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ExportCmd {
    /// OCSF 1.1.0 classes as Parquet, laid out as AWS Security Lake takes a custom source:
    /// OUTPUT/ext/<source>/region=<region>/accountId=<account>/eventDay=<YYYYMMDD>/.
    Ocsf {
        #[command(flatten)]
        lake: LakeArgs,
        /// api_activity (6003, from k8s_audit), network_activity (4001), process_activity
        /// (1007) or detection_finding (2004); repeatable, or `all`.
        #[arg(long, required = true)]
        table: Vec<String>,
        /// Start of the window.
        #[arg(long)]
        from: String,
        /// End of the window (exclusive).
        #[arg(long)]
        to: String,
        /// A directory, or the Security Lake bucket (s3://aws-security-data-lake-…/).
        #[arg(long)]
        output: String,
        /// The custom source's name [default: kubetrail-<class>, e.g. kubetrail-api-activity];
        /// one class per source, as Security Lake wants.
        #[arg(long)]
        source_name: Option<String>,
        /// The region partition value.
        #[arg(long, env = "AWS_REGION")]
        region: String,
        /// The account id partition value (the AWS account or external id of the source).
        #[arg(long)]
        account_id: String,
    },
}

#[derive(Args, Clone)]
pub struct RulesArgs {
    /// Rules directory (<area>/<id>.yaml); default: the pack built into kubetrail.
    #[arg(long, env = "KUBETRAIL_RULES")]
    pub rules: Option<PathBuf>,
    /// The pack built into kubetrail as well as --rules (imported Sigma rules beside it).
    #[arg(long, requires = "rules")]
    pub with_builtin: bool,
}

#[derive(Subcommand)]
pub enum DetectCmd {
    /// Every rule: id, severity, ATT&CK techniques, title.
    List {
        #[command(flatten)]
        rules: RulesArgs,
    },
    /// The pack as Markdown (docs/detections.md): per rule its intent, the streams and
    /// audit level it needs, its false positives and tests.
    Catalog {
        #[command(flatten)]
        rules: RulesArgs,
    },
    /// Run every rule's inline tests through the real decoders and engine.
    Test {
        #[command(flatten)]
        rules: RulesArgs,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
    },
    /// The rules over the ATT&CK techniques that matter in Kubernetes (the Containers
    /// matrix and the Kubernetes threat matrix): what covers each, what nothing covers,
    /// and whether each rule's inline tests pass.
    Coverage {
        #[command(flatten)]
        rules: RulesArgs,
        /// table, json or html (one self-contained page).
        #[arg(long, default_value = "table")]
        format: String,
        /// Leave the inline tests out (they take a minute on the whole pack).
        #[arg(long)]
        no_tests: bool,
    },
    /// Translate Sigma rules for Kubernetes audit logs (SigmaHQ's
    /// rules/application/kubernetes) into rule files; run them with --rules DIR.
    ImportSigma {
        /// Sigma rule files, or directories searched for *.yml and *.yaml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write each rule to DIR/sigma/<id>.yaml; without it the rules are printed.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Run the rules over a window of the lake; new alerts go to the `alerts` table.
    Run {
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        engine: EngineArg,
        #[command(flatten)]
        rules: RulesArgs,
        /// The window: this long up to now (default 24h).
        #[arg(long, value_parser = parse_duration, conflicts_with_all = ["from", "to"])]
        since: Option<std::time::Duration>,
        /// Start of the window (with --to).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End of the window (exclusive).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// How far back baselines look before the window.
        #[arg(long, default_value = "14d", value_parser = parse_duration)]
        history: std::time::Duration,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// update (one alert per fact, updated while it goes on; the default) or bucket
        /// (one alert per entity per suppress bucket).
        #[arg(long)]
        grouping: Option<String>,
    },
    /// Run the rules every --every over what arrived since the last round (plus
    /// --lookback for late events) until SIGINT/SIGTERM; the checkpoint is kept in the lake.
    Schedule {
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        rules: RulesArgs,
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        every: std::time::Duration,
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        lookback: std::time::Duration,
        #[arg(long, default_value = "14d", value_parser = parse_duration)]
        history: std::time::Duration,
        /// Also send new and updated alerts to: jsonl:- (stdout), jsonl:FILE,
        /// kafka:BROKERS/TOPIC, webhook:URL (POST, retried with backoff). Repeatable.
        #[arg(long)]
        sink: Vec<String>,
        /// Settings of the kafka: sink's producer.
        #[command(flatten)]
        kafka: KafkaClientArgs,
        /// update (one alert per fact, updated while it goes on; the default) or bucket
        /// (one alert per entity per suppress bucket).
        #[arg(long)]
        grouping: Option<String>,
        #[command(flatten)]
        engine: EngineArg,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("entity").required(true).args(["pod", "user", "ip", "node", "container", "alert"])))]
pub struct TimelineCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    /// A pod: NAMESPACE/NAME.
    #[arg(long)]
    pub pod: Option<String>,
    /// A user or service account (system:serviceaccount:NS:NAME).
    #[arg(long)]
    pub user: Option<String>,
    /// An IP address.
    #[arg(long)]
    pub ip: Option<String>,
    /// A node.
    #[arg(long)]
    pub node: Option<String>,
    /// A container ID (12 or more hex digits).
    #[arg(long)]
    pub container: Option<String>,
    /// An alert ID.
    #[arg(long)]
    pub alert: Option<String>,
    /// Start of the window (2026-11-20T09:30:00Z, '2026-11-20 09:30' or 2026-11-20).
    #[arg(long, requires = "to", conflicts_with = "around")]
    pub from: Option<String>,
    /// End of the window (exclusive).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Centre of the window; its width is --window.
    #[arg(long)]
    pub around: Option<String>,
    /// Width of the window around --around, e.g. 2h.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub window: std::time::Duration,
    /// Hops to follow: 0 the entity alone, 1 also who acted on it and what they did
    /// (or the pods a user touched and what those did next).
    #[arg(long, default_value_t = 1)]
    pub depth: u8,
    /// table, csv, jsonl, parquet, timesketch or html; or evidence: a bundle (the
    /// timeline, the lake rows it stands on, their files' custody records, SHA256SUMS)
    /// written into the new or empty directory --output.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Write to this file (a directory for evidence) instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Keep every event on its own line (repeated similar events are folded by default).
    #[arg(long)]
    pub no_collapse: bool,
    /// Rows read per stream at most; a note says when the limit cut the timeline short.
    #[arg(long, default_value_t = 100_000)]
    pub max_rows: usize,
    /// How far before the window to look for which pod held an address (VPC flow logs
    /// know only addresses; a pod's address may have been announced when it started).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub address_lookback: std::time::Duration,
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
        /// How long replaced files stay readable (time travel), e.g. 168h or 7d; at
        /// least 7 days unless --force.
        #[arg(long, default_value = "168h", value_parser = parse_duration)]
        retain: std::time::Duration,
        /// Allow a retention under 7 days: only when no query or ingest is running.
        #[arg(long)]
        force: bool,
    },
    /// Move the redaction key that lakes written before 2026-12 kept inside themselves
    /// (`_kubetrail/redaction.key`) into a file of its own (0600), then out of the lake.
    MoveKey {
        #[command(flatten)]
        lake: LakeArgs,
        /// The key file to write; then set `[redaction] key_file` to it.
        #[arg(long)]
        to: PathBuf,
    },
    /// Check the custody chain: re-hash every file the tables hold against the manifest
    /// of the commit that added it, walk the log's hash links, and name every modified,
    /// missing or unexpected file and broken link; exits 1 on any.
    Verify {
        #[command(flatten)]
        lake: LakeArgs,
        #[arg(long)]
        table: Option<String>,
        /// Only log entries from this version on (of --table), and the files they added.
        #[arg(long, requires = "table")]
        since: Option<u64>,
        /// A head hash printed by an earlier verify (of --table): the log must still hold
        /// that entry, unchanged.
        #[arg(long, requires = "table")]
        head: Option<String>,
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

pub use kubetrail_query::window::parse_duration;

/// `key=value`, for librdkafka settings.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

/// librdkafka settings for a Kafka client, beside the config file's `[kafka.options]` and
/// `[kafka.secrets]` and the `KUBETRAIL_KAFKA_*` variables of secret settings.
#[derive(Args, Clone, Default)]
pub struct KafkaClientArgs {
    /// A librdkafka setting, KEY=VALUE (repeatable), e.g. security.protocol=SASL_SSL.
    /// Secrets (sasl.password, ssl.key.password...) are refused here: use
    /// --kafka-secret-file or KUBETRAIL_KAFKA_SASL_PASSWORD-style variables.
    #[arg(long = "kafka-option", value_parser = parse_key_value)]
    pub options: Vec<(String, String)>,
    /// A librdkafka setting read from a file, KEY=PATH (repeatable), e.g.
    /// sasl.password=/run/secrets/kafka-password; one trailing newline is dropped.
    #[arg(long = "kafka-secret-file", value_parser = parse_key_value)]
    pub secret_files: Vec<(String, String)>,
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
    /// Consume Kafka topics into the lake, each record exactly once, until SIGINT/SIGTERM.
    Kafka(IngestKafkaCmd),
}

#[derive(Args)]
pub struct IngestKafkaCmd {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT...] [default: the config file's kafka.brokers].
    #[arg(long, env = "KUBETRAIL_BROKERS")]
    pub brokers: Option<String>,
    /// Consumer group; ingesters sharing it split the partitions [default: kubetrail].
    #[arg(long, env = "KUBETRAIL_GROUP")]
    pub group: Option<String>,
    /// A topic and the format of its records: NAME=FORMAT or NAME=auto (repeatable).
    #[arg(long = "topic")]
    pub topics: Vec<kubetrail_ingest::TopicSpec>,
    /// Cluster name for records that do not carry one.
    #[arg(long, env = "KUBETRAIL_CLUSTER")]
    pub cluster: Option<String>,
    /// Extra JSON path to redact in audit request/response objects (repeatable).
    #[arg(long = "redact-path")]
    pub redact_paths: Vec<String>,
    /// Longest a record waits before it is committed [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub linger: Option<std::time::Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9898.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Stop once the lake holds every record the topics had.
    #[arg(long)]
    pub until_caught_up: bool,
    /// Do not compact closed days' small files while running.
    #[arg(long)]
    pub no_compaction: bool,
    #[command(flatten)]
    pub kafka: KafkaClientArgs,
}

#[derive(Args)]
pub struct ProduceCmd {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT...] [default: the config file's kafka.brokers].
    #[arg(long, env = "KUBETRAIL_BROKERS")]
    pub brokers: Option<String>,
    #[arg(long)]
    pub topic: String,
    /// Records per second (default: as fast as the brokers take them).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Key records by their file, so one file's records stay in order in one partition
    /// (VPC flow logs need their header first); default: spread over all partitions.
    #[arg(long)]
    pub key_by_file: bool,
    #[command(flatten)]
    pub kafka: KafkaClientArgs,
    /// Files (plain or gzip) in any format `ingest file` reads; `-` reads standard input.
    #[arg(required = true)]
    pub paths: Vec<String>,
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
    #[command(flatten)]
    pub engine: EngineArg,
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
    /// A directory to build the demo in (its samples, lake and report; default: a new
    /// temporary directory), or an object-store URL for the lake (s3://bucket/prefix;
    /// samples and report then go to a temporary directory).
    #[arg(long)]
    pub lake: Option<String>,
}

#[derive(Args)]
pub struct SamplesCmd {
    /// Directory to write into.
    #[arg(long)]
    pub out: PathBuf,
    /// Audit events for benchmark volumes (plus a fifth as many flows and runtime events);
    /// 0 writes the sample set.
    #[arg(long, default_value_t = 0)]
    pub events: u64,
    /// Days the volume spans.
    #[arg(long, default_value_t = 7)]
    pub days: i64,
    #[arg(long, default_value_t = kubetrail_samples::SEED)]
    pub seed: u64,
}
