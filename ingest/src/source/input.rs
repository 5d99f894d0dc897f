//! Opens an input (a file or stdin), decompresses gzip when the content says so, and
//! hashes the bytes as they are read so the file's identity is known when it ends.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::bufread::MultiGzDecoder;

/// Told how many bytes of input have been read, for a progress bar.
pub trait Progress: Send + Sync {
    fn start(&self, _name: &str, _total_bytes: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A path, or `-` for standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputPath {
    Stdin,
    File(PathBuf),
}

impl InputPath {
    pub fn parse(arg: &str) -> InputPath {
        if arg == "-" {
            InputPath::Stdin
        } else {
            InputPath::File(PathBuf::from(arg))
        }
    }

    /// The `_source` of its rows.
    pub fn source(&self) -> String {
        match self {
            InputPath::Stdin => "file:-".to_owned(),
            InputPath::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// What is known about the raw bytes once they have all been read.
#[derive(Debug, Default)]
struct Digested {
    hasher: blake3::Hasher,
    bytes: u64,
}

/// The hash of an input's raw bytes, filled in as it is read.
#[derive(Clone, Default)]
pub struct ContentHash(Arc<Mutex<Digested>>);

impl ContentHash {
    /// Hex BLAKE3 of everything read so far, and how many bytes that was.
    pub fn finish(&self) -> (String, u64) {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (state.hasher.finalize().to_hex().to_string(), state.bytes)
    }
}

struct Hashing<R> {
    inner: R,
    hash: ContentHash,
    progress: Arc<dyn Progress>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.hash.0.lock().unwrap_or_else(|p| p.into_inner());
        state.hasher.update(&buf[..n]);
        state.bytes += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// An opened input, ready to be framed into records.
pub struct OpenInput {
    pub reader: Box<dyn BufRead + Send>,
    pub hash: ContentHash,
    pub gzip: bool,
}

/// Opens the input; the reader yields decompressed bytes, the hash covers raw bytes.
pub fn open(path: &InputPath, progress: Arc<dyn Progress>) -> io::Result<OpenInput> {
    let (raw, len): (Box<dyn Read + Send>, Option<u64>) = match path {
        InputPath::Stdin => (Box::new(io::stdin()), None),
        InputPath::File(p) => {
            let file = File::open(p).map_err(|e| with_path(p, e))?;
            let metadata = file.metadata().map_err(|e| with_path(p, e))?;
            if metadata.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is a directory (pass the files in it)", p.display()),
                ));
            }
            let len = Some(metadata.len());
            (Box::new(file), len)
        }
    };
    progress.start(&path.source(), len);
    let hash = ContentHash::default();
    let hashing = Hashing {
        inner: raw,
        hash: hash.clone(),
        progress,
    };
    let (reader, gzip) = decompressed(hashing)?;
    Ok(OpenInput { reader, hash, gzip })
}

/// `raw`'s content, decompressed when it starts as gzip does; and whether it did.
pub fn decompressed(
    raw: impl Read + Send + 'static,
) -> io::Result<(Box<dyn BufRead + Send>, bool)> {
    let mut buffered = BufReader::with_capacity(256 << 10, raw);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead + Send> = if gzip {
        // Multi-member: `cat a.gz b.gz` and rotated logs are several gzip members.
        Box::new(BufReader::with_capacity(
            256 << 10,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok((reader, gzip))
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
}
