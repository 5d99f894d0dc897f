//! `kubetrail ingest file`.

use std::collections::BTreeMap;

use anyhow::Context;
use kubetrail_ingest::{ingest_file, FileIngest, InputPath, InputReport, Lake};
use kubetrail_schemas::{DecodeOptions, Redactor, SourceFormat, Table};

use kubetrail_ingest::BatchLimits;

use crate::cli::{IngestCmd, IngestFileCmd};
use crate::config::Config;
use crate::{progress, Outcome};

pub async fn run(cmd: IngestCmd, config: &Config) -> anyhow::Result<Outcome> {
    match cmd {
        IngestCmd::File(cmd) => file(cmd, config).await,
    }
}

/// The redaction key: `KUBETRAIL_REDACTION_KEY`, else the lake's own.
pub fn redactor(lake: &Lake, extra_paths: &[String]) -> anyhow::Result<Redactor> {
    let key = match std::env::var("KUBETRAIL_REDACTION_KEY") {
        Ok(k) if !k.is_empty() => k.into_bytes(),
        _ => lake.redaction_key().context("redaction key")?,
    };
    Ok(Redactor::new(&key, extra_paths))
}

async fn file(cmd: IngestFileCmd, config: &Config) -> anyhow::Result<Outcome> {
    let format = match cmd.format.as_str() {
        "auto" => None,
        other => Some(other.parse::<SourceFormat>().map_err(anyhow::Error::msg)?),
    };
    let lake = Lake::open(&config.lake(cmd.lake.lake.as_deref()))?;
    let mut redact_paths = config.redaction.paths.clone();
    redact_paths.extend(cmd.redact_paths.iter().cloned());
    let defaults = FileIngest::default();
    let mib = |n: usize| n << 20;
    let options = FileIngest {
        format,
        decode: DecodeOptions {
            cluster: cmd.cluster.clone().or_else(|| config.cluster.clone()),
            redactor: redactor(&lake, &redact_paths)?,
        },
        limits: BatchLimits {
            max_rows: config.ingest.batch_rows.unwrap_or(defaults.limits.max_rows),
            max_bytes: config
                .ingest
                .batch_mib
                .map_or(defaults.limits.max_bytes, mib),
        },
        max_record_bytes: config
            .ingest
            .max_record_mib
            .map_or(defaults.max_record_bytes, mib),
    };
    let progress = progress::for_terminal(cmd.quiet);
    let mut totals: BTreeMap<Table, u64> = BTreeMap::new();
    for path in &cmd.paths {
        let input = InputPath::parse(path);
        let report = ingest_file(&lake, &input, &options, progress.clone()).await?;
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

pub fn describe(r: &InputReport) -> String {
    let format = r.format.map_or("unrecognised", |f| f.name());
    if r.already_ingested {
        return format!(
            "{}: already ingested (sha256 {}), nothing written",
            r.source,
            &r.sha256[..12]
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
    for table in Table::ALL {
        println!(
            "  {:<16} {:>10}",
            table.name(),
            totals.get(&table).copied().unwrap_or(0)
        );
    }
}
