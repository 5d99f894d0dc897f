//! `detect schedule`: a round every `every`, each covering what arrived since the last
//! round's end (its checkpoint, kept in the lake) plus a `lookback` for late events. The
//! checkpoint is committed in the same Delta commit as the round's alerts, so a restart
//! continues where the last committed round ended: no gap, and the alerts' stable ids
//! keep the overlap from counting twice.

use std::future::Future;
use std::time::{Duration, Instant};

use kubetrail_lake::{CommitMarker, Lake, Origin, TableWriter};
use kubetrail_query::cluster::Engine;
use kubetrail_query::window::rfc3339;
use kubetrail_query::{LakeSession, Window};
use kubetrail_schemas::Table;

use crate::alerts::{commit_alerts, settle};
use crate::engine::{run_rules, Grouping};
use crate::rule::Rule;
use crate::sinks::AlertSink;
use crate::watchlists::Watchlists;

/// The checkpoint's Delta app id on the `alerts` table; its version is the end (µs) of the
/// last committed round.
pub const CHECKPOINT_APP_ID: &str = "kubetrail/detect/schedule";

pub struct Schedule {
    pub lake: Lake,
    pub rules: Vec<Rule>,
    pub every: Duration,
    pub lookback: Duration,
    pub history: Duration,
    pub sinks: Vec<AlertSink>,
    pub watchlists: Watchlists,
    pub grouping: Grouping,
    /// Where the rules' queries run.
    pub engine: Engine,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub window: Window,
    pub alerts: usize,
    pub new: usize,
    pub updated: usize,
    pub failed_rules: Vec<String>,
    pub failed_sinks: Vec<String>,
}

/// Runs rounds until `shutdown` resolves; a round that fails (the lake unreachable, say)
/// is logged and retried at the next tick.
pub async fn run_schedule(schedule: &Schedule, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let started = Instant::now();
        match round(schedule, chrono::Utc::now().timestamp_micros()).await {
            Ok(r) => tracing::info!(
                window = %format!("{} to {}", rfc3339(r.window.from()), rfc3339(r.window.to())),
                rules = schedule.rules.len(),
                alerts = r.alerts,
                new = r.new,
                updated = r.updated,
                failed_rules = r.failed_rules.len(),
                failed_sinks = r.failed_sinks.len(),
                ms = started.elapsed().as_millis() as u64,
                "round"
            ),
            Err(e) => tracing::error!(error = %e, "round failed; retrying at the next tick"),
        }
        let next = schedule.every.saturating_sub(started.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = &mut shutdown => {
                tracing::info!("stopping: the last round is committed");
                return;
            }
        }
    }
}

/// One round ending at `now` (µs).
pub async fn round(schedule: &Schedule, now: i64) -> Result<Round, String> {
    let lake = &schedule.lake;
    // Opened (and created on a new lake) to read the checkpoint; the round's commit goes
    // through `commit_alerts`.
    let mut writer = TableWriter::open(lake, Table::Alerts)
        .await
        .map_err(|e| e.to_string())?;
    let checkpoint = writer
        .marker_version(CHECKPOINT_APP_ID)
        .await
        .map_err(|e| e.to_string())?;
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let start = match checkpoint {
        Some(end) => end,
        None => now.saturating_sub(micros(schedule.every)),
    };
    let from = start.saturating_sub(micros(schedule.lookback)).max(0);
    let window = Window::new(from, now.max(from + 1))?;
    let session = LakeSession::open_window_on(lake, &window, schedule.history, &schedule.engine)
        .await
        .map_err(|e| e.to_string())?;
    let mut new = Vec::new();
    let mut updated = Vec::new();
    let mut failed_rules = Vec::new();
    for outcome in run_rules(
        &session,
        &schedule.rules,
        &window,
        &schedule.watchlists,
        schedule.grouping,
    )
    .await
    {
        if let Some(e) = outcome.error {
            tracing::warn!(rule = %outcome.rule_id, error = %e, "rule failed");
            failed_rules.push(outcome.rule_id);
        }
        new.extend(outcome.alerts);
        updated.extend(outcome.updates);
    }
    let total = new.len() + updated.len();
    let changes = settle(&session, new, updated)
        .await
        .map_err(|e| e.to_string())?;
    // Sinks before the commit: at least once (see the module docs).
    let mut failed_sinks = Vec::new();
    for sink in &schedule.sinks {
        if let Err(e) = sink.deliver(&changes).await {
            tracing::error!(sink = %sink.describe(), error = %e, "alerts not delivered");
            failed_sinks.push(sink.describe());
        }
    }
    let marker = CommitMarker {
        app_id: CHECKPOINT_APP_ID.to_owned(),
        version: window.to(),
    };
    let origin = Origin::Detection {
        window: Some(window.to_string()),
    };
    commit_alerts(lake, &changes, &[marker], &origin)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Round {
        window,
        alerts: total,
        new: changes.new.len(),
        updated: changes.updated.len(),
        failed_rules,
        failed_sinks,
    })
}
