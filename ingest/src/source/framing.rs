//! Splits a byte stream into records: JSON lines, concatenated (pretty-printed) JSON
//! objects, JSON arrays of objects, or text lines — decided from the stream's first line.

use std::io::{self, BufRead, Cursor, Read};

/// Records larger than this are not decoded: their head is kept as a dead letter.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 20;

/// How much of the first line is read to choose between JSON lines and pretty JSON.
const PEEK_BYTES: usize = 1 << 20;

/// One record in a buffer of its own, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub bytes: Vec<u8>,
    pub head: RecordHead,
}

/// All of a record but its bytes: what [`RecordReader::read_into`] returns, having put the
/// bytes onto the end of the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead {
    /// 1-based line number of the record's first byte.
    pub line: i64,
    /// Why the record cannot be decoded as it is, if it cannot.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    /// A value may span lines; values may sit in top-level arrays.
    JsonValues,
}

/// Iterator of records over a reader. Stops after the first I/O error, which it reports as
/// a final record holding whatever partial bytes were read (a gzip stream cut short).
pub struct RecordReader<'a> {
    reader: Box<dyn BufRead + Send + 'a>,
    mode: Option<Mode>,
    line: i64,
    in_array: bool,
    max_bytes: usize,
    finished: bool,
}

impl<'a> RecordReader<'a> {
    pub fn new(reader: impl BufRead + Send + 'a) -> Self {
        Self::with_max_record_bytes(reader, DEFAULT_MAX_RECORD_BYTES)
    }

    pub fn with_max_record_bytes(reader: impl BufRead + Send + 'a, max_bytes: usize) -> Self {
        RecordReader {
            reader: Box::new(reader),
            mode: None,
            line: 1,
            in_array: false,
            max_bytes,
            finished: false,
        }
    }

    /// Peeks at the first line (at most [`PEEK_BYTES`]) to choose the mode, then puts
    /// every byte it read back in front of the stream.
    fn choose_mode(&mut self) -> io::Result<Mode> {
        let mut first = Vec::new();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let room = PEEK_BYTES - first.len();
            let (take, ended) = match memchr::memchr(b'\n', buf) {
                Some(i) if i < room => (i + 1, true),
                _ => (buf.len().min(room), false),
            };
            first.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if ended || first.len() >= PEEK_BYTES {
                break;
            }
        }
        let start = if first.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        }; // byte order mark
        let line = first[start..]
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default();
        let head = trim_start(line);
        // A line longer than the peek is one huge record, not the start of pretty JSON.
        let whole_line = first.len() < PEEK_BYTES;
        let mode = match head.first() {
            Some(b'[') => Mode::JsonValues,
            Some(b'{') if whole_line && !is_balanced(head) => Mode::JsonValues,
            _ => Mode::Lines,
        };
        let reader = std::mem::replace(&mut self.reader, Box::new(io::empty()));
        self.reader = Box::new(Cursor::new(first.split_off(start)).chain(reader));
        Ok(mode)
    }

    fn next_line_record(&mut self, out: &mut Vec<u8>) -> io::Result<Option<RecordHead>> {
        let start = out.len();
        loop {
            let line = self.line;
            let (ended, total) =
                match read_line_bounded(&mut self.reader, out, start, self.max_bytes) {
                    Ok(r) => r,
                    Err(e) => return Ok(Some(self.fail(e))),
                };
            if ended {
                self.line += 1;
            }
            if total == 0 && !ended {
                return Ok(None);
            }
            if out.last() == Some(&b'\r') && out.len() > start {
                out.pop();
            }
            if out[start..].iter().all(u8::is_ascii_whitespace) && total <= self.max_bytes {
                out.truncate(start);
                continue; // blank line
            }
            let problem = (total > self.max_bytes).then(|| oversize(total, self.max_bytes));
            return Ok(Some(RecordHead { line, problem }));
        }
    }

    fn next_json_record(&mut self, out: &mut Vec<u8>) -> io::Result<Option<RecordHead>> {
        loop {
            let Some(byte) = self.peek()? else {
                return Ok(None);
            };
            match byte {
                b'\n' => {
                    self.line += 1;
                    self.reader.consume(1);
                }
                b if b.is_ascii_whitespace() => self.reader.consume(1),
                b',' if self.in_array => self.reader.consume(1),
                b'[' if !self.in_array => {
                    self.in_array = true;
                    self.reader.consume(1);
                }
                b']' if self.in_array => {
                    self.in_array = false;
                    self.reader.consume(1);
                }
                b'{' | b'[' => return self.scan_value(out).map(Some),
                _ if self.in_array => return self.scan_value(out).map(Some),
                // Garbage between top-level values: the rest of its line is one bad record.
                _ => return self.next_line_record(out),
            }
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.reader.fill_buf()?.first().copied())
    }

    /// Scans one JSON value (object, array or, inside an array, a scalar) by tracking
    /// nesting and strings. Ends at the matching bracket, or for scalars before `,`/`]`.
    fn scan_value(&mut self, out: &mut Vec<u8>) -> io::Result<RecordHead> {
        let line = self.line;
        let start = out.len();
        let mut total = 0usize;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) => return Ok(self.fail(e)),
            };
            if buf.is_empty() {
                break; // input ended inside the value: the decoder will say so
            }
            let mut used = 0;
            let mut done = false;
            for &b in buf {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                    }
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b',' | b']' if depth == 0 => {
                            done = true;
                            break; // end of a scalar inside an array
                        }
                        _ => {}
                    }
                }
                if b == b'\n' {
                    self.line += 1;
                }
                used += 1;
                if depth == 0 && !in_string && matches!(b, b'}' | b']') {
                    done = true;
                    break;
                }
            }
            let take = (self.max_bytes.saturating_sub(out.len() - start)).min(used);
            out.extend_from_slice(&buf[..take]);
            total += used;
            self.reader.consume(used);
            if done {
                break;
            }
        }
        while out.len() > start && out.last().is_some_and(u8::is_ascii_whitespace) {
            out.pop();
        }
        let problem = (total > self.max_bytes).then(|| oversize(total, self.max_bytes));
        Ok(RecordHead { line, problem })
    }
}

impl RecordReader<'_> {
    /// Reads the next record onto the end of `out`, so that many records can share one
    /// buffer; `None` at the end of the input.
    pub fn read_into(&mut self, out: &mut Vec<u8>) -> Option<RecordHead> {
        if self.finished {
            return None;
        }
        let mode = match self.mode {
            Some(mode) => mode,
            None => match self.choose_mode() {
                Ok(mode) => {
                    self.mode = Some(mode);
                    mode
                }
                Err(e) => return Some(self.fail(e)),
            },
        };
        let result = match mode {
            Mode::Lines => self.next_line_record(out),
            Mode::JsonValues => self.next_json_record(out),
        };
        match result {
            Ok(Some(head)) => Some(head),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(e) => Some(self.fail(e)),
        }
    }

    /// Ends the stream with a record of whatever was read of it before `error`.
    fn fail(&mut self, error: io::Error) -> RecordHead {
        self.finished = true;
        RecordHead {
            line: self.line,
            problem: Some(format!("input ends early: {error}")),
        }
    }
}

/// Each record in a buffer of its own.
impl Iterator for RecordReader<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let mut bytes = Vec::new();
        let head = self.read_into(&mut bytes)?;
        Some(Record { bytes, head })
    }
}

/// Reads up to and excluding `\n` onto `out`, keeping at most `max` bytes of the line (the
/// line starts at `out[start]`). Returns whether a newline ended the line and how many
/// bytes the line had in all.
fn read_line_bounded(
    reader: &mut dyn BufRead,
    out: &mut Vec<u8>,
    start: usize,
    max: usize,
) -> io::Result<(bool, usize)> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((false, total));
        }
        let (chunk, ended) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let room = max.saturating_sub(out.len() - start);
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total += chunk.len();
        let used = chunk.len() + usize::from(ended);
        reader.consume(used);
        if ended {
            return Ok((true, total));
        }
    }
}

/// Whether a line holds one complete JSON object (brackets closed outside strings).
fn is_balanced(line: &[u8]) -> bool {
    let mut depth = 0i64;
    let mut in_string = false;
    let mut escaped = false;
    for &b in line {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn oversize(total: usize, max: usize) -> String {
    format!("record is {total} bytes, over the {max}-byte limit (head kept)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &[u8]) -> Vec<(String, i64, Option<String>)> {
        RecordReader::with_max_record_bytes(input, 64)
            .map(|r| {
                (
                    String::from_utf8_lossy(&r.bytes).into_owned(),
                    r.head.line,
                    r.head.problem,
                )
            })
            .collect()
    }

    #[test]
    fn json_lines_with_crlf_blank_lines_and_garbage() {
        let got = records(b"{\"a\":1}\r\n\r\n{\"a\":2\n  \nnot json\n{\"a\":3}");
        let texts: Vec<_> = got.iter().map(|r| (r.0.as_str(), r.1)).collect();
        assert_eq!(
            texts,
            [
                ("{\"a\":1}", 1),
                ("{\"a\":2", 3),
                ("not json", 5),
                ("{\"a\":3}", 6)
            ]
        );
    }

    #[test]
    fn pretty_objects_and_arrays() {
        let got = records(b"{\n \"a\": \"}\\\"\",\n \"b\": [1]\n}\n{\n}\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "{\n \"a\": \"}\\\"\",\n \"b\": [1]\n}");
        assert_eq!((got[1].0.as_str(), got[1].1), ("{\n}", 5));
        let arr = records(b"[\n {\"a\": 1},\n {\"a\": [2]}, 3\n]\n");
        let texts: Vec<_> = arr.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(texts, ["{\"a\": 1}", "{\"a\": [2]}", "3"]);
        assert_eq!(arr[1].1, 3);
    }

    #[test]
    fn truncated_values_empty_input_bom_and_oversize() {
        assert!(records(b"").is_empty());
        assert!(records(b"\n\n  \n").is_empty());
        assert_eq!(records(b"{\n\"a\": 1")[0].0, "{\n\"a\": 1");
        assert_eq!(records(b"\xEF\xBB\xBF{\"a\":1}\n")[0].0, "{\"a\":1}");
        let long = format!("{{\"a\":\"{}\"}}\n{{\"b\":1}}\n", "x".repeat(100));
        let got = records(long.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 64);
        assert!(got[0].2.as_deref().unwrap().contains("108 bytes"));
        assert_eq!(got[1].0, "{\"b\":1}");
    }

    #[test]
    fn records_read_into_one_buffer_are_bounded_each_on_their_own() {
        // The limit is per record, wherever in the buffer the record starts.
        let input = format!(
            "{{\"a\":\"{}\"}}\r\n\n{{\"b\":\"{}\"}}\n{{\"c\":1}}",
            "x".repeat(50),
            "y".repeat(100)
        );
        let mut reader = RecordReader::with_max_record_bytes(input.as_bytes(), 64);
        let mut buffer = b"earlier records".to_vec();
        let mut ends = vec![buffer.len()];
        let mut heads = Vec::new();
        while let Some(head) = reader.read_into(&mut buffer) {
            heads.push(head);
            ends.push(buffer.len());
        }
        let texts: Vec<&[u8]> = ends.windows(2).map(|w| &buffer[w[0]..w[1]]).collect();
        assert_eq!(texts.len(), 3);
        assert_eq!(texts[0].len(), 58, "CR dropped, nothing cut");
        assert_eq!(
            heads[0],
            RecordHead {
                line: 1,
                problem: None
            }
        );
        assert_eq!(texts[1].len(), 64, "cut at the limit");
        assert_eq!(heads[1].line, 3);
        assert!(heads[1].problem.as_deref().unwrap().contains("108 bytes"));
        assert_eq!(texts[2], b"{\"c\":1}");
        assert!(buffer.starts_with(b"earlier records"));
    }

    #[test]
    fn pretty_values_read_into_one_buffer_keep_their_own_bytes() {
        let mut reader = RecordReader::new(&b"[{\"a\": 1},\n {\"b\": [2]}  ]"[..]);
        let mut buffer = Vec::new();
        assert!(reader.read_into(&mut buffer).is_some());
        assert_eq!(buffer, b"{\"a\": 1}");
        let head = reader.read_into(&mut buffer).unwrap();
        assert_eq!(buffer, b"{\"a\": 1}{\"b\": [2]}");
        assert_eq!(head.line, 2);
        assert_eq!(reader.read_into(&mut buffer), None);
    }

    #[test]
    fn io_errors_end_the_stream_with_a_problem_record() {
        struct Failing(bool);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "gzip cut short",
                    ));
                }
                self.0 = true;
                buf[..8].copy_from_slice(b"{\"a\":1}\n");
                Ok(8)
            }
        }
        let got: Vec<_> = RecordReader::new(io::BufReader::new(Failing(false))).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].bytes, b"{\"a\":1}");
        assert!(got[1]
            .head
            .problem
            .as_deref()
            .unwrap()
            .contains("gzip cut short"));
    }
}
