//! Decoding throughput per format: bytes of native records to typed rows, and rows to an
//! Arrow batch. Run with `cargo bench -p kubetrail-benches --bench decode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kubetrail_schemas::rows::RowBuffer;
use kubetrail_schemas::{AuditEvent, DecodeOptions, Decoded, Decoder, Provenance};

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (format, records) in kubetrail_benches::records(5_000) {
        let bytes: usize = records.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format.name(), |b| {
            b.iter(|| {
                let mut decoder = Decoder::new(format, DecodeOptions::default());
                let mut rows = 0;
                for r in &records {
                    rows += decoder.decode(r).row_count();
                }
                assert_eq!(rows, records.len());
            })
        });
    }
    group.finish();
}

fn to_arrow(c: &mut Criterion) {
    let (format, records) = kubetrail_benches::records(5_000).remove(0);
    let mut decoder = Decoder::new(format, DecodeOptions::default());
    let rows: Vec<AuditEvent> = records
        .iter()
        .flat_map(|r| match decoder.decode(r) {
            Decoded::Audit(o) => o.rows,
            _ => Vec::new(),
        })
        .collect();
    let provenance = Provenance {
        source: "bench".into(),
        offset: 0,
        ingested_at: 0,
    };
    let mut group = c.benchmark_group("to_arrow");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("k8s_audit", |b| {
        b.iter(|| {
            let mut buffer = RowBuffer::default();
            buffer.extend(rows.clone(), &provenance, 0);
            buffer.take_batch().expect("batch").expect("rows")
        })
    });
    group.finish();
}

criterion_group!(benches, decode, to_arrow);
criterion_main!(benches);
