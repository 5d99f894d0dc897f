//! One decoder per source format: bytes of one record in, typed rows or reasons out.
//!
//! A record is what a source delivers as a unit: a Kafka message, a line of a file, or one
//! JSON value of a file. A record may hold several events (an audit `EventList`, a
//! CloudWatch batch); each event that does not decode is rejected on its own so that the
//! rest of the batch still lands.

pub mod audit;
pub mod aws_vpc;
pub mod calico;
pub mod falco;
pub mod gcp_vpc;
pub mod hubble;
mod ip;
mod json;
mod scan;
pub mod tetragon;

use thiserror::Error;

use crate::format::SourceFormat;
use crate::redact::Redactor;
use crate::rows::{AuditEvent, FlowRecord, RuntimeEvent};

/// Why a record did not decode. Displayed as one line.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(String),
    /// Well-formed JSON whose fields have the wrong types.
    #[error("unexpected value: {0}")]
    Shape(String),
    #[error("not UTF-8 text (invalid byte at {0})")]
    NotUtf8(usize),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("not recognised: {0}")]
    Unrecognized(String),
}

impl DecodeError {
    pub(crate) fn json(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => DecodeError::Shape(e.to_string()),
            _ => DecodeError::Json(e.to_string()),
        }
    }
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DecodeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
    pub(crate) fn unrecognized(reason: impl Into<String>) -> Self {
        DecodeError::Unrecognized(reason.into())
    }
}

/// A part of a record that did not decode, with its own bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub raw: Vec<u8>,
    pub error: DecodeError,
}

/// What one record decoded into.
#[derive(Debug)]
pub struct Output<R> {
    pub rows: Vec<R>,
    pub rejected: Vec<Rejected>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Output {
            rows: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<R> Output<R> {
    pub(crate) fn reject(&mut self, raw: impl AsRef<[u8]>, error: DecodeError) {
        self.rejected.push(Rejected {
            raw: raw.as_ref().to_vec(),
            error,
        });
    }

    /// Records that hold one event: the row, or the whole record rejected.
    pub(crate) fn one(record: &[u8], result: Result<R, DecodeError>) -> Self {
        let mut out = Output::default();
        match result {
            Ok(row) => out.rows.push(row),
            Err(e) => out.reject(record, e),
        }
        out
    }
}

/// Rows of whichever table the decoder's format feeds. Audit rows borrow from the record.
#[derive(Debug)]
pub enum Decoded<'a> {
    Audit(Output<AuditEvent<'a>>),
    Flows(Output<FlowRecord>),
    Runtime(Output<RuntimeEvent>),
}

impl Decoded<'_> {
    pub fn row_count(&self) -> usize {
        match self {
            Decoded::Audit(o) => o.rows.len(),
            Decoded::Flows(o) => o.rows.len(),
            Decoded::Runtime(o) => o.rows.len(),
        }
    }

    pub fn rejected(&self) -> &[Rejected] {
        match self {
            Decoded::Audit(o) => &o.rejected,
            Decoded::Flows(o) => &o.rejected,
            Decoded::Runtime(o) => &o.rejected,
        }
    }
}

/// Settings every decoder shares.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Cluster name for records that do not name one themselves.
    pub cluster: Option<String>,
    pub redactor: Redactor,
}

/// Decodes the records of one stream (a file, a Kafka partition) in one format. It holds
/// what a stream can declare once for all its records: a VPC flow log's header line.
#[derive(Debug, Clone)]
pub struct Decoder {
    format: SourceFormat,
    options: DecodeOptions,
    aws_fields: aws_vpc::FieldOrder,
}

impl Decoder {
    pub fn new(format: SourceFormat, options: DecodeOptions) -> Self {
        Decoder {
            format,
            options,
            aws_fields: aws_vpc::FieldOrder::default(),
        }
    }

    pub fn format(&self) -> SourceFormat {
        self.format
    }

    /// Decodes one record. Never panics on input; every failure is in `rejected`.
    pub fn decode<'a>(&mut self, record: &'a [u8]) -> Decoded<'a> {
        let o = &self.options;
        match self.format {
            SourceFormat::K8sAudit => {
                // Room for the one event nearly every record is: Vec's first growth makes
                // room for four, a 3 kB allocation per record.
                let mut out = Output {
                    rows: Vec::with_capacity(1),
                    rejected: Vec::new(),
                };
                audit::decode(record, o, &mut out);
                Decoded::Audit(out)
            }
            SourceFormat::AwsVpcFlow => {
                Decoded::Flows(aws_vpc::decode(record, &mut self.aws_fields, o))
            }
            SourceFormat::GcpVpcFlow => {
                Decoded::Flows(Output::one(record, gcp_vpc::decode(record, o)))
            }
            SourceFormat::Hubble => Decoded::Flows(Output::one(record, hubble::decode(record, o))),
            SourceFormat::Calico => Decoded::Flows(Output::one(record, calico::decode(record, o))),
            SourceFormat::Tetragon => Decoded::Runtime(redact_runtime(
                Output::one(record, tetragon::decode(record, o)),
                &o.redactor,
            )),
            SourceFormat::Falco => Decoded::Runtime(redact_runtime(
                Output::one(record, falco::decode(record, o)),
                &o.redactor,
            )),
        }
    }
}

/// Command lines carry passwords and tokens (`mysql --password=…`, `curl -H 'Authorization:
/// Bearer …'`), and Falco repeats them in its output.
fn redact_runtime(mut out: Output<RuntimeEvent>, redactor: &Redactor) -> Output<RuntimeEvent> {
    for row in &mut out.rows {
        for field in [
            &mut row.arguments,
            &mut row.parent_arguments,
            &mut row.kprobe_args,
            &mut row.output,
            &mut row.output_fields,
        ] {
            redactor.redact_field(field);
        }
    }
    out
}

/// Text of a record, or why it is not text. Every decoder checks its record once, here, with
/// SIMD; the JSON decoders then parse the text without checking each string again.
pub(crate) fn utf8(record: &[u8]) -> Result<&str, DecodeError> {
    simdutf8::compat::from_utf8(record).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))
}
