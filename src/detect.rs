//! `kubetrail detect list | test | run | schedule`.

use std::io::Write;

use anyhow::bail;
use kubetrail_detections::coverage::TestStatus;
use kubetrail_detections::schedule::{run_schedule, Schedule};
use kubetrail_detections::sigma;
use kubetrail_detections::sinks::AlertSink;
use kubetrail_detections::{
    alerts_batch, run_rules, run_tests, write_alerts, Grouping, RulePack, Watchlists,
};
use kubetrail_lake::Lake;
use kubetrail_query::cluster::Engine;
use kubetrail_query::timeline::{parse_time, rfc3339};
use kubetrail_query::{write_batches, LakeSession, OutputFormat, Window};
use kubetrail_schemas::rows::Alert;

use crate::cli::{DetectCmd, RulesArgs};
use crate::config::Config;
use crate::Outcome;

pub async fn run(cmd: DetectCmd, config: &Config) -> anyhow::Result<Outcome> {
    match cmd {
        DetectCmd::List { rules } => list(&rules),
        DetectCmd::Catalog { rules } => {
            let pack = pack(&rules)?;
            print!("{}", kubetrail_detections::catalog::markdown(&pack));
            Ok(Outcome::Ok)
        }
        DetectCmd::Test { rules, rule } => test(&rules, rule.as_deref()).await,
        DetectCmd::Coverage {
            rules,
            format,
            no_tests,
        } => coverage(&rules, &format, no_tests).await,
        DetectCmd::ImportSigma { paths, output } => import_sigma(&paths, output.as_deref()),
        DetectCmd::Run {
            lake,
            engine,
            rules,
            since,
            from,
            to,
            history,
            format,
            grouping,
        } => {
            let format: OutputFormat = format.parse().map_err(anyhow::Error::msg)?;
            if format == OutputFormat::Parquet {
                bail!("detect run prints table, csv or json; the alerts table is the Parquet");
            }
            let window = match (from, to, since) {
                (Some(f), Some(t), _) => Window::new(
                    parse_time(&f).map_err(|e| anyhow::anyhow!("--from: {e}"))?,
                    parse_time(&t).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
                )
                .map_err(anyhow::Error::msg)?,
                (_, _, since) => {
                    let now = chrono::Utc::now().timestamp_micros();
                    let span = since.unwrap_or(std::time::Duration::from_secs(86_400));
                    let span = i64::try_from(span.as_micros()).unwrap_or(i64::MAX);
                    Window::new(now.saturating_sub(span).max(0), now).map_err(anyhow::Error::msg)?
                }
            };
            let judging = Judging {
                watchlists: config.detections.watchlists()?,
                grouping: config.detections.grouping(grouping.as_deref())?,
                engine: config.engine(engine.engine.as_deref())?,
            };
            detect_run(
                &config.lake(lake.lake.as_deref())?,
                &rules,
                &window,
                history,
                format,
                &judging,
            )
            .await
        }
        DetectCmd::Schedule {
            lake,
            rules,
            every,
            lookback,
            history,
            sink,
            kafka,
            grouping,
            engine,
        } => {
            if every.is_zero() {
                bail!("--every must be longer than 0");
            }
            let watchlists = config.detections.watchlists()?;
            let grouping = config.detections.grouping(grouping.as_deref())?;
            let engine = config.engine(engine.engine.as_deref())?;
            let shutdown = crate::ingest::shutdown_signal();
            let client = config.kafka.client_options(&kafka)?;
            let sinks = sink
                .iter()
                .map(|s| AlertSink::parse(s, client.pairs()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let pack = pack(&rules)?;
            let lake = config.lake(lake.lake.as_deref())?;
            // The query side never creates a lake, and the cluster must answer: a
            // scheduler pointed at a typo says so at once.
            LakeSession::open_on(&lake, &engine).await?;
            tracing::info!(
                rules = pack.rules.len(),
                every = ?every,
                lookback = ?lookback,
                sinks = ?sinks.iter().map(|s| s.describe()).collect::<Vec<_>>(),
                indicators = watchlists.indicator_count(),
                grouping = ?grouping,
                engine = ?engine,
                "scheduling detections"
            );
            let schedule = Schedule {
                lake,
                rules: pack.rules,
                every,
                lookback,
                history,
                sinks,
                watchlists,
                grouping,
                engine,
            };
            run_schedule(&schedule, shutdown).await;
            Ok(Outcome::Ok)
        }
    }
}

/// The pack, with any files that did not load reported on stderr (they never stop the rest).
fn pack(args: &RulesArgs) -> anyhow::Result<RulePack> {
    let pack = match &args.rules {
        Some(dir) if args.with_builtin => {
            RulePack::builtin().with(RulePack::load(dir).map_err(anyhow::Error::msg)?)
        }
        Some(dir) => RulePack::load(dir).map_err(anyhow::Error::msg)?,
        None => RulePack::builtin(),
    };
    for p in &pack.problems {
        eprintln!("rule not loaded: {p}");
    }
    Ok(pack)
}

/// `detect coverage`: the pack over the ATT&CK techniques, its tests run unless asked not.
async fn coverage(args: &RulesArgs, format: &str, no_tests: bool) -> anyhow::Result<Outcome> {
    if !["table", "json", "html"].contains(&format) {
        bail!("--format must be table, json or html, not '{format}'");
    }
    let pack = pack(args)?;
    let mut tests = std::collections::HashMap::new();
    if !no_tests {
        for rule in &pack.rules {
            let results = run_tests(rule, &crate::ingest::RuleTestLoader).await;
            tests.insert(rule.id.clone(), results);
        }
    }
    let report = kubetrail_detections::coverage::coverage(&pack, &tests);
    match format {
        "json" => println!("{}", report.json()),
        "html" => print!("{}", report.html()),
        _ => print!("{}", report.table()),
    }
    let failing = report
        .rules
        .iter()
        .filter(|r| matches!(r.tests, TestStatus::Failed { .. }))
        .count();
    if failing > 0 || !pack.problems.is_empty() {
        bail!(
            "{failing} rule(s) fail their tests, {} rule file(s) did not load",
            pack.problems.len()
        );
    }
    Ok(Outcome::Ok)
}

/// `detect import-sigma`: each rule translated is written (or printed), each one that is
/// not is named with its reason on stderr; any of those makes the exit code 1.
fn import_sigma(
    paths: &[std::path::PathBuf],
    output: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let import = sigma::import(paths);
    for p in &import.problems {
        eprintln!("not translated: {p}");
    }
    match output {
        Some(dir) => {
            let area = dir.join(sigma::AREA);
            std::fs::create_dir_all(&area)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", area.display()))?;
            for rule in &import.rules {
                let path = area.join(format!("{}.yaml", rule.id));
                std::fs::write(&path, &rule.yaml)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            println!(
                "{} rule(s) translated into {}, {} not translated; run them with --rules {}",
                import.rules.len(),
                area.display(),
                import.problems.len(),
                dir.display()
            );
        }
        None => {
            for rule in &import.rules {
                println!(
                    "# {}.yaml (from {})\n{}---",
                    rule.id, rule.source, rule.yaml
                );
            }
        }
    }
    if import.problems.is_empty() {
        Ok(Outcome::Ok)
    } else {
        bail!(
            "{} Sigma rule(s) or file(s) not translated",
            import.problems.len()
        )
    }
}

fn list(args: &RulesArgs) -> anyhow::Result<Outcome> {
    let pack = pack(args)?;
    println!("{:<44} {:<9} {:<22} title", "id", "severity", "techniques");
    for r in &pack.rules {
        println!(
            "{:<44} {:<9} {:<22} {}",
            r.id,
            r.severity.name(),
            r.mitre.join(","),
            r.title
        );
    }
    println!("{} rules", pack.rules.len());
    if pack.problems.is_empty() {
        Ok(Outcome::Ok)
    } else {
        bail!("{} rule file(s) did not load", pack.problems.len())
    }
}

async fn test(args: &RulesArgs, only: Option<&str>) -> anyhow::Result<Outcome> {
    let pack = pack(args)?;
    let rules: Vec<_> = match only {
        Some(id) => match pack.get(id) {
            Some(r) => vec![r.clone()],
            None => bail!("no rule '{id}' in the pack"),
        },
        None => pack.rules.clone(),
    };
    let (mut passed, mut failed) = (0, 0);
    for rule in &rules {
        let results = run_tests(rule, &crate::ingest::RuleTestLoader).await;
        let bad: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
        if bad.is_empty() {
            println!("pass  {} ({} tests)", rule.id, results.len());
        } else {
            println!("FAIL  {}", rule.id);
            for r in &bad {
                println!(
                    "      {}: {}",
                    r.test,
                    r.failure.as_deref().unwrap_or_default()
                );
            }
        }
        failed += bad.len();
        passed += results.len() - bad.len();
    }
    println!(
        "{} rules, {} tests: {passed} passed, {failed} failed",
        rules.len(),
        passed + failed
    );
    if failed > 0 || !pack.problems.is_empty() {
        bail!(
            "{failed} test(s) failed, {} rule file(s) did not load",
            pack.problems.len()
        );
    }
    Ok(Outcome::Ok)
}

/// What `detect run` judges with, from `[detections]` and the flags.
struct Judging {
    watchlists: Watchlists,
    grouping: Grouping,
    /// Where the rules' queries run.
    engine: Engine,
}

async fn detect_run(
    lake: &Lake,
    args: &RulesArgs,
    window: &Window,
    history: std::time::Duration,
    format: OutputFormat,
    judging: &Judging,
) -> anyhow::Result<Outcome> {
    let pack = pack(args)?;
    let session = LakeSession::open_window_on(lake, window, history, &judging.engine).await?;
    let outcomes = run_rules(
        &session,
        &pack.rules,
        window,
        &judging.watchlists,
        judging.grouping,
    )
    .await;
    let mut alerts: Vec<Alert> = Vec::new();
    let mut updates: Vec<Alert> = Vec::new();
    let mut known: Vec<Alert> = Vec::new();
    let mut failures = Vec::new();
    let mut slowest: Vec<(u128, String)> = outcomes
        .iter()
        .map(|o| (o.millis, o.rule_id.clone()))
        .collect();
    slowest.sort_by(|a, b| b.cmp(a));
    tracing::info!(
        slowest = ?slowest.iter().take(5).map(|(ms, id)| format!("{id} {ms} ms")).collect::<Vec<_>>(),
        "rule times"
    );
    for o in outcomes {
        if let Some(e) = &o.error {
            eprintln!("rule {} failed: {e}", o.rule_id);
            failures.push(o.rule_id.clone());
        }
        alerts.extend(o.alerts);
        updates.extend(o.updates);
        known.extend(o.known);
    }
    // Printed: every alert the run found, whether new, updated or already in the table.
    let found: Vec<Alert> = alerts
        .iter()
        .chain(&updates)
        .chain(&known)
        .cloned()
        .collect();
    let raised = alerts.len();
    let changes = write_alerts(lake, &session, alerts, updates).await?;
    eprintln!(
        "{} rules over {} to {}: {} alerts ({} new, {} updated, {} already in the alerts table)",
        pack.rules.len(),
        rfc3339(window.from()),
        rfc3339(window.to()),
        found.len(),
        changes.new.len(),
        changes.updated.len(),
        raised - changes.new.len() + known.len(),
    );
    print_alerts(found, format)?;
    let mut trouble = Vec::new();
    if !failures.is_empty() {
        trouble.push(format!(
            "{} rule(s) failed: {}",
            failures.len(),
            failures.join(", ")
        ));
    }
    if !pack.problems.is_empty() {
        trouble.push(format!("{} rule file(s) did not load", pack.problems.len()));
    }
    if !trouble.is_empty() {
        bail!(
            "{}; the other rules ran and their alerts were written",
            trouble.join("; ")
        );
    }
    Ok(Outcome::Ok)
}

fn print_alerts(mut alerts: Vec<Alert>, format: OutputFormat) -> anyhow::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    alerts.sort_by(|a, b| (a.event_time, &a.rule_id).cmp(&(b.event_time, &b.rule_id)));
    let Some(batch) = alerts_batch(alerts)? else {
        return Ok(());
    };
    let columns: &[&str] = match format {
        OutputFormat::Table | OutputFormat::Csv => &[
            "first_seen",
            "severity",
            "rule_id",
            "entity",
            "event_count",
            "alert_id",
        ],
        _ => &[
            "alert_id",
            "rule_id",
            "title",
            "severity",
            "mitre",
            "tags",
            "entity",
            "entity_values",
            "first_seen",
            "last_seen",
            "event_count",
            "summary",
            "evidence",
            "window_start",
            "window_end",
            "detected_at",
        ],
    };
    let indices: Vec<usize> = columns
        .iter()
        .map(|c| batch.schema().index_of(c))
        .collect::<Result<_, _>>()?;
    let batch = batch.project(&indices)?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    write_batches(&[batch], format, &mut out)?;
    out.flush()?;
    Ok(())
}
