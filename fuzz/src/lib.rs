//! The harness every fuzz target calls: a decoder of `kubetrail-schemas` on one record
//! (raw, or inside a cloud provider's envelope), or ingest's framing and gzip on a stream.
//! Beyond not panicking, each checks what the pipeline relies on.

use std::io::{Cursor, Read};

use kubetrail_schemas::{DecodeOptions, Decoder, SourceFormat};

// Ingest's framing and input, compiled from their own files: they need only std, memchr,
// flate2 and blake3, where the ingest crate would bring deltalake and librdkafka.
#[allow(dead_code)]
#[path = "../../ingest/src/source/framing.rs"]
mod framing;
#[allow(dead_code)]
#[path = "../../ingest/src/source/input.rs"]
mod input;

/// Decodes `record` as `format`. A format that makes one row of a record makes exactly
/// one row or one rejection of it: nothing is lost without a dead letter.
pub fn decode(format: SourceFormat, record: &[u8]) {
    let mut decoder = Decoder::new(format, DecodeOptions::default());
    let decoded = decoder.decode(record);
    let one_row_per_record = !matches!(format, SourceFormat::K8sAudit | SourceFormat::AwsVpcFlow);
    if one_row_per_record {
        assert_eq!(decoded.row_count() + decoded.rejected().len(), 1);
    }
}

/// Where a cloud provider puts an audit event.
#[derive(Debug, Clone, Copy)]
pub enum Envelope {
    /// CloudWatch Logs: the event as the `message` string of a log event.
    Eks,
    /// Azure diagnostic settings: the event as `properties.log` of a record.
    Aks,
    /// Cloud Logging: the event's fields under `protoPayload`.
    Gke,
}

/// `data` put where `envelope` carries an event, and decoded as an audit record.
pub fn decode_in(envelope: Envelope, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let as_string = serde_json::to_string(&text).unwrap_or_default();
    let record = match envelope {
        Envelope::Eks => format!(r#"{{"logEvents":[{{"id":"1","message":{as_string}}}]}}"#),
        Envelope::Aks => format!(
            r#"{{"records":[{{"category":"kube-audit","properties":{{"log":{as_string}}}}}]}}"#
        ),
        Envelope::Gke => format!(
            r#"{{"logName":"projects/p/logs/cloudaudit.googleapis.com%2Factivity","resource":{{"type":"k8s_cluster","labels":{{"cluster_name":"c"}}}},"timestamp":"2026-11-20T09:00:00Z","protoPayload":{text}}}"#
        ),
    };
    decode(SourceFormat::K8sAudit, record.as_bytes());
}

/// Frames `data` into records as ingest does, with records bounded to 4 KiB: line numbers
/// never go back, and no record is longer than the input.
pub fn frame(data: &[u8]) {
    let reader = framing::RecordReader::with_max_record_bytes(Cursor::new(data.to_vec()), 4096);
    check_records(reader, data.len());
}

/// Decompresses `data` if it is gzip, then frames it, reading at most 1 MiB of output
/// (a small input may inflate without end).
pub fn gunzip_and_frame(data: &[u8]) {
    let Ok((reader, _gzip)) = input::decompressed(Cursor::new(data.to_vec())) else {
        return;
    };
    let bounded = std::io::BufReader::new(reader.take(1 << 20));
    let reader = framing::RecordReader::with_max_record_bytes(bounded, 4096);
    check_records(reader, 1 << 20);
}

fn check_records(reader: framing::RecordReader<'_>, most_bytes: usize) {
    let mut line = 0;
    let mut bytes = 0;
    for record in reader {
        assert!(
            record.head.line >= line,
            "line {} after {line}",
            record.head.line
        );
        line = record.head.line;
        bytes += record.bytes.len();
        assert!(
            record.bytes.len() <= 4096 + 1,
            "a record of {} bytes",
            record.bytes.len()
        );
    }
    assert!(
        bytes <= most_bytes,
        "{bytes} bytes of records from {most_bytes}"
    );
}
