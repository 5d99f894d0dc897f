//! Time to answer `kubetrail timeline --pod` for the scenario's compromised pod, around the
//! attack, over a lake of N events (default 1 million; `KUBETRAIL_BENCH_EVENTS=10000000`
//! for the 10 million): opening the lake and building the timeline, as the
//! command does after process start.
//!
//! The lake is built once per N with the real ingest path (the samples' volume generator,
//! a third of N per stream over 7 days, plus the incident scenario) and kept under
//! `target/kubetrail-bench/` for the next run.
//!
//!     cargo bench -p kubetrail-benches --bench timeline

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kubetrail_ingest::{ingest_file, FileIngest, InputPath, Lake, NoProgress};
use kubetrail_query::timeline::{build, parse_time, Entity, TimelineRequest, Window};
use kubetrail_query::LakeSession;

const POD: &str = "shop/api-7d9f8b6c5-x2k4p";

fn events() -> u64 {
    std::env::var("KUBETRAIL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The lake for `n` events, built on first use.
fn lake(rt: &tokio::runtime::Runtime, n: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/kubetrail-bench")
        .join(format!("timeline-{n}"));
    let lake = root.join("lake");
    if root.join("READY").exists() {
        return lake;
    }
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("input");
    let started = Instant::now();
    kubetrail_samples::write_volume(&input, n / 3, 42, 7).expect("volume written");
    kubetrail_samples::write_sample_set(&input.join("scenario"), kubetrail_samples::SEED)
        .expect("scenario written");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [input.clone(), input.join("scenario")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && name != "MANIFEST.tsv" && name != "README.md" {
                files.push(path);
            }
        }
    }
    files.sort();
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
        // As an operator would after ingest: one sorted file per day and table.
        for table in kubetrail_schemas::Table::EVENTS {
            kubetrail_ingest::lake::maintenance::optimize(
                &lake,
                table,
                kubetrail_ingest::lake::maintenance::Days::All,
            )
            .await
            .unwrap();
        }
    });
    std::fs::remove_dir_all(&input).unwrap();
    std::fs::write(root.join("READY"), "").unwrap();
    eprintln!(
        "built a lake of {n} events in {:.0?} at {}",
        started.elapsed(),
        lake.display()
    );
    lake
}

fn timeline(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = events();
    let lake = lake(&rt, n);
    let location = lake.to_str().unwrap().to_owned();
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
    group.bench_function(format!("pod_2h_depth1_over_{n}_events"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let session = LakeSession::open(&location).await.unwrap();
                build(&session, &request).await.unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, timeline);
criterion_main!(benches);
