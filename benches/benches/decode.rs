//! Decoding throughput per format: bytes of native records to typed rows, and rows to an
//! Arrow batch. Run with `cargo bench -p kubetrail-benches --bench decode`.
//!
//! - `decode/<format>`: 5,000 records of each stream's main format from the volume generator;
//! - `decode_sample/<file>`: every file of the sample set (all 11 native formats and
//!   wrappers), framed as `ingest` frames it;
//! - `to_arrow/k8s_audit`: decoded audit rows to one sorted Arrow batch.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kubetrail_ingest::source::RecordReader;
use kubetrail_schemas::rows::{AuditColumns, RowBuffer};
use kubetrail_schemas::{DecodeOptions, Decoder, Provenance, SourceFormat};

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

fn decode_sample(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_sample");
    for file in kubetrail_samples::sample_set(kubetrail_samples::SEED) {
        let format: SourceFormat = file.format.parse().expect("a known format");
        let records: Vec<Vec<u8>> = RecordReader::with_max_record_bytes(
            std::io::Cursor::new(file.content.clone().into_bytes()),
            64 << 20,
        )
        .map(|r| r.bytes)
        .collect();
        group.throughput(Throughput::Bytes(file.content.len() as u64));
        group.bench_function(file.name, |b| {
            b.iter(|| {
                // Stateful formats (VPC headers) start from scratch each time, as a new input.
                let mut decoder = Decoder::new(format, DecodeOptions::default());
                let rows: usize = records.iter().map(|r| decoder.decode(r).row_count()).sum();
                assert_eq!(rows, file.events, "{}", file.name);
            })
        });
    }
    group.finish();
}

fn to_arrow(c: &mut Criterion) {
    let rows = kubetrail_benches::audit_rows(5_000);
    let provenance = Provenance {
        source: "bench".into(),
        offset: 0,
        ingested_at: 0,
    };
    let mut group = c.benchmark_group("to_arrow");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("k8s_audit", |b| {
        b.iter(|| {
            let mut buffer = RowBuffer::<AuditColumns>::default();
            buffer.extend(&rows, &provenance, 0);
            buffer.take_batch().expect("batch").expect("rows")
        })
    });
    group.finish();
}

criterion_group!(benches, decode, decode_sample, to_arrow);
criterion_main!(benches);
