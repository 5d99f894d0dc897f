//! `kubetrail export ocsf`: an OCSF view's rows as Parquet, laid out the way AWS Security
//! Lake takes a custom source's files: one source per OCSF class, under
//! `ext/<source>/region=<region>/accountId=<account>/eventDay=<YYYYMMDD>/`, sorted by time.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use kubetrail_lake::Lake;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::OcsfClass;
use crate::{LakeSession, QueryError, Window};

/// A file is closed and written at this much Parquet, so memory stays bounded on a large
/// day (Security Lake's guidance is files of about 256 MB).
const MOST_FILE_BYTES: usize = 256 << 20;

/// A Security Lake custom source: its name and the partition values of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityLakeSource {
    name: String,
    region: String,
    account_id: String,
}

impl SecurityLakeSource {
    /// Checked, since each becomes a path segment Security Lake's crawler reads back.
    pub fn new(name: &str, region: &str, account_id: &str) -> Result<SecurityLakeSource, String> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !plain(name) {
            return Err(format!(
                "source name '{name}': letters, digits, '-' and '_' only, at most 64"
            ));
        }
        if !plain(region) {
            return Err(format!(
                "region '{region}' is not a region name (eu-west-1)"
            ));
        }
        if !plain(account_id) {
            return Err(format!(
                "account id '{account_id}': the AWS account id (or external id) Security Lake was given"
            ));
        }
        Ok(SecurityLakeSource {
            name: name.into(),
            region: region.into(),
            account_id: account_id.into(),
        })
    }

    fn day_prefix(&self, day: NaiveDate) -> String {
        format!(
            "ext/{}/region={}/accountId={}/eventDay={}/",
            self.name,
            self.region,
            self.account_id,
            day.format("%Y%m%d")
        )
    }
}

/// A file written, with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub path: String,
    pub rows: usize,
}

/// The class's rows in `window`, a day at a time, as Parquet files under `target`.
/// File names follow from the day's window, so exporting a window again replaces its files.
pub async fn export(
    lake: &Lake,
    class: OcsfClass,
    window: &Window,
    source: &SecurityLakeSource,
    target: &Lake,
) -> Result<Vec<ExportedFile>, QueryError> {
    let mut written = Vec::new();
    for (day, day_window) in days(window)? {
        let session = LakeSession::open_window(lake, &day_window, Duration::ZERO).await?;
        let mut stream = session
            // The alerts table has no window view of its own: the time says the day.
            .sql(&format!(
                "SELECT * FROM {} WHERE {} ORDER BY time",
                class.view,
                day_window.time_predicate("time_dt")
            ))
            .await?
            .execute_stream()
            .await?;
        let mut file: Option<(ArrowWriter<Vec<u8>>, usize)> = None;
        let mut part = 0;
        let name = |part: usize| {
            format!(
                "{}kubetrail-{}-{}-{}-{part:03}.parquet",
                source.day_prefix(day),
                class.name,
                day_window.from(),
                day_window.to()
            )
        };
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let (writer, rows) = match &mut file {
                Some(open) => open,
                None => {
                    let props = WriterProperties::builder()
                        .set_compression(Compression::ZSTD(ZstdLevel::default()))
                        .build();
                    let writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
                        .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))?;
                    file.insert((writer, 0))
                }
            };
            writer
                .write(&batch)
                .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))?;
            *rows += batch.num_rows();
            if writer.bytes_written() + writer.in_progress_size() >= MOST_FILE_BYTES {
                if let Some(done) = file.take() {
                    written.push(finish(target, done, name(part)).await?);
                    part += 1;
                }
            }
        }
        if let Some(done) = file.take() {
            written.push(finish(target, done, name(part)).await?);
        }
    }
    Ok(written)
}

async fn finish(
    target: &Lake,
    (writer, rows): (ArrowWriter<Vec<u8>>, usize),
    path: String,
) -> Result<ExportedFile, QueryError> {
    let bytes = writer
        .into_inner()
        .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))?;
    target.put_file(&path, Bytes::from(bytes)).await?;
    Ok(ExportedFile { path, rows })
}

/// The window cut at UTC midnights: Security Lake partitions by the event's day.
fn days(window: &Window) -> Result<Vec<(NaiveDate, Window)>, QueryError> {
    let day_of = |micros: i64| {
        DateTime::<Utc>::from_timestamp_micros(micros)
            .map(|t| t.date_naive())
            .ok_or_else(|| {
                QueryError::Table("window".into(), format!("{micros} µs is out of range"))
            })
    };
    let mut out = Vec::new();
    let mut from = window.from();
    while from < window.to() {
        let day = day_of(from)?;
        let next = day
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or(i64::MAX);
        let to = next.min(window.to());
        let w = Window::new(from, to).map_err(|e| QueryError::Table("window".into(), e))?;
        out.push((day, w));
        from = to;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_cut_at_midnight_and_sources_are_checked() {
        let t = |s: &str| crate::timeline::parse_time(s).unwrap();
        let w = Window::new(t("2026-11-20T22:00:00Z"), t("2026-11-22T01:00:00Z")).unwrap();
        let d = days(&w).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].1.to(), t("2026-11-21T00:00:00Z"));
        assert_eq!(d[2].0.to_string(), "2026-11-22");
        let source = SecurityLakeSource::new("kubetrail-api", "eu-west-1", "123456789012").unwrap();
        assert_eq!(
            source.day_prefix(d[0].0),
            "ext/kubetrail-api/region=eu-west-1/accountId=123456789012/eventDay=20261120/"
        );
        assert!(SecurityLakeSource::new("a/b", "eu-west-1", "1").is_err());
        assert!(SecurityLakeSource::new("a", "eu west", "1").is_err());
        assert!(SecurityLakeSource::new("a", "eu-west-1", "").is_err());
    }
}
