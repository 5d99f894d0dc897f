//! `kubetrail lake optimize | vacuum | retention`.

use kubetrail_lake::maintenance::{drop_before, optimize, vacuum, Days, Retention};
use kubetrail_schemas::Table;

use crate::cli::LakeCmd;
use crate::config::Config;
use crate::Outcome;

fn tables(only: Option<&str>) -> anyhow::Result<Vec<Table>> {
    match only {
        Some(name) => Ok(vec![name.parse().map_err(anyhow::Error::msg)?]),
        None => Ok(Table::ALL.to_vec()),
    }
}

pub async fn run(cmd: LakeCmd, config: &Config) -> anyhow::Result<Outcome> {
    match cmd {
        LakeCmd::Optimize { lake, table, date } => {
            let lake = config.lake(lake.lake.as_deref())?;
            for t in tables(table.as_deref())? {
                let days = date.map_or(Days::All, Days::On);
                let r = optimize(&lake, t, days).await?;
                println!(
                    "{:<16} {} partition(s): {} files -> {}",
                    t.name(),
                    r.partitions,
                    r.files_removed,
                    r.files_added
                );
            }
        }
        LakeCmd::Vacuum {
            lake,
            table,
            retain,
            force,
        } => {
            let retain = match force {
                true => Retention::forced(retain),
                false => Retention::new(retain)
                    .map_err(|e| anyhow::anyhow!("{e}; add --force to go lower"))?,
            };
            let lake = config.lake(lake.lake.as_deref())?;
            for t in tables(table.as_deref())? {
                let deleted = vacuum(&lake, t, retain).await?;
                println!("{:<16} {deleted} file(s) deleted", t.name());
            }
        }
        LakeCmd::MoveKey { lake, to } => {
            let lake = config.lake(lake.lake.as_deref())?;
            crate::redaction::move_key(&lake, &to).await?;
        }
        LakeCmd::Retention {
            lake,
            table,
            older_than,
        } => {
            let lake = config.lake(lake.lake.as_deref())?;
            let age = chrono::Duration::from_std(older_than)?;
            let cutoff = (chrono::Utc::now() - age).date_naive();
            for t in tables(table.as_deref())? {
                let removed = drop_before(&lake, t, cutoff).await?;
                println!(
                    "{:<16} {removed} file(s) before {cutoff} removed from the table",
                    t.name()
                );
            }
        }
    }
    Ok(Outcome::Ok)
}
