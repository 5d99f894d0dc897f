//! kubetrail-benches: benchmark inputs shared by the benches in `benches/`.
//!
//! Inputs come from the samples generator (never from the code under test), rendered
//! once per run into memory.

use kubetrail_schemas::{AuditEvent, DecodeOptions, Decoded, Decoder, SourceFormat};

/// `n` records of each stream's main format, as the sources would deliver them.
pub fn records(n: u64) -> Vec<(SourceFormat, Vec<Vec<u8>>)> {
    let seed = kubetrail_samples::SEED;
    let collect = |lines: &mut dyn Iterator<Item = String>| lines.map(String::into_bytes).collect();
    vec![
        (
            SourceFormat::K8sAudit,
            collect(&mut kubetrail_samples::volume::audit_lines(n, seed, 1)),
        ),
        (
            SourceFormat::Hubble,
            collect(&mut kubetrail_samples::volume::flow_lines(n, seed, 1)),
        ),
        (
            SourceFormat::Tetragon,
            collect(&mut kubetrail_samples::volume::runtime_lines(n, seed, 1)),
        ),
    ]
}

/// `n` audit events from the volume generator, decoded into rows.
pub fn audit_rows(n: u64) -> Vec<AuditEvent<'static>> {
    let (format, records) = records(n).remove(0);
    let mut decoder = Decoder::new(format, DecodeOptions::default());
    records
        .iter()
        .flat_map(|r| match decoder.decode(r) {
            Decoded::Audit(o) => o.rows.into_iter().map(AuditEvent::into_owned).collect(),
            _ => Vec::new(),
        })
        .collect()
}
