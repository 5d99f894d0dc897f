//! `kubetrail ingest file | kafka`.

use std::collections::BTreeMap;

use anyhow::Context;
use kubetrail_detections::EventLoader;
use kubetrail_ingest::{
    ingest_kafka, FileIngest, FileIngester, IngestMetrics, InputPath, InputReport, KafkaIngest,
};
use kubetrail_lake::Lake;
use kubetrail_schemas::{DecodeOptions, SourceFormat, Table};

use crate::cli::{parse_duration, IngestCmd, IngestFileCmd, IngestKafkaCmd};
use crate::config::Config;
use crate::redaction::redactor;
use crate::{progress, Outcome};

pub async fn run(cmd: IngestCmd, config: &Config) -> anyhow::Result<Outcome> {
    match cmd {
        IngestCmd::File(cmd) => file(cmd, config).await,
        IngestCmd::Kafka(cmd) => kafka(cmd, config).await,
    }
}

/// `detect test`'s events go through the same decoders and ingest path as production.
pub struct RuleTestLoader;

impl EventLoader for RuleTestLoader {
    fn load<'a>(
        &'a self,
        lake: &'a Lake,
        format: Option<SourceFormat>,
        path: &'a std::path::Path,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let report = kubetrail_ingest::ingest_one_file(lake, path, format).await;
            report.map(|r| r.dead_letters()).map_err(|e| e.to_string())
        })
    }
}

/// Decoding options shared by every source: cluster name and redaction.
async fn decode_options(
    lake: &Lake,
    cluster: Option<String>,
    extra_paths: &[String],
    config: &Config,
) -> anyhow::Result<DecodeOptions> {
    let mut redact_paths = config.redaction.paths.clone();
    redact_paths.extend(extra_paths.iter().cloned());
    let cluster = cluster.or_else(|| config.cluster.clone());
    if let Some(name) = &cluster {
        // A DNS name's length at most, as cluster names are; it goes on every row.
        anyhow::ensure!(
            !name.is_empty() && name.len() <= MOST_CLUSTER_NAME,
            "cluster name of {} bytes: expected 1 to {MOST_CLUSTER_NAME}",
            name.len()
        );
    }
    Ok(DecodeOptions {
        cluster,
        redactor: redactor(lake, &config.redaction, &redact_paths).await?,
    })
}

const MOST_CLUSTER_NAME: usize = 253;

async fn file(cmd: IngestFileCmd, config: &Config) -> anyhow::Result<Outcome> {
    let format = match cmd.format.as_str() {
        "auto" => None,
        other => Some(other.parse::<SourceFormat>().map_err(anyhow::Error::msg)?),
    };
    let lake = config.lake(cmd.lake.lake.as_deref())?;
    let options = FileIngest {
        format,
        decode: decode_options(&lake, cmd.cluster.clone(), &cmd.redact_paths, config).await?,
        limits: config.ingest.limits()?,
        max_record_bytes: config
            .ingest
            .max_record_bytes(FileIngest::default().max_record_bytes)?,
    };
    let progress = progress::for_terminal(cmd.quiet);
    let mut totals: BTreeMap<Table, u64> = BTreeMap::new();
    let mut ingester = FileIngester::new(&lake, options);
    for path in &cmd.paths {
        let input = InputPath::parse(path);
        let report = ingester.ingest(&input, progress.clone()).await?;
        println!("{}", describe(&report));
        for (table, rows) in &report.rows {
            *totals.entry(*table).or_default() += rows;
        }
    }
    print_totals(&totals);
    let rejected = totals.get(&Table::DeadLetters).copied().unwrap_or(0);
    Ok(if rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
}

async fn kafka(cmd: IngestKafkaCmd, config: &Config) -> anyhow::Result<Outcome> {
    let settings = &config.kafka;
    let brokers = cmd
        .brokers
        .clone()
        .or_else(|| settings.brokers.clone())
        .context("no brokers: pass --brokers HOST:PORT or set kafka.brokers")?;
    let group = cmd
        .group
        .clone()
        .or_else(|| settings.group.clone())
        .unwrap_or_else(|| "kubetrail".to_owned());
    let mut topics = cmd.topics.clone();
    if topics.is_empty() {
        for t in &settings.topics {
            topics.push(t.parse().map_err(anyhow::Error::msg)?);
        }
    }
    anyhow::ensure!(
        !topics.is_empty(),
        "no topic to read: pass --topic NAME=FORMAT (or set kafka.topics)"
    );
    let lake = config.lake(cmd.lake.lake.as_deref())?;
    let mut options = KafkaIngest::new(&brokers, &group, topics);
    options.decode = decode_options(&lake, cmd.cluster.clone(), &cmd.redact_paths, config).await?;
    options.limits = config.ingest.limits()?;
    if let Some(linger) = cmd.linger {
        options.linger = linger;
    } else if let Some(text) = &settings.linger {
        options.linger = parse_duration(text).map_err(|e| anyhow::anyhow!("kafka.linger: {e}"))?;
    }
    options.until_caught_up = cmd.until_caught_up;
    if cmd.no_compaction || settings.compact_closed_days == Some(false) {
        options.compact_every = None;
    }
    options.client_options = settings.client_options(&cmd.kafka)?;
    let metrics = IngestMetrics::new();
    if let Some(addr) = cmd.metrics_addr.or(settings.metrics_addr) {
        let bound = kubetrail_ingest::metrics::serve(addr, metrics.clone()).await?;
        eprintln!("metrics at http://{bound}/metrics");
    }
    let report = ingest_kafka(&lake, options, metrics, shutdown_signal()).await?;
    match report.reading {
        Some(took) if report.records > 0 => println!(
            "{} records read, {} commits; {:.1} s from the first record to the last commit \
             ({:.0} records/s)",
            report.records,
            report.commits,
            took.as_secs_f64(),
            report.records as f64 / took.as_secs_f64().max(1e-3)
        ),
        _ => println!(
            "{} records read, {} commits",
            report.records, report.commits
        ),
    }
    if report.rewinds > 0 {
        println!(
            "{} times records were dropped before their commit (a partition taken over, or a \
             commit that failed) and read again from the lake's markers",
            report.rewinds
        );
    }
    if report.expired > 0 {
        println!(
            "{} records had expired in Kafka before the lake held them: each range is a \
             dead letter (SELECT * FROM dead_letters WHERE reason LIKE '%expired in Kafka%')",
            report.expired
        );
    }
    print_totals(&report.rows);
    Ok(Outcome::Ok)
}

/// SIGINT or SIGTERM: a long-running command finishes what it has in hand and exits 0.
/// The handlers are installed when this is called, not when the future is first polled,
/// so a signal during start-up or a first long round is not the default kill.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn describe(r: &InputReport) -> String {
    let format = r.format.map_or("unrecognised", |f| f.name());
    if r.already_ingested {
        return format!(
            "{}: already ingested (blake3 {}), nothing written",
            r.source,
            &r.content_hash[..12]
        );
    }
    let rows: Vec<String> = r.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!(
        "{}: {format}, {} records -> {}",
        r.source,
        r.records,
        if rows.is_empty() {
            "nothing".to_owned()
        } else {
            rows.join(", ")
        }
    )
}

pub fn print_totals(totals: &BTreeMap<Table, u64>) {
    println!("rows written:");
    for table in Table::INGESTED {
        println!(
            "  {:<16} {:>10}",
            table.name(),
            totals.get(&table).copied().unwrap_or(0)
        );
    }
}
