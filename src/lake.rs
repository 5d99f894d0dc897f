//! `kubetrail lake optimize | vacuum | verify | retention | move-key`.

use kubetrail_lake::custody::verify::{verify, Verification};
use kubetrail_lake::maintenance::{drop_before, optimize, vacuum, Days, Retention};
use kubetrail_query::timeline::human_bytes;
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
        LakeCmd::Verify {
            lake,
            table,
            since,
            head,
        } => {
            let lake = config.lake(lake.lake.as_deref())?;
            lake.check_exists().await?;
            let mut problems = 0;
            for t in tables(table.as_deref())? {
                let report = verify(&lake, t, since, head.as_deref()).await?;
                print_verification(t, &report);
                problems += report.findings.len();
            }
            if problems > 0 {
                anyhow::bail!("the custody check found {problems} problem(s), listed above");
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

/// One line per table, then one per finding.
fn print_verification(table: Table, report: &Verification) {
    let name = table.name();
    let Some((first, last)) = report.entries else {
        println!("{name:<16} no table");
        return;
    };
    let mut line = format!(
        "{name:<16} log {first}-{last}, {} file(s) re-hashed ({})",
        report.files,
        human_bytes(i64::try_from(report.bytes).unwrap_or(i64::MAX))
    );
    if report.unsealed_entries > 0 {
        line.push_str(&format!(
            "; {} entr(ies) and {} file(s) written before the custody chain (not checked)",
            report.unsealed_entries, report.unsealed_files
        ));
    }
    match report.findings.is_empty() {
        true => line.push_str(": ok"),
        false => line.push_str(&format!(": {} PROBLEM(S)", report.findings.len())),
    }
    println!("{line}");
    if let Some(head) = &report.head {
        println!("{name:<16} head {head}");
    }
    for finding in &report.findings {
        println!("{name:<16} {finding}");
    }
}
