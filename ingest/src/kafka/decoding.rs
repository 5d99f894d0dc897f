//! Decoding Kafka records on every core.
//!
//! The consumer thread only frames: it appends each record's value to a chunk with what it
//! knows of it (partition, offset, which tables still lack it) and hands full chunks to one
//! decoding worker per core. Each worker decodes, batches rows per table with its share of
//! the batch limits, and stages full batches with the lake writer itself.
//!
//! What makes this exactly once is the barrier: before a table is committed, the consumer
//! hands every worker what it framed and asks each to stage what it holds of that table;
//! a worker answers after the chunks sent before the question, and stages before it
//! answers. So when the last answer is in, every record the consumer took in has its rows
//! staged ahead of the commit on the writer's channel, and the commit may move each
//! partition's marker to the last offset the consumer took in: the rows a commit publishes
//! are always exactly the records up to its markers, none missing and none beyond.
//!
//! Chunks of a topic with a configured, stateless format go to the workers in turn. A VPC
//! flow log's header sets the field order for the records after it, and a topic without a
//! format is recognised per record, so the records of those partitions all go to one worker
//! each (a partition's lane) and are decoded in order.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use kubetrail_schemas::{DeadLetter, DecodeOptions, Decoder, Provenance, SourceFormat, Table};
use tokio::sync::mpsc;

use super::writer::WriterRequest;
use crate::batch::{BatchLimits, TableBatches};
use crate::error::IngestError;
use crate::records::Records;

/// Whether each of [`Table::INGESTED`] still lacks a record (a replayed record is
/// decoded again for the tables that do).
pub(super) type Wanted = [bool; Table::INGESTED.len()];

/// What the consumer knows of a record it hands over.
#[derive(Debug)]
struct RecordHead {
    /// Index into the chunk's partitions.
    partition: usize,
    offset: i64,
    ingested_at: i64,
    wanted: Wanted,
    /// The topic's format; `None`: recognised per record.
    format: Option<SourceFormat>,
    /// Why the record is a dead letter without being decoded (a range Kafka deleted).
    problem: Option<Box<str>>,
}

/// Records of several partitions, in the order they were polled.
#[derive(Debug)]
struct Chunk {
    /// The `kafka:<topic>/<partition>` sources of the records, each once.
    partitions: Vec<Arc<str>>,
    records: Records<RecordHead>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            partitions: Vec::new(),
            records: Records::new(),
        }
    }

    fn partition_index(&mut self, source: &Arc<str>) -> usize {
        // Records of one partition come in runs: the last one is nearly always it.
        match self.partitions.iter().rposition(|p| Arc::ptr_eq(p, source)) {
            Some(i) => i,
            None => {
                self.partitions.push(source.clone());
                self.partitions.len() - 1
            }
        }
    }

    fn emptied(self) -> Option<Chunk> {
        self.records.emptied().map(|records| Chunk {
            partitions: Vec::new(),
            records,
        })
    }
}

/// A record for [`DecodePool::push`].
pub(super) struct Taken<'a> {
    pub source: &'a Arc<str>,
    pub offset: i64,
    pub wanted: Wanted,
    pub format: Option<SourceFormat>,
    pub problem: Option<Box<str>>,
    pub value: &'a [u8],
    /// The worker this record must go to (its partition's), or `None`: any.
    pub lane: Option<usize>,
}

enum Work {
    Decode(Chunk),
    /// Stage every row of these tables, then answer with the tables that got rows staged
    /// since they were last asked for.
    Stage {
        tables: BTreeSet<Table>,
        done: Sender<Result<BTreeSet<Table>, String>>,
    },
    /// Drop every row and decoder, then answer.
    Discard {
        done: Sender<Result<BTreeSet<Table>, String>>,
    },
    /// Forget the decoders of partitions given up.
    Forget(Vec<Arc<str>>),
}

/// The decoding workers of one Kafka ingester.
pub(super) struct DecodePool {
    workers: Vec<Worker>,
    /// One chunk being filled per worker.
    open: Vec<Chunk>,
    /// The worker the next chunk of records that may go anywhere is for.
    turn: usize,
    /// Tables a worker staged a full batch of, for the consumer to commit.
    full: Receiver<Table>,
    /// Full tables taken from `full` and not committed yet.
    full_pending: BTreeSet<Table>,
    spare: Receiver<Chunk>,
    /// The first error a worker met; it stops and the ingester ends with it.
    failure: Arc<Mutex<Option<String>>>,
}

struct Worker {
    work: Option<SyncSender<Work>>,
    thread: Option<JoinHandle<()>>,
}

impl DecodePool {
    pub fn start(
        decode: &DecodeOptions,
        limits: BatchLimits,
        writer: &mpsc::Sender<WriterRequest>,
    ) -> Result<Self, IngestError> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each worker buffers its own batches: the limits are shared out so that memory
        // stays where one buffer alone would put it.
        let limits = BatchLimits {
            max_rows: (limits.max_rows / count).max(1),
            max_bytes: (limits.max_bytes / count).max(1),
        };
        let (full_tx, full) = channel();
        let (returns, spare) = channel();
        let failure = Arc::new(Mutex::new(None));
        let mut workers = Vec::with_capacity(count);
        for i in 0..count {
            let (work, inbox) = sync_channel(2);
            let mut worker = DecodeWorker {
                decode: decode.clone(),
                batches: TableBatches::new(limits, decode.redactor.clone()),
                decoders: HashMap::new(),
                staged: BTreeSet::new(),
                writer: writer.clone(),
                full: full_tx.clone(),
                returns: returns.clone(),
            };
            let failure = failure.clone();
            let thread = std::thread::Builder::new()
                .name(format!("kafka-decode-{i}"))
                .spawn(move || {
                    if let Err(e) = worker.run(&inbox) {
                        let mut slot = failure.lock().unwrap_or_else(PoisonError::into_inner);
                        slot.get_or_insert(e);
                    }
                })?;
            workers.push(Worker {
                work: Some(work),
                thread: Some(thread),
            });
        }
        Ok(DecodePool {
            open: (0..count).map(|_| Chunk::new()).collect(),
            workers,
            turn: 0,
            full,
            full_pending: BTreeSet::new(),
            spare,
            failure,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Adds a record to the chunk of its worker, handing the chunk over once it is full
    /// (which blocks while that worker is two chunks behind: the consumer then stops
    /// polling, and librdkafka's prefetch is capped, so memory stays flat). Returns whether
    /// a chunk was handed over.
    pub fn push(&mut self, record: Taken<'_>) -> Result<bool, IngestError> {
        let lane = record.lane.map_or(self.turn, |l| l % self.workers.len());
        let chunk = &mut self.open[lane];
        let partition = chunk.partition_index(record.source);
        chunk.records.push(
            record.value,
            RecordHead {
                partition,
                offset: record.offset,
                ingested_at: chrono::Utc::now().timestamp_micros(),
                wanted: record.wanted,
                format: record.format,
                problem: record.problem,
            },
        );
        if !chunk.records.is_full() {
            return Ok(false);
        }
        if lane == self.turn {
            self.turn = (self.turn + 1) % self.workers.len();
        }
        self.hand_over(lane)?;
        Ok(true)
    }

    /// Tables some worker staged a full batch of since the last call (each once).
    pub fn full_tables(&mut self) -> BTreeSet<Table> {
        self.full_pending.extend(self.full.try_iter());
        std::mem::take(&mut self.full_pending)
    }

    /// Has every worker stage all it holds of `tables`, after everything pushed so far.
    /// Returns the tables that got rows staged since they were last staged this way.
    pub fn stage(&mut self, tables: &BTreeSet<Table>) -> Result<BTreeSet<Table>, IngestError> {
        for lane in 0..self.workers.len() {
            self.hand_over(lane)?;
        }
        let staged = self.ask(|done| Work::Stage {
            tables: tables.clone(),
            done,
        })?;
        // Full batches of these tables staged before the answers came are in this stage;
        // those of other tables still wait for their commit.
        self.full_pending.extend(self.full.try_iter());
        self.full_pending.retain(|t| !tables.contains(t));
        Ok(staged)
    }

    /// Drops every record pushed and every row not staged yet, and every worker's
    /// decoders; once it returns, nothing staged before it is staged after it.
    pub fn discard(&mut self) -> Result<(), IngestError> {
        for chunk in &mut self.open {
            let emptied = std::mem::replace(chunk, Chunk::new()).emptied();
            *chunk = emptied.unwrap_or_else(Chunk::new);
        }
        self.ask(|done| Work::Discard { done })?;
        self.full.try_iter().for_each(drop);
        self.full_pending.clear();
        Ok(())
    }

    /// Forgets the decoders of partitions given up (their header state, for VPC flow logs).
    pub fn forget(&mut self, sources: Vec<Arc<str>>) {
        for w in &self.workers {
            if let Some(work) = &w.work {
                let _ = work.send(Work::Forget(sources.clone()));
            }
        }
    }

    fn hand_over(&mut self, lane: usize) -> Result<(), IngestError> {
        if self.open[lane].records.is_empty() {
            return Ok(());
        }
        let next = self.spare.try_recv().unwrap_or_else(|_| Chunk::new());
        let chunk = std::mem::replace(&mut self.open[lane], next);
        self.send(lane, Work::Decode(chunk))
    }

    fn send(&mut self, lane: usize, work: Work) -> Result<(), IngestError> {
        let sent = self.workers[lane]
            .work
            .as_ref()
            .is_some_and(|w| w.send(work).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.failed())
        }
    }

    /// Sends every worker a question and waits for every answer.
    fn ask(
        &mut self,
        question: impl Fn(Sender<Result<BTreeSet<Table>, String>>) -> Work,
    ) -> Result<BTreeSet<Table>, IngestError> {
        let (done, answers) = channel();
        for lane in 0..self.workers.len() {
            self.send(lane, question(done.clone()))?;
        }
        drop(done);
        let mut tables = BTreeSet::new();
        for _ in 0..self.workers.len() {
            match answers.recv() {
                Ok(Ok(staged)) => tables.extend(staged),
                Ok(Err(e)) => return Err(IngestError::Worker(e)),
                // A worker stopped with the question unanswered.
                Err(_) => return Err(self.failed()),
            }
        }
        Ok(tables)
    }

    fn failed(&self) -> IngestError {
        let failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        IngestError::Worker(match &*failure {
            Some(e) => format!("decoding Kafka records: {e}"),
            None => "a Kafka decoding worker stopped".into(),
        })
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.work = None;
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

struct DecodeWorker {
    decode: DecodeOptions,
    batches: TableBatches,
    /// Per partition source, one decoder per format met.
    decoders: HashMap<Arc<str>, Vec<Decoder>>,
    /// Tables with rows staged since they were last asked for.
    staged: BTreeSet<Table>,
    writer: mpsc::Sender<WriterRequest>,
    full: Sender<Table>,
    returns: Sender<Chunk>,
}

impl DecodeWorker {
    fn run(&mut self, inbox: &Receiver<Work>) -> Result<(), String> {
        while let Ok(work) = inbox.recv() {
            match work {
                Work::Decode(chunk) => {
                    let staged = self.decode_chunk(&chunk);
                    if let Some(empty) = chunk.emptied() {
                        let _ = self.returns.send(empty);
                    }
                    staged.map_err(|e| e.to_string())?;
                }
                Work::Stage { tables, done } => {
                    let result = self.stage_tables(&tables);
                    let failed = result.as_ref().err().cloned();
                    let _ = done.send(result);
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
                Work::Discard { done } => {
                    self.batches.discard();
                    self.decoders.clear();
                    self.staged.clear();
                    let _ = done.send(Ok(BTreeSet::new()));
                }
                Work::Forget(sources) => {
                    for s in sources {
                        self.decoders.remove(&s);
                    }
                }
            }
        }
        Ok(())
    }

    fn decode_chunk(&mut self, chunk: &Chunk) -> Result<(), IngestError> {
        let mut provenance = Provenance {
            source: Arc::from(""),
            offset: 0,
            ingested_at: 0,
        };
        let mut current = usize::MAX;
        for (value, head) in chunk.records.iter() {
            if head.partition != current {
                current = head.partition;
                provenance.source = chunk.partitions[current].clone();
            }
            provenance.offset = head.offset;
            provenance.ingested_at = head.ingested_at;
            let keep = |t: Table| {
                Table::INGESTED
                    .iter()
                    .zip(head.wanted)
                    .any(|(all, w)| *all == t && w)
            };
            let format = match (&head.problem, value.is_empty()) {
                (Some(problem), _) => Err(&**problem),
                (None, true) => Err("the record has no value"),
                (None, false) => head
                    .format
                    .or_else(|| SourceFormat::sniff(value))
                    .ok_or("format not recognised (give the topic a format: --topic NAME=FORMAT)"),
            };
            let full = match format {
                Err(reason) => {
                    if keep(Table::DeadLetters) {
                        let letter = DeadLetter {
                            format: head.format.map_or("auto", |f| f.name()).to_owned(),
                            reason: reason.to_owned(),
                            raw: value.to_vec(),
                        };
                        self.batches.add_dead_letter(letter, &provenance);
                    }
                    self.batches.take_full()?
                }
                Ok(format) => {
                    let decoder = self.decoder(&provenance.source, format);
                    let decoded = decoder.decode(value);
                    self.batches.add_where(
                        decoded,
                        format.name(),
                        &provenance,
                        value.len(),
                        keep,
                    )?
                }
            };
            for (table, batch) in full {
                self.send_stage(table, batch)?;
                let _ = self.full.send(table);
            }
        }
        Ok(())
    }

    fn decoder(&mut self, source: &Arc<str>, format: SourceFormat) -> &mut Decoder {
        let decoders = self.decoders.entry(source.clone()).or_default();
        let i = match decoders.iter().position(|d| d.format() == format) {
            Some(i) => i,
            None => {
                decoders.push(Decoder::new(format, self.decode.clone()));
                decoders.len() - 1
            }
        };
        &mut decoders[i]
    }

    fn stage_tables(&mut self, tables: &BTreeSet<Table>) -> Result<BTreeSet<Table>, String> {
        let batches = self
            .batches
            .take_whole(|t| tables.contains(&t))
            .map_err(|e| e.to_string())?;
        for (table, batch) in batches {
            self.send_stage(table, batch).map_err(|e| e.to_string())?;
            if !tables.contains(&table) {
                let _ = self.full.send(table);
            }
        }
        let staged = self.staged.intersection(tables).copied().collect();
        self.staged.retain(|t| !tables.contains(t));
        Ok(staged)
    }

    fn send_stage(
        &mut self,
        table: Table,
        batch: arrow::array::RecordBatch,
    ) -> Result<(), IngestError> {
        self.staged.insert(table);
        self.writer
            .blocking_send(WriterRequest::Stage(table, batch))
            .map_err(|_| IngestError::Worker("the lake writer stopped".into()))
    }
}
