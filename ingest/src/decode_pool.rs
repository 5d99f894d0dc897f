//! Decoding an input on every core: the reader hands records in chunks to one worker per
//! core; each worker decodes, batches rows per table and hands full batches to the lake
//! writer. Decoding is most of an ingest's CPU; reading only splits lines and hashes.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use kubetrail_schemas::{DeadLetter, DecodeOptions, Decoder, Provenance, SourceFormat, Table};
use tokio::sync::mpsc;

use crate::batch::{BatchLimits, TableBatches};
use crate::error::IngestError;
use crate::file::FileIngest;
use crate::source::Record;

/// Records handed from the reader to a decoding worker at once: enough to make the hand-over
/// cheap, few enough that workers stay evenly busy.
pub(crate) const CHUNK_RECORDS: usize = 1024;
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Records of one input for a worker, with the input's format as known when they were read
/// (`None`: not recognised yet).
pub(crate) struct Chunk {
    pub format: Option<SourceFormat>,
    pub records: Vec<Record>,
}

impl Chunk {
    pub fn new(format: Option<SourceFormat>) -> Chunk {
        Chunk {
            format,
            records: Vec::with_capacity(CHUNK_RECORDS),
        }
    }
}

/// Hands chunks to a pool of workers fit for their format, started on the first chunk.
pub(crate) struct Dispatch<'a> {
    pool: Option<DecodePool>,
    options: &'a FileIngest,
    source: Arc<str>,
    ingested_at: i64,
    tx: mpsc::Sender<(Table, RecordBatch)>,
}

impl<'a> Dispatch<'a> {
    pub fn new(
        options: &'a FileIngest,
        source: Arc<str>,
        ingested_at: i64,
        tx: mpsc::Sender<(Table, RecordBatch)>,
    ) -> Self {
        Dispatch {
            pool: None,
            options,
            source,
            ingested_at,
            tx,
        }
    }

    /// Hands a chunk to the workers; an ordered format gets a pool of one.
    pub fn send(&mut self, chunk: Chunk) -> Result<(), IngestError> {
        if chunk.records.is_empty() {
            return Ok(());
        }
        let ordered = chunk.format == Some(SourceFormat::AwsVpcFlow);
        if self.pool.as_ref().is_some_and(|p| p.ordered != ordered) {
            // Unrecognised records went to a parallel pool; an ordered format needs its own.
            self.finish()?;
        }
        let pool = match &mut self.pool {
            Some(pool) => pool,
            none => none.insert(DecodePool::start(
                ordered,
                self.options,
                &self.source,
                self.ingested_at,
                &self.tx,
            )),
        };
        if pool.send(chunk).is_err() {
            // Every worker has stopped, which only an error does: report that error.
            self.finish()?;
            return Err(IngestError::Worker("the decoding workers stopped".into()));
        }
        Ok(())
    }

    /// Waits for every chunk to be decoded and handed over.
    pub fn finish(&mut self) -> Result<(), IngestError> {
        match self.pool.take() {
            Some(mut pool) => pool.finish(),
            None => Ok(()),
        }
    }
}

/// The decoding workers of one input.
struct DecodePool {
    /// One worker, chunks in order.
    ordered: bool,
    chunks: Option<SyncSender<Chunk>>,
    workers: Vec<JoinHandle<Result<(), IngestError>>>,
}

impl DecodePool {
    fn start(
        ordered: bool,
        options: &FileIngest,
        source: &Arc<str>,
        ingested_at: i64,
        tx: &mpsc::Sender<(Table, RecordBatch)>,
    ) -> DecodePool {
        let count = if ordered {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        // Each worker buffers its own batches: the limits are shared out so that memory
        // stays where one buffer alone would put it.
        let limits = BatchLimits {
            max_rows: (options.limits.max_rows / count).max(1),
            max_bytes: (options.limits.max_bytes / count).max(1),
        };
        let (chunks, inbox) = sync_channel::<Chunk>(count * 2);
        let inbox = Arc::new(Mutex::new(inbox));
        let workers = (0..count)
            .map(|_| {
                let inbox = inbox.clone();
                let decode = options.decode.clone();
                let source = source.clone();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    decode_chunks(&inbox, decode, limits, &source, ingested_at, &tx)
                })
            })
            .collect();
        DecodePool {
            ordered,
            chunks: Some(chunks),
            workers,
        }
    }

    /// Fails only when every worker has stopped.
    fn send(&self, chunk: Chunk) -> Result<(), Chunk> {
        let chunks = self.chunks.as_ref().expect("open until finish");
        chunks.send(chunk).map_err(|e| e.0)
    }

    /// Waits for the workers to drain the chunks; the first error wins.
    fn finish(&mut self) -> Result<(), IngestError> {
        self.chunks = None;
        let mut result = Ok(());
        for worker in self.workers.drain(..) {
            let outcome = worker
                .join()
                .unwrap_or_else(|_| Err(IngestError::Worker("a decoding worker panicked".into())));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

/// One worker: decode chunks until the reader is done, then hand over what is left.
fn decode_chunks(
    inbox: &Mutex<Receiver<Chunk>>,
    options: DecodeOptions,
    limits: BatchLimits,
    source: &Arc<str>,
    ingested_at: i64,
    tx: &mpsc::Sender<(Table, RecordBatch)>,
) -> Result<(), IngestError> {
    let mut batches = TableBatches::new(limits);
    let mut decoder: Option<Decoder> = None;
    let send = |ready: Vec<(Table, RecordBatch)>| -> Result<(), IngestError> {
        for item in ready {
            // The receiver is gone only if the writer failed; its error is the one to report.
            tx.blocking_send(item)
                .map_err(|_| IngestError::Worker("the lake writer stopped".into()))?;
        }
        Ok(())
    };
    // One per worker, its offset moved record by record: a fresh one per record cloned
    // the shared source name, an atomic count both workers bumped on every record.
    let mut provenance = Provenance {
        source: source.clone(),
        offset: 0,
        ingested_at,
    };
    loop {
        let next = inbox
            .lock()
            .map_err(|_| IngestError::Worker("a decoding worker panicked".into()))?
            .recv();
        let Ok(chunk) = next else { break };
        if let Some(f) = chunk.format {
            if decoder.as_ref().map(|d| d.format()) != Some(f) {
                decoder = Some(Decoder::new(f, options.clone()));
            }
        }
        for record in chunk.records {
            provenance.offset = record.line;
            let known = chunk.format.and(decoder.as_mut());
            if let Some(problem) = record.problem {
                let letter = DeadLetter {
                    format: known.map_or("auto", |d| d.format().name()).to_owned(),
                    reason: problem,
                    raw: record.bytes,
                };
                batches.add_dead_letter(letter, &provenance);
                continue;
            }
            let Some(d) = known else {
                let letter = DeadLetter {
                    format: "auto".to_owned(),
                    reason: "format not recognised (pass --format to choose one)".to_owned(),
                    raw: record.bytes,
                };
                batches.add_dead_letter(letter, &provenance);
                continue;
            };
            let decoded = d.decode(&record.bytes);
            send(batches.add(decoded, d.format().name(), &provenance, record.bytes.len())?)?;
        }
    }
    send(batches.take_all()?)
}
