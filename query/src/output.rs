//! Query results as a terminal table, CSV, JSON lines or Parquet.

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::util::pretty::pretty_format_batches;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" | "jsonl" => Ok(OutputFormat::Json),
            "parquet" => Ok(OutputFormat::Parquet),
            other => Err(format!(
                "unknown output format '{other}' (table, csv, json, parquet)"
            )),
        }
    }
}

/// Writes the batches. Text formats show binary columns (a dead letter's raw bytes) as
/// lossy UTF-8, since that is what a reader wants to see; Parquet keeps them as bytes.
pub fn write_batches(
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut (dyn Write + Send),
) -> Result<(), ArrowError> {
    match format {
        OutputFormat::Table => {
            let text: Vec<RecordBatch> = batches
                .iter()
                .map(binary_as_text)
                .collect::<Result<_, _>>()?;
            writeln!(out, "{}", pretty_format_batches(&text)?)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                writer.write(&binary_as_text(b)?)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                writer.write(&binary_as_text(b)?)?;
            }
            writer.finish()?;
        }
        OutputFormat::Parquet => {
            let Some(first) = batches.first() else {
                return Ok(());
            };
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let mut writer = ArrowWriter::try_new(out, first.schema(), Some(props))
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            for b in batches {
                writer
                    .write(b)
                    .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            }
            writer
                .close()
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        }
    }
    Ok(())
}

fn binary_as_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_binary(f.data_type())) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if is_binary(field.data_type()) {
            let bytes = arrow::compute::cast(column, &DataType::Binary)?;
            let bytes = bytes
                .as_any()
                .downcast_ref::<BinaryArray>()
                .ok_or_else(|| ArrowError::CastError("binary".into()))?;
            let text: StringArray = (0..bytes.len())
                .map(|i| {
                    (!bytes.is_null(i))
                        .then(|| String::from_utf8_lossy(bytes.value(i)).into_owned())
                })
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// The head of one self-contained HTML page kubetrail writes (a report a responder can mail
/// or open offline): nothing in it may fetch anything; inline script runs only if `script`.
pub fn html_head(title: &str, style: &str, script: bool) -> String {
    let policy = if script {
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    } else {
        "default-src 'none'; style-src 'unsafe-inline'"
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>{}</title>
<style>{style}</style>
</head>"#,
        escape_html(title)
    )
}

/// Text for an HTML page (element content or a quoted attribute).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
