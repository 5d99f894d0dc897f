//! `kubetrail shell`: an interactive SQL prompt with history, multi-line statements
//! (ended by `;`), dot commands and timing.

use std::io::Write;
use std::time::Instant;

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::output::{write_batches, OutputFormat};
use crate::query_log::{local_client, local_user, QueryRecord};
use crate::session::LakeSession;

const HELP: &str = "\
.tables            tables and views with their row counts
.schema TABLE      columns and types of a table or view
.mode FORMAT       output as table, csv, json or parquet
.timing on|off     print how long each statement took
.help              this text
.quit              leave (Ctrl-D works too)
SQL statements end with ';' and may span lines.";

/// What the shell remembers between statements.
pub struct Shell<'a> {
    session: &'a LakeSession,
    format: OutputFormat,
    timing: bool,
    /// Where each statement's record goes (`query_log`), when the shell is a user's.
    records: Option<tokio::sync::mpsc::UnboundedSender<QueryRecord>>,
}

/// Whether to keep reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

impl<'a> Shell<'a> {
    pub fn new(session: &'a LakeSession) -> Self {
        Shell {
            session,
            format: OutputFormat::Table,
            timing: true,
            records: None,
        }
    }

    /// Runs one complete input: a dot command or a SQL statement. Errors are printed, one
    /// line each, and the shell goes on.
    pub async fn execute(
        &mut self,
        input: &str,
        out: &mut (dyn Write + Send),
    ) -> std::io::Result<Flow> {
        let input = input.trim();
        if let Some(command) = input.strip_prefix('.') {
            return self.dot(command, out).await;
        }
        let sql = input.trim_end_matches(';').trim();
        if sql.is_empty() {
            return Ok(Flow::Continue);
        }
        let started = Instant::now();
        let mut record = QueryRecord::start(&local_user(), &local_client(), "shell", sql);
        let result = self.session.query(sql).await;
        match &result {
            Ok(batches) => record.answered(batches, started),
            Err(e) => record.failed(e, started),
        }
        if let Some(records) = &self.records {
            let _ = records.send(record);
        }
        match result {
            Ok(batches) => {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                if let Err(e) = write_batches(&batches, self.format, out) {
                    writeln!(out, "error: {}", one_line(&e.to_string()))?;
                }
                if self.timing {
                    writeln!(
                        out,
                        "{rows} row(s) in {:.3} s",
                        started.elapsed().as_secs_f64()
                    )?;
                }
            }
            Err(e) => writeln!(out, "error: {}", one_line(&e.to_string()))?,
        }
        Ok(Flow::Continue)
    }

    async fn dot(&mut self, command: &str, out: &mut (dyn Write + Send)) -> std::io::Result<Flow> {
        let mut words = command.split_whitespace();
        match (words.next().unwrap_or_default(), words.next()) {
            ("quit" | "exit" | "q", _) => return Ok(Flow::Quit),
            ("help", _) => writeln!(out, "{HELP}")?,
            ("tables", _) => {
                for info in self.session.tables() {
                    let count = self.count(&info.name).await;
                    writeln!(
                        out,
                        "{:<16} {count:>12} rows  {:>5} files",
                        info.name, info.files
                    )?;
                }
                writeln!(out, "{:<16} (view over the three event tables)", "events")?;
            }
            ("schema", Some(table)) => match self.session.context().table(table).await {
                Ok(df) => {
                    for field in df.schema().fields() {
                        writeln!(out, "{:<24} {}", field.name(), field.data_type())?;
                    }
                }
                Err(e) => writeln!(out, "error: {}", one_line(&e.to_string()))?,
            },
            ("timing", Some(v)) => self.timing = v == "on",
            ("mode", Some(m)) => match m.parse() {
                Ok(f) => self.format = f,
                Err(e) => writeln!(out, "error: {e}")?,
            },
            (other, _) => writeln!(out, "error: unknown command '.{other}' (try .help)")?,
        }
        Ok(Flow::Continue)
    }

    async fn count(&self, table: &str) -> String {
        match self
            .session
            .query(&format!("SELECT count(*) FROM {table}"))
            .await
        {
            Ok(b) => b
                .first()
                .filter(|b| b.num_rows() > 0)
                .map(|b| {
                    arrow::util::display::array_value_to_string(b.column(0), 0).unwrap_or_default()
                })
                .unwrap_or_else(|| "0".into()),
            Err(_) => "?".into(),
        }
    }
}

/// The interactive loop: reads statements until `.quit` or end of input.
pub async fn run(
    session: &LakeSession,
    history: Option<std::path::PathBuf>,
) -> Result<(), ReadlineError> {
    let mut editor = DefaultEditor::new()?;
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut shell = Shell::new(session);
    let (records, log_writer) = crate::query_log::spawn_writer(session.lake().clone());
    shell.records = Some(records);
    let mut stdout = std::io::stdout();
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "kubetrail> "
        } else {
            "      ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        };
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('.') {
            let _ = editor.add_history_entry(trimmed);
            if shell.execute(trimmed, &mut stdout).await? == Flow::Quit {
                break;
            }
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if trimmed.ends_with(';') {
            let statement = std::mem::take(&mut pending);
            let _ = editor.add_history_entry(statement.trim());
            shell.execute(&statement, &mut stdout).await?;
        }
    }
    if !pending.trim().is_empty() {
        shell.execute(&pending, &mut stdout).await?;
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    // Every statement's record is in query_log before the shell ends.
    drop(shell);
    let _ = log_writer.await;
    Ok(())
}

/// DataFusion errors sometimes carry newlines; a responder wants one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
