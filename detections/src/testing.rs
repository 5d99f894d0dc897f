//! `detect test`: every inline test of a rule, through the real decoders, the real ingest
//! path into a temporary lake, and the real engine.

use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use kubetrail_lake::Lake;
use kubetrail_query::{LakeSession, Window};
use kubetrail_schemas::SourceFormat;

use crate::engine::{run_rules, Grouping};
use crate::rule::{Rule, RuleTest};

/// How one inline test went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub rule_id: String,
    pub test: String,
    /// `None` when it passed; otherwise what went wrong, in one line.
    pub failure: Option<String>,
}

/// Baselines in tests look back as far as in production.
const HISTORY: Duration = Duration::from_secs(14 * 86_400);

/// How a rule test's events reach its temporary lake: through the real decoders and the
/// real ingest path, which the caller provides (the binary, or a test with the ingest
/// crate), so that detections never depends on ingest.
pub trait EventLoader: Sync {
    /// Ingests the file at `path` (`None`: the format is detected) into `lake`, and says
    /// how many of its records did not decode.
    fn load<'a>(
        &'a self,
        lake: &'a Lake,
        format: Option<SourceFormat>,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<u64, String>>;
}

pub async fn run_tests(rule: &Rule, loader: &dyn EventLoader) -> Vec<TestResult> {
    let mut out = Vec::new();
    for test in &rule.tests {
        let failure = run_one(rule, test, loader).await.err();
        out.push(TestResult {
            rule_id: rule.id.clone(),
            test: test.name.clone(),
            failure,
        });
    }
    out
}

async fn run_one(rule: &Rule, test: &RuleTest, loader: &dyn EventLoader) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary lake: {e}"))?;
    let location = dir.path().join("lake").to_string_lossy().into_owned();
    let lake = Lake::open(&location).map_err(|e| e.to_string())?;
    let mut rejected = 0;
    for (i, (format, events)) in test.inputs.iter().enumerate() {
        let path = dir.path().join(format!("events-{i}"));
        std::fs::write(&path, events.trim()).map_err(|e| e.to_string())?;
        rejected += loader
            .load(&lake, *format, &path)
            .await
            .map_err(|e| format!("ingest: {e}"))?;
    }
    if rejected > 0 {
        let session = LakeSession::open(&lake).await.map_err(|e| e.to_string())?;
        let reasons = session
            .query("SELECT reason FROM dead_letters LIMIT 1")
            .await
            .map_err(|e| e.to_string())?;
        let reason = reasons
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                arrow::util::display::array_value_to_string(b.column(0), 0).unwrap_or_default()
            })
            .unwrap_or_default();
        return Err(format!("{rejected} test event(s) did not decode: {reason}"));
    }
    // Every event of the test is inside the window, unless it says where the window starts.
    let end = 253_402_300_799_000_000;
    let all = Window::new(test.window_from.unwrap_or(0), end).map_err(|e| e.to_string())?;
    let session = LakeSession::open_window(&lake, &all, HISTORY)
        .await
        .map_err(|e| e.to_string())?;
    let outcome = run_rules(
        &session,
        std::slice::from_ref(rule),
        &all,
        &test.watchlists,
        Grouping::Update,
    )
    .await
    .pop()
    .expect("one rule, one outcome");
    if let Some(e) = outcome.error {
        return Err(format!("the rule failed: {e}"));
    }
    if outcome.alerts.len() != test.expect_alerts {
        let got: Vec<&str> = outcome.alerts.iter().map(|a| a.entity.as_str()).collect();
        return Err(format!(
            "expected {} alert(s), got {}: {got:?}",
            test.expect_alerts,
            outcome.alerts.len()
        ));
    }
    if let Some(expected) = &test.expect_entities {
        let mut got: Vec<Vec<String>> = outcome
            .alerts
            .iter()
            .map(|a| a.entity_values.clone())
            .collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        if got != want {
            return Err(format!("expected entities {want:?}, got {got:?}"));
        }
    }
    Ok(())
}
