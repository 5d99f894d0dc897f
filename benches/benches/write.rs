//! Writing to the lake per batch size: one sorted Arrow batch of audit rows encoded as a
//! zstd Parquet file and committed to its Delta table (`TableWriter::stage` + `commit`, what
//! every ingest does per batch and input). Small batches pay the commit; large ones the
//! encoding. Run with `cargo bench -p kubetrail-benches --bench write`.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kubetrail_lake::{CommitMarker, Lake, TableWriter};
use kubetrail_schemas::rows::{AuditColumns, RowBuffer};
use kubetrail_schemas::{Provenance, Table};

fn audit_batch(rows: u64) -> RecordBatch {
    let decoded = kubetrail_benches::audit_rows(rows);
    let provenance = Provenance {
        source: "bench".into(),
        offset: 0,
        ingested_at: 0,
    };
    let mut buffer = RowBuffer::<AuditColumns>::default();
    buffer.extend(&decoded, &provenance, 0);
    buffer.take_batch().expect("batch").expect("rows")
}

fn stage_and_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("stage_and_commit");
    group.sample_size(10);
    for rows in [1_000u64, 10_000, 100_000] {
        let batch = audit_batch(rows);
        group.throughput(Throughput::Elements(rows));
        group.bench_function(format!("k8s_audit/{rows}"), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for i in 0..iterations {
                    // A fresh lake each time, made outside the clock: the commit log does
                    // not grow across iterations.
                    let dir = tempfile::tempdir().unwrap();
                    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
                    rt.block_on(async {
                        let mut writer = TableWriter::open(&lake, Table::K8sAudit).await.unwrap();
                        let started = Instant::now();
                        writer.stage(batch.clone()).await.unwrap();
                        let marker = CommitMarker {
                            app_id: format!("bench/{i}"),
                            version: 0,
                        };
                        writer.commit(&[marker], &[]).await.unwrap();
                        spent += started.elapsed();
                    });
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stage_and_commit);
criterion_main!(benches);
