//! `ingest file`: one input (file or stdin, plain or gzip) into the lake, committed once.
//!
//! Reading runs on a blocking thread that hands records to decoding workers, one per core
//! (`decode_pool`); they hand full batches over a bounded channel to the writer, so decoding
//! never stalls the async reactor and a slow lake slows the reader instead of filling
//! memory. Each table's files are committed in one Delta commit carrying the input's
//! content hash; a table that already holds that hash
//! is not written again, so re-ingesting a file (or finishing one after a crash) adds
//! nothing twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use kubetrail_schemas::{DecodeOptions, SourceFormat, Table};
use tokio::sync::mpsc;

use crate::batch::BatchLimits;
use crate::decode_pool::Dispatch;
use crate::error::IngestError;
use crate::source::{input, InputPath, Progress, RecordReader, DEFAULT_MAX_RECORD_BYTES};
use kubetrail_lake::{CommitMarker, Lake, Origin, TableWriter};

/// How to ingest files.
#[derive(Debug, Clone)]
pub struct FileIngest {
    /// `None` recognises the format from the content of the first records.
    pub format: Option<SourceFormat>,
    pub decode: DecodeOptions,
    pub limits: BatchLimits,
    pub max_record_bytes: usize,
}

impl Default for FileIngest {
    fn default() -> Self {
        FileIngest {
            format: None,
            decode: DecodeOptions::default(),
            limits: BatchLimits::default(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// What happened to one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputReport {
    pub source: String,
    pub format: Option<SourceFormat>,
    /// Records read (blank lines are not records).
    pub records: u64,
    /// Rows committed per table, dead letters included.
    pub rows: BTreeMap<Table, u64>,
    /// The input's content was already in the lake: nothing was written.
    pub already_ingested: bool,
    pub bytes: u64,
    /// BLAKE3 of the raw bytes, in hex: the input's identity in the lake.
    pub content_hash: String,
}

impl InputReport {
    pub fn dead_letters(&self) -> u64 {
        self.rows.get(&Table::DeadLetters).copied().unwrap_or(0)
    }
}

/// How many times a commit refused for a conflict is made again before the error stands.
const COMMIT_ATTEMPTS: u32 = 5;

/// The app id of the marker a file's commits carry.
pub fn file_marker(content_hash: &str) -> String {
    format!("kubetrail/file/blake3:{content_hash}")
}

/// What the reading side learnt about the input.
struct ReadSummary {
    format: Option<SourceFormat>,
    records: u64,
}

/// One file with the default options and no progress display: what rule tests need to
/// load their events.
pub async fn ingest_one_file(
    lake: &Lake,
    path: &std::path::Path,
    format: Option<SourceFormat>,
) -> Result<InputReport, IngestError> {
    let options = FileIngest {
        format,
        ..FileIngest::default()
    };
    let input = InputPath::File(path.to_owned());
    ingest_file(lake, &input, &options, Arc::new(crate::source::NoProgress)).await
}

/// Ingests one input into the lake, once: decoding on a pool, batches written as they fill,
/// one commit per table carrying the input's content marker (a second run adds nothing).
pub async fn ingest_file(
    lake: &Lake,
    path: &InputPath,
    options: &FileIngest,
    progress: Arc<dyn Progress>,
) -> Result<InputReport, IngestError> {
    FileIngester::new(lake, options.clone())
        .ingest(path, progress)
        .await
}

/// Ingests inputs one after another, each once, keeping each table's writer from one input
/// to the next: a writer opened per input read the table's whole log again (on object
/// storage a GET per commit, for every input and table).
pub struct FileIngester {
    lake: Lake,
    options: FileIngest,
    writers: BTreeMap<Table, TableWriter>,
}

impl FileIngester {
    pub fn new(lake: &Lake, options: FileIngest) -> FileIngester {
        FileIngester {
            lake: lake.clone(),
            options,
            writers: BTreeMap::new(),
        }
    }

    /// Ingests one input (see [`ingest_file`]). After an error the writers are dropped,
    /// with whatever they had staged, and the next input opens them again.
    pub async fn ingest(
        &mut self,
        path: &InputPath,
        progress: Arc<dyn Progress>,
    ) -> Result<InputReport, IngestError> {
        let ingested = self.ingest_input(path, progress).await;
        if ingested.is_err() {
            for writer in self.writers.values_mut() {
                writer.discard();
            }
            self.writers.clear();
        }
        ingested
    }

    async fn ingest_input(
        &mut self,
        path: &InputPath,
        progress: Arc<dyn Progress>,
    ) -> Result<InputReport, IngestError> {
        let (tx, mut rx) = mpsc::channel::<(Table, RecordBatch)>(2);
        let worker = {
            let path = path.clone();
            let options = self.options.clone();
            let progress = progress.clone();
            tokio::task::spawn_blocking(move || decode_input(&path, &options, progress, tx))
        };
        // The tables this input has rows for: only they get its commits.
        let mut touched = std::collections::BTreeSet::new();
        while let Some((table, batch)) = rx.recv().await {
            let writer = match self.writers.entry(table) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(TableWriter::open(&self.lake, table).await?)
                }
            };
            writer.stage(batch).await?;
            touched.insert(table);
        }
        let writers = self
            .writers
            .iter_mut()
            .filter(|(table, _)| touched.contains(*table))
            .collect();
        commit_input(path, worker, writers).await
    }
}

/// Waits for the input's reading to end, then commits each table's rows with the input's
/// marker (or abandons them where the marker is already there).
async fn commit_input(
    path: &InputPath,
    worker: tokio::task::JoinHandle<Result<(ReadSummary, input::ContentHash), IngestError>>,
    writers: Vec<(&Table, &mut TableWriter)>,
) -> Result<InputReport, IngestError> {
    let (read, hash) = worker
        .await
        .map_err(|e| IngestError::Worker(e.to_string()))??;
    let (content_hash, bytes) = hash.finish();
    let marker = CommitMarker {
        app_id: file_marker(&content_hash),
        version: 0,
    };
    let mut report = InputReport {
        source: path.source(),
        format: read.format,
        records: read.records,
        bytes,
        content_hash,
        ..InputReport::default()
    };
    let origin = Origin::File {
        name: report.source.clone(),
        blake3: report.content_hash.clone(),
        bytes,
    };
    let mut skipped = 0;
    let tables = writers.len();
    for (table, writer) in writers {
        if writer.marker_version(&marker.app_id).await?.is_some() {
            writer.abandon().await;
            skipped += 1;
            continue;
        }
        let rows = writer.staged_rows() as u64;
        let mut attempts = 0;
        let landed = loop {
            let Err(e) = writer
                .commit(std::slice::from_ref(&marker), std::slice::from_ref(&origin))
                .await
            else {
                break true;
            };
            // The marker there means the content landed: another ingester committed it
            // first (Delta refuses a commit whose marker a concurrent one moved), or this
            // commit did and its answer was lost. Unreadable, the commit's own error is
            // the one to report; the marker is absent or present, never half.
            if let Ok(Some(_)) = writer.marker_version(&marker.app_id).await {
                // Files of a commit refused for the conflict are still staged; those the
                // table holds (this commit landed, its answer lost) stay.
                writer.abandon().await;
                break false;
            }
            // Refused for what another writer committed first (the table's creation by
            // a concurrent ingester): the writer has caught up; commit on top of it.
            attempts += 1;
            if !(e.is_commit_conflict() && attempts < COMMIT_ATTEMPTS) {
                return Err(e.into());
            }
        };
        if !landed {
            skipped += 1;
            continue;
        }
        report.rows.insert(*table, rows);
    }
    report.already_ingested = skipped > 0 && skipped == tables;
    Ok(report)
}

/// Runs on a blocking thread: read and frame the input, recognise its format, and hand the
/// records in chunks to decoding workers (one per core), which batch rows per table and hand
/// full batches to the lake writer. Decoding is most of an ingest's work; the reader only
/// splits lines and hashes. A format whose records depend on earlier ones (AWS VPC flow logs:
/// a header line sets the field order) is decoded by one worker, in order.
fn decode_input(
    path: &InputPath,
    options: &FileIngest,
    progress: Arc<dyn Progress>,
    tx: mpsc::Sender<(Table, RecordBatch)>,
) -> Result<(ReadSummary, input::ContentHash), IngestError> {
    let opened = input::open(path, progress.clone())?;
    let mut workers = Dispatch::new(
        options,
        Arc::from(path.source()),
        chrono::Utc::now().timestamp_micros(),
        tx,
    );
    let mut format = options.format;
    let mut chunk = workers.chunk(format);
    let mut records = 0u64;
    let mut reader = RecordReader::with_max_record_bytes(opened.reader, options.max_record_bytes);
    while chunk.read_record(&mut reader) {
        records += 1;
        if format.is_none() {
            if let Some(found) = chunk.last_sound_record().and_then(SourceFormat::sniff) {
                // Records before this one stay unrecognised; this one and those after are `found`.
                format = Some(found);
                let mut recognised = workers.chunk(format);
                chunk.move_last_record(&mut recognised);
                workers.send(std::mem::replace(&mut chunk, recognised))?;
            }
        }
        if chunk.is_full() {
            let next = workers.chunk(format);
            workers.send(std::mem::replace(&mut chunk, next))?;
        }
    }
    workers.send(chunk)?;
    workers.finish()?;
    progress.finish();
    Ok((ReadSummary { format, records }, opened.hash))
}
