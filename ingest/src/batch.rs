//! Decoded rows gathered per table until a batch is worth a file: bounded by rows and by
//! input bytes, so memory stays flat whatever the input size.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
pub use kubetrail_schemas::rows::BatchLimits;
use kubetrail_schemas::rows::{AuditColumns, FlowColumns, RowBuffer, RuntimeColumns};
use kubetrail_schemas::{DeadLetter, DeadLetterBuffer, Decoded, Provenance, Redactor, Table};

/// Rows waiting for the lake, one buffer per table, and how many went where.
#[derive(Debug)]
pub struct TableBatches {
    limits: BatchLimits,
    audit: RowBuffer<AuditColumns>,
    flows: RowBuffer<FlowColumns>,
    runtime: RowBuffer<RuntimeColumns>,
    dead: DeadLetterBuffer,
    rows: BTreeMap<Table, u64>,
}

impl TableBatches {
    /// Batches bounded by `limits`, whose dead letters' records go through `redactor`.
    pub fn new(limits: BatchLimits, redactor: Redactor) -> Self {
        TableBatches {
            limits,
            audit: RowBuffer::new(limits),
            flows: RowBuffer::new(limits),
            runtime: RowBuffer::new(limits),
            dead: DeadLetterBuffer::new(redactor),
            rows: BTreeMap::new(),
        }
    }

    /// Adds what one record decoded into; its rejected parts become dead letters. Returns
    /// the batches that became full.
    pub fn add(
        &mut self,
        decoded: Decoded,
        format: &str,
        provenance: &Provenance,
        raw_len: usize,
    ) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        self.add_where(decoded, format, provenance, raw_len, |_| true)
    }

    /// Like [`TableBatches::add`], keeping only the rows of the tables `keep` accepts: a
    /// replayed Kafka record adds nothing to tables that already hold it.
    pub fn add_where(
        &mut self,
        decoded: Decoded,
        format: &str,
        provenance: &Provenance,
        raw_len: usize,
        keep: impl Fn(Table) -> bool,
    ) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        let rejected = match decoded {
            Decoded::Audit(out) => {
                if keep(Table::K8sAudit) {
                    self.count(Table::K8sAudit, out.rows.len());
                    self.audit.extend(&out.rows, provenance, raw_len);
                }
                out.rejected
            }
            Decoded::Flows(out) => {
                if keep(Table::NetworkFlows) {
                    self.count(Table::NetworkFlows, out.rows.len());
                    self.flows.extend(&out.rows, provenance, raw_len);
                }
                out.rejected
            }
            Decoded::Runtime(out) => {
                if keep(Table::RuntimeEvents) {
                    self.count(Table::RuntimeEvents, out.rows.len());
                    self.runtime.extend(&out.rows, provenance, raw_len);
                }
                out.rejected
            }
        };
        if !keep(Table::DeadLetters) {
            return self.take_full();
        }
        for r in rejected {
            self.add_dead_letter(
                DeadLetter {
                    format: format.to_owned(),
                    reason: r.error.to_string(),
                    raw: r.raw,
                },
                provenance,
            );
        }
        self.take_full()
    }

    pub fn add_dead_letter(&mut self, letter: DeadLetter, provenance: &Provenance) {
        self.count(Table::DeadLetters, 1);
        self.dead.push(letter, provenance);
    }

    /// The batches of the tables that reached a limit.
    pub fn take_full(&mut self) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        self.take(|_| false)
    }

    /// Every remaining row, as batches.
    pub fn take_all(&mut self) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        self.take(|_| true)
    }

    /// Every remaining row of the tables `whole` accepts, and the full batches of the others.
    pub fn take_whole(
        &mut self,
        whole: impl Fn(Table) -> bool,
    ) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        self.take(whole)
    }

    /// Drops every buffered row (the counts of rows added stay as they were).
    pub fn discard(&mut self) {
        self.audit = RowBuffer::new(self.limits);
        self.flows = RowBuffer::new(self.limits);
        self.runtime = RowBuffer::new(self.limits);
        self.dead.clear();
    }

    /// Rows added so far per table (dead letters included), whether written yet or not.
    pub fn rows(&self) -> &BTreeMap<Table, u64> {
        &self.rows
    }

    fn count(&mut self, table: Table, n: usize) {
        if n > 0 {
            *self.rows.entry(table).or_default() += n as u64;
        }
    }

    fn take(
        &mut self,
        all: impl Fn(Table) -> bool,
    ) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        let limits = self.limits;
        let due =
            |table: Table, is_empty: bool, is_full: bool| !is_empty && (all(table) || is_full);
        let mut out = Vec::new();
        if due(
            Table::K8sAudit,
            self.audit.is_empty(),
            self.audit.is_full(limits),
        ) {
            out.extend(self.audit.take_batch()?.map(|b| (Table::K8sAudit, b)));
        }
        if due(
            Table::NetworkFlows,
            self.flows.is_empty(),
            self.flows.is_full(limits),
        ) {
            out.extend(self.flows.take_batch()?.map(|b| (Table::NetworkFlows, b)));
        }
        if due(
            Table::RuntimeEvents,
            self.runtime.is_empty(),
            self.runtime.is_full(limits),
        ) {
            out.extend(
                self.runtime
                    .take_batch()?
                    .map(|b| (Table::RuntimeEvents, b)),
            );
        }
        if due(
            Table::DeadLetters,
            self.dead.is_empty(),
            self.dead.is_full(limits),
        ) {
            out.extend(self.dead.take_batch()?.map(|b| (Table::DeadLetters, b)));
        }
        Ok(out)
    }
}
