//! `kubetrail sql`, `shell` and `tables`.

use std::fs::File;
use std::io::{BufWriter, Write};

use chrono::DateTime;
use kubetrail_query::query_log::{self, local_client, local_user, QueryRecord};
use kubetrail_query::{summarize, write_batches, LakeSession, OutputFormat};

use crate::cli::{LakeArgs, SqlCmd};
use crate::config::Config;
use crate::Outcome;

pub async fn sql(cmd: SqlCmd, config: &Config) -> anyhow::Result<Outcome> {
    let format: OutputFormat = cmd.format.parse().map_err(anyhow::Error::msg)?;
    if format == OutputFormat::Parquet
        && cmd.output.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        anyhow::bail!("parquet output needs --output FILE (or a pipe)");
    }
    let lake = config.lake(cmd.lake.lake.as_deref())?;
    let engine = config.engine(cmd.engine.engine.as_deref())?;
    let session = LakeSession::open_on(&lake, &engine).await?;
    let started = std::time::Instant::now();
    let mut record = QueryRecord::start(&local_user(), &local_client(), "sql", &cmd.sql);
    let batches = match session.query(&cmd.sql).await {
        Ok(b) => b,
        Err(e) => {
            record.failed(&e, started);
            log_query(&lake, record).await;
            return Err(e.into());
        }
    };
    let mut out = output(cmd.output.as_deref())?;
    write_batches(&batches, format, &mut out)?;
    out.flush()?;
    record.answered(&batches, started);
    log_query(&lake, record).await;
    Ok(Outcome::Ok)
}

/// The lake records who looked at it; a lake this user may not write to still answers,
/// and says in one line that the query went unrecorded.
async fn log_query(lake: &kubetrail_lake::Lake, record: QueryRecord) {
    if let Err(e) = query_log::append(lake, &[record]).await {
        eprintln!(
            "kubetrail: warning: the query was not recorded in query_log: {}",
            kubetrail_query::shell::one_line(&e.to_string())
        );
    }
}

/// Where a command's result goes: the `--output` file, else standard output.
pub fn output(path: Option<&std::path::Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(path) => {
            Box::new(BufWriter::new(File::create(path).map_err(|e| {
                anyhow::anyhow!("cannot create {}: {e}", path.display())
            })?))
        }
        None => Box::new(BufWriter::new(std::io::stdout())),
    })
}

pub async fn shell(cmd: LakeArgs, config: &Config) -> anyhow::Result<Outcome> {
    let session = LakeSession::open(&config.lake(cmd.lake.as_deref())?).await?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".kubetrail_history"));
    kubetrail_query::shell::run(&session, history).await?;
    Ok(Outcome::Ok)
}

pub async fn tables(cmd: LakeArgs, config: &Config) -> anyhow::Result<Outcome> {
    let session = LakeSession::open(&config.lake(cmd.lake.as_deref())?).await?;
    println!(
        "{:<16} {:>12} {:>7}  {:<27} {:<27}",
        "table", "rows", "files", "first event", "last event"
    );
    for t in summarize(&session).await? {
        let time = |v: Option<i64>| {
            v.and_then(DateTime::from_timestamp_micros)
                .map_or("-".to_owned(), |d| {
                    d.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
                })
        };
        println!(
            "{:<16} {:>12} {:>7}  {:<27} {:<27}",
            t.name,
            t.rows,
            t.files,
            time(t.first),
            time(t.last)
        );
    }
    Ok(Outcome::Ok)
}
