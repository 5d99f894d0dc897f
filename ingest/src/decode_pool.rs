//! Decoding an input on every core: the reader hands records in chunks to one worker per
//! core; each worker decodes, batches rows per table and hands full batches to the lake
//! writer. Decoding is most of an ingest's CPU; reading only splits lines and hashes.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use kubetrail_schemas::{DeadLetter, DecodeOptions, Decoder, Provenance, SourceFormat, Table};
use tokio::sync::mpsc;

use crate::batch::{BatchLimits, TableBatches};
use crate::error::IngestError;
use crate::file::FileIngest;
use crate::records::Records;
use crate::source::{RecordHead, RecordReader};

/// Records of one input for a worker, with the input's format as known when they were read
/// (`None`: not recognised yet).
pub(crate) struct Chunk {
    pub format: Option<SourceFormat>,
    records: Records<RecordHead>,
}

impl Chunk {
    fn new(format: Option<SourceFormat>) -> Chunk {
        Chunk {
            format,
            records: Records::new(),
        }
    }

    /// Reads the next record of `reader` into the chunk; false at the end of the input.
    pub fn read_record(&mut self, reader: &mut RecordReader) -> bool {
        self.records.read(|bytes| reader.read_into(bytes))
    }

    /// The bytes of the last record read, if it has no problem.
    pub fn last_sound_record(&self) -> Option<&[u8]> {
        let (bytes, head) = self.records.last()?;
        head.problem.is_none().then_some(bytes)
    }

    /// Moves the last record read into `other`.
    pub fn move_last_record(&mut self, other: &mut Chunk) {
        self.records.move_last(&mut other.records);
    }

    /// Whether the chunk holds enough to be handed to a worker.
    pub fn is_full(&self) -> bool {
        self.records.is_full()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Each record's bytes and head, in the order they were read.
    fn records(&self) -> impl Iterator<Item = (&[u8], &RecordHead)> {
        self.records.iter()
    }

    /// Empties the chunk for reuse; `None` when one huge record left its buffer too large
    /// to keep.
    fn emptied(self) -> Option<Chunk> {
        let format = self.format;
        self.records
            .emptied()
            .map(|records| Chunk { format, records })
    }
}

/// Hands chunks to a pool of workers fit for their format, started on the first chunk, and
/// gets them back empty to be filled again.
pub(crate) struct Dispatch<'a> {
    pool: Option<DecodePool>,
    /// Chunks the workers have emptied, and where they send them.
    spare: Receiver<Chunk>,
    returns: Sender<Chunk>,
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
        let (returns, spare) = channel();
        Dispatch {
            pool: None,
            spare,
            returns,
            options,
            source,
            ingested_at,
            tx,
        }
    }

    /// An empty chunk for records of `format`: one a worker has handed back if there is one.
    pub fn chunk(&self, format: Option<SourceFormat>) -> Chunk {
        match self.spare.try_recv() {
            Ok(mut chunk) => {
                chunk.format = format;
                chunk
            }
            Err(_) => Chunk::new(format),
        }
    }

    /// Hands a chunk to the workers; an ordered format gets a pool of one.
    pub fn send(&mut self, chunk: Chunk) -> Result<(), IngestError> {
        if chunk.is_empty() {
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
                &self.returns,
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
        returns: &Sender<Chunk>,
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
                let returns = returns.clone();
                std::thread::spawn(move || {
                    decode_chunks(&inbox, decode, limits, &source, ingested_at, &tx, &returns)
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

/// One worker: decode chunks until the reader is done, then hand over what is left. Full
/// batches go to the lake writer (`tx`), emptied chunks back to the reader (`returns`).
fn decode_chunks(
    inbox: &Mutex<Receiver<Chunk>>,
    options: DecodeOptions,
    limits: BatchLimits,
    source: &Arc<str>,
    ingested_at: i64,
    tx: &mpsc::Sender<(Table, RecordBatch)>,
    returns: &Sender<Chunk>,
) -> Result<(), IngestError> {
    let mut batches = TableBatches::new(limits, options.redactor.clone());
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
        for (bytes, head) in chunk.records() {
            provenance.offset = head.line;
            let known = chunk.format.and(decoder.as_mut());
            if let Some(problem) = &head.problem {
                let letter = DeadLetter {
                    format: known.map_or("auto", |d| d.format().name()).to_owned(),
                    reason: problem.clone(),
                    raw: bytes.to_vec(),
                };
                batches.add_dead_letter(letter, &provenance);
                continue;
            }
            let Some(d) = known else {
                let letter = DeadLetter {
                    format: "auto".to_owned(),
                    reason: "format not recognised (pass --format to choose one)".to_owned(),
                    raw: bytes.to_vec(),
                };
                batches.add_dead_letter(letter, &provenance);
                continue;
            };
            let decoded = d.decode(bytes);
            send(batches.add(decoded, d.format().name(), &provenance, bytes.len())?)?;
        }
        // The reader may have finished already and no longer take chunks back.
        if let Some(empty) = chunk.emptied() {
            let _ = returns.send(empty);
        }
    }
    send(batches.take_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_of(input: &[u8]) -> Chunk {
        let mut reader = RecordReader::with_max_record_bytes(input, 16);
        let mut chunk = Chunk::new(None);
        while chunk.read_record(&mut reader) {}
        chunk
    }

    fn texts(chunk: &Chunk) -> Vec<(String, i64, bool)> {
        chunk
            .records()
            .map(|(bytes, head)| {
                let text = String::from_utf8_lossy(bytes).into_owned();
                (text, head.line, head.problem.is_some())
            })
            .collect()
    }

    #[test]
    fn a_chunk_keeps_each_record_with_its_line_and_problem() {
        let chunk = chunk_of(b"{\"a\":1}\n\n{\"a\":\"far too long\"}\nnot json\n");
        assert_eq!(
            texts(&chunk),
            [
                ("{\"a\":1}".to_owned(), 1, false),
                ("{\"a\":\"far too lo".to_owned(), 3, true),
                ("not json".to_owned(), 4, false),
            ]
        );
        // The last record is sound; an oversize one is never sniffed.
        assert_eq!(chunk.last_sound_record(), Some(&b"not json"[..]));
        assert_eq!(
            chunk_of(b"{\"a\":\"far too long\"}").last_sound_record(),
            None
        );
        assert_eq!(Chunk::new(None).last_sound_record(), None);
    }

    #[test]
    fn the_last_record_moves_to_another_chunk_whole() {
        let mut unrecognised = chunk_of(b"junk\n{\"kind\":\"Event\"}\n");
        let mut recognised = Chunk::new(Some(SourceFormat::K8sAudit));
        unrecognised.move_last_record(&mut recognised);
        assert_eq!(texts(&unrecognised), [("junk".to_owned(), 1, false)]);
        assert_eq!(
            texts(&recognised),
            [("{\"kind\":\"Event\"}".to_owned(), 2, false)]
        );
        assert_eq!(recognised.format, Some(SourceFormat::K8sAudit));
    }
}
