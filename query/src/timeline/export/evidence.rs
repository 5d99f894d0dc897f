//! An evidence bundle: a timeline, the lake rows it stands on, the custody records of the
//! files those rows are in, and a SHA-256 of every file of the bundle, for a third party
//! to check offline.
//!
//! ```text
//! DIR/timeline.jsonl    one line per lake row, in time order (not collapsed)
//! DIR/timeline.html     the same, to read
//! DIR/rows/TABLE.parquet the rows themselves, as the lake holds them, each with the file it is in
//! DIR/custody.json      per table: the head of its log, and each of those files' manifest entry
//! DIR/README.txt        what the bundle is and how to check it
//! DIR/SHA256SUMS        `sha256sum -c SHA256SUMS` checks every file above
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use datafusion::prelude::{col, lit, Expr};
use kubetrail_lake::custody::lookup::{sealed_files, TableCustody};
use kubetrail_schemas::table::{OFFSET_COLUMN, SOURCE_COLUMN, TIME_COLUMN};
use kubetrail_schemas::Table;
use parquet::arrow::ArrowWriter;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{write, TimelineFormat};
use crate::timeline::fetch::as_text;
use crate::timeline::{rfc3339, Timeline, TimelineError};
use crate::{LakeSession, QueryError};

/// The column of each exported row naming the lake file it is in.
pub const FILE_COLUMN: &str = "_lake_file";

/// What a bundle holds.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// Rows exported per table.
    pub rows: BTreeMap<Table, usize>,
    /// Lake files those rows are in.
    pub files: usize,
    /// The bundle's files, as SHA256SUMS lists them.
    pub written: Vec<String>,
}

/// Writes the bundle of `timeline` (built without collapsing, so that each line is one
/// row) into `dir`, which must be new or empty.
pub async fn write_bundle(
    session: &LakeSession,
    timeline: &Timeline,
    dir: &Path,
) -> Result<Bundle, TimelineError> {
    prepare(dir)?;
    let mut bundle = Bundle::default();
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, format) in [
        ("timeline.jsonl", TimelineFormat::Jsonl),
        ("timeline.html", TimelineFormat::Html),
    ] {
        let path = dir.join(name);
        let mut out = std::io::BufWriter::new(create(&path)?);
        write(timeline, format, &mut out).map_err(|e| io_error(&path, e))?;
        out.flush().map_err(|e| io_error(&path, e))?;
        written.push(path);
    }

    let mut custody: BTreeMap<String, TableCustody> = BTreeMap::new();
    std::fs::create_dir_all(dir.join("rows")).map_err(|e| io_error(&dir.join("rows"), e))?;
    for (table, wanted) in evidence_by_table(timeline) {
        let rows = lake_rows(session, table, &wanted).await?;
        let found: usize = rows.num_rows();
        let missing = wanted.len().saturating_sub(distinct_records(&rows));
        if missing > 0 {
            return Err(TimelineError::Invalid(format!(
                "{missing} row(s) of {table} the timeline stands on are no longer in the lake \
                 (retention, or the lake changed since): build the timeline again"
            )));
        }
        let path = dir.join("rows").join(format!("{}.parquet", table.name()));
        write_parquet(&path, &rows)?;
        written.push(path);
        let files: BTreeSet<String> = strings(&rows, FILE_COLUMN).into_iter().collect();
        bundle.files += files.len();
        let table_custody = sealed_files(session.lake(), table, &files)
            .await
            .map_err(QueryError::from)?;
        custody.insert(table.name().to_owned(), table_custody);
        bundle.rows.insert(table, found);
    }
    let path = dir.join("custody.json");
    let record = CustodyRecord {
        lake: session.lake().display(),
        entity: timeline.entity.to_string(),
        window: timeline.window.to_string(),
        exported_at: rfc3339(chrono::Utc::now().timestamp_micros()),
        kubetrail: env!("CARGO_PKG_VERSION"),
        tables: &custody,
    };
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|e| TimelineError::Invalid(format!("custody record: {e}")))?;
    std::fs::write(&path, json).map_err(|e| io_error(&path, e))?;
    written.push(path);
    let path = dir.join("README.txt");
    std::fs::write(&path, readme(timeline, &bundle)).map_err(|e| io_error(&path, e))?;
    written.push(path);

    let mut sums = String::new();
    for path in &written {
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let name = path
            .strip_prefix(dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        sums.push_str(&format!(
            "{}  {name}\n",
            hex::encode(Sha256::digest(&bytes))
        ));
        bundle.written.push(name);
    }
    let path = dir.join("SHA256SUMS");
    std::fs::write(&path, sums).map_err(|e| io_error(&path, e))?;
    Ok(bundle)
}

#[derive(Serialize)]
struct CustodyRecord<'a> {
    lake: String,
    entity: String,
    window: String,
    exported_at: String,
    kubetrail: &'static str,
    tables: &'a BTreeMap<String, TableCustody>,
}

/// A new directory, or an empty one: a bundle never mixes with other files.
fn prepare(dir: &Path) -> Result<(), TimelineError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(TimelineError::Invalid(format!(
                "{} is not empty: an evidence bundle goes into a new or empty directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))
        }
        Err(e) => Err(io_error(dir, e)),
    }
}

fn create(path: &Path) -> Result<std::fs::File, TimelineError> {
    std::fs::File::create(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> TimelineError {
    TimelineError::Invalid(format!("{}: {e}", path.display()))
}

/// The (source, offset) of every line, per table.
fn evidence_by_table(timeline: &Timeline) -> BTreeMap<Table, BTreeSet<(Arc<str>, i64)>> {
    let mut wanted: BTreeMap<Table, BTreeSet<(Arc<str>, i64)>> = BTreeMap::new();
    for line in &timeline.lines {
        let e = &line.evidence;
        wanted
            .entry(e.table)
            .or_default()
            .insert((e.source.clone(), e.offset));
    }
    wanted
}

/// The rows of `table` at those records, with the file each is in, in time order.
async fn lake_rows(
    session: &LakeSession,
    table: Table,
    wanted: &BTreeSet<(Arc<str>, i64)>,
) -> Result<RecordBatch, TimelineError> {
    let name = table.name();
    let table_error = |e: &dyn std::fmt::Display| {
        TimelineError::Query(QueryError::Table(name.to_owned(), e.to_string()))
    };
    let delta = session
        .lake()
        .open_table(name)
        .await
        .map_err(QueryError::from)?
        .ok_or_else(|| table_error(&"the table is gone from the lake"))?;
    let provider = delta
        .table_provider()
        .with_file_column(FILE_COLUMN)
        .await
        .map_err(|e| table_error(&e))?;
    let ctx = session.context();
    delta
        .update_datafusion_session(&ctx.state())
        .map_err(|e| table_error(&e))?;
    let mut by_source: BTreeMap<&Arc<str>, Vec<Expr>> = BTreeMap::new();
    for (source, offset) in wanted {
        by_source.entry(source).or_default().push(lit(*offset));
    }
    let predicate = by_source
        .into_iter()
        .map(|(source, offsets)| {
            col(SOURCE_COLUMN)
                .eq(lit(source.as_ref()))
                .and(col(OFFSET_COLUMN).in_list(offsets, false))
        })
        .reduce(Expr::or)
        .unwrap_or(lit(false));
    let frame = ctx.read_table(provider)?.filter(predicate)?.sort(vec![
        col(TIME_COLUMN).sort(true, false),
        col(SOURCE_COLUMN).sort(true, false),
        col(OFFSET_COLUMN).sort(true, false),
    ])?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    concat_batches(&schema, &batches).map_err(|e| table_error(&e))
}

/// Distinct (source, offset) pairs among the rows.
fn distinct_records(rows: &RecordBatch) -> usize {
    let sources = strings(rows, SOURCE_COLUMN);
    let offsets = rows
        .column_by_name(OFFSET_COLUMN)
        .and_then(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).ok());
    let Some(offsets) = offsets else {
        return 0;
    };
    let offsets = offsets.as_primitive::<arrow::datatypes::Int64Type>();
    sources
        .into_iter()
        .zip(offsets.iter())
        .collect::<BTreeSet<_>>()
        .len()
}

/// A text column's values (any string type), nulls as empty.
fn strings(rows: &RecordBatch, column: &str) -> Vec<String> {
    let Some(Ok(c)) = rows.column_by_name(column).map(as_text) else {
        return Vec::new();
    };
    c.iter().map(|v| v.unwrap_or_default().to_owned()).collect()
}

fn write_parquet(path: &Path, rows: &RecordBatch) -> Result<(), TimelineError> {
    let file = create(path)?;
    let mut writer =
        ArrowWriter::try_new(file, rows.schema(), None).map_err(|e| io_error(path, e))?;
    writer.write(rows).map_err(|e| io_error(path, e))?;
    writer.close().map_err(|e| io_error(path, e))?;
    Ok(())
}

fn readme(timeline: &Timeline, bundle: &Bundle) -> String {
    let rows: Vec<String> = bundle
        .rows
        .iter()
        .map(|(t, n)| format!("{n} from {t}"))
        .collect();
    format!(
        "Evidence bundle written by kubetrail {version}: the timeline of {entity}, {window}.

timeline.jsonl, timeline.html  one line per lake row, in time order
rows/TABLE.parquet             those rows as the lake holds them ({rows}); the column
                               {file_column} names the lake file each row is in
custody.json                   per table: the SHA-256 of the newest entry of its Delta log
                               (head) at export time, and for each of those files the
                               manifest its commit recorded: size, SHA-256, what it was
                               ingested from, by which kubetrail on which host, at which
                               table version, and the SHA-256 of that log entry
SHA256SUMS                     the SHA-256 of every file above

To check this bundle:          sha256sum -c SHA256SUMS
To check it against the lake:  kubetrail lake verify --table TABLE --head HEAD
                               (each file's size and SHA-256 in custody.json are those the
                               lake's files must still have; verify re-hashes them all)
",
        version = env!("CARGO_PKG_VERSION"),
        entity = timeline.entity,
        window = timeline.window,
        rows = rows.join(", "),
        file_column = FILE_COLUMN,
    )
}
