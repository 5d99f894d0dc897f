//! Questions over a large lake, timed: a pod's timeline around the attack (criterion), and
//! the whole detection pack over a day (three runs: min, median, max; one run is minutes at
//! 10M events, too long for criterion's ten samples).
//!
//! The lake is built once per N with the real ingest path and kept under
//! `target/kubetrail-bench/` for the next run: N audit events (default 1 million;
//! `KUBETRAIL_BENCH_EVENTS=10000000` for the issues' 10 million) and N/5 flows and N/5
//! runtime events from the samples' volume generator (`write_volume`), spread over 7 days, plus the incident
//! scenario; then one `lake optimize`, as an operator runs it.
//!
//!     KUBETRAIL_BENCH_EVENTS=10000000 cargo bench -p kubetrail-benches --bench lake

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kubetrail_detections::{run_rules, Grouping, RulePack, Watchlists};
use kubetrail_ingest::{ingest_file, FileIngest, InputPath, NoProgress};
use kubetrail_lake::maintenance::{optimize, Days};
use kubetrail_lake::Lake;
use kubetrail_query::timeline::{build, parse_time, Entity, TimelineRequest};
use kubetrail_query::{LakeSession, Window};

const POD: &str = "shop/api-7d9f8b6c5-x2k4p";

fn events() -> u64 {
    std::env::var("KUBETRAIL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The lake for `n` audit events, built on first use.
fn lake(rt: &tokio::runtime::Runtime, n: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/kubetrail-bench")
        .join(format!("lake-{n}"));
    let lake = root.join("lake");
    if root.join("READY").exists() {
        return lake;
    }
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let started = Instant::now();
    let mut files = kubetrail_samples::write_volume(&input, n, 42, 7).unwrap();
    for f in kubetrail_samples::write_sample_set(&input.join("scenario"), kubetrail_samples::SEED)
        .unwrap()
    {
        files.push(input.join("scenario").join(f.name));
    }
    rt.block_on(async {
        let lake = Lake::open(lake.to_str().unwrap()).unwrap();
        for f in &files {
            ingest_file(
                &lake,
                &InputPath::File(f.clone()),
                &FileIngest::default(),
                Arc::new(NoProgress),
            )
            .await
            .unwrap();
        }
        for table in kubetrail_schemas::Table::EVENTS {
            optimize(&lake, table, Days::All).await.unwrap();
        }
    });
    std::fs::remove_dir_all(&input).unwrap();
    std::fs::write(root.join("READY"), "").unwrap();
    eprintln!(
        "built a lake of {n} audit events (+ {} flows and runtime events each) in {:.0?} at {}",
        n / kubetrail_samples::OTHER_STREAMS_PER_AUDIT,
        started.elapsed(),
        lake.display()
    );
    lake
}

fn timeline(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = events();
    let location = Lake::open(lake(&rt, n).to_str().unwrap()).unwrap();
    let around = parse_time("2026-11-20T09:00:00Z").unwrap();
    let mut request = TimelineRequest::new(Entity::pod(POD).unwrap());
    request.window = Some(Window::around(around, Duration::from_secs(2 * 3600)).unwrap());
    let lines = rt.block_on(async {
        let session = LakeSession::open(&location).await.unwrap();
        build(&session, &request).await.unwrap().lines.len()
    });
    eprintln!("timeline of {POD}, 2 h around the attack, depth 1: {lines} lines");
    let mut group = c.benchmark_group("timeline");
    group.sample_size(10);
    group.bench_function(format!("pod_2h_depth1_over_{n}_audit_events"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let session = LakeSession::open(&location).await.unwrap();
                build(&session, &request).await.unwrap()
            })
        })
    });
    group.finish();

    // The detection pack over the last day of the volume and the attack: three runs.
    let window = Window::new(
        parse_time("2026-11-19T10:00:00Z").unwrap(),
        parse_time("2026-11-20T10:00:00Z").unwrap(),
    )
    .unwrap();
    let rules = RulePack::builtin().rules;
    let mut times = Vec::new();
    let mut alerts = 0;
    for _ in 0..3 {
        let started = Instant::now();
        alerts = rt.block_on(async {
            let session =
                LakeSession::open_window(&location, &window, Duration::from_secs(14 * 86_400))
                    .await
                    .unwrap();
            let outcomes = run_rules(
                &session,
                &rules,
                &window,
                &Watchlists::default(),
                Grouping::Update,
            )
            .await;
            for o in &outcomes {
                assert!(o.error.is_none(), "{}: {:?}", o.rule_id, o.error);
            }
            outcomes.iter().map(|o| o.alerts.len()).sum::<usize>()
        });
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!(
        "detect run, {} rules over the last 24 h of {n} audit events (+ history): {alerts} alerts; min {:.2?}, median {:.2?}, max {:.2?}",
        rules.len(),
        times[0],
        times[1],
        times[2]
    );
}

criterion_group!(benches, timeline);
criterion_main!(benches);
