//! Records handed from a reader (a file's reader, the Kafka consumer) to a decoding worker
//! in one piece: their bytes one after another in one buffer, each with what the reader
//! knows of it (its head), and the emptied piece handed back to be filled again.
//!
//! A buffer per record cost an allocation, a copy into memory untouched for a while and a
//! free on another thread: the file reader spent two thirds of its time copying.

/// Records handed over at once: enough to make the hand-over cheap, few enough that
/// workers stay evenly busy.
pub(crate) const CHUNK_RECORDS: usize = 1024;
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Records<H> {
    bytes: Vec<u8>,
    records: Vec<Entry<H>>,
}

#[derive(Debug)]
struct Entry<H> {
    /// Where the record's bytes end in the buffer (they start where the previous
    /// record's end).
    end: usize,
    head: H,
}

impl<H> Records<H> {
    pub fn new() -> Self {
        Records {
            bytes: Vec::with_capacity(CHUNK_BYTES + (CHUNK_BYTES >> 2)),
            records: Vec::with_capacity(CHUNK_RECORDS),
        }
    }

    /// Adds a record whose bytes `read` puts onto the end of the buffer; `read`'s `None`
    /// (nothing more to read) adds nothing and is false.
    pub fn read(&mut self, read: impl FnOnce(&mut Vec<u8>) -> Option<H>) -> bool {
        match read(&mut self.bytes) {
            Some(head) => {
                self.records.push(Entry {
                    end: self.bytes.len(),
                    head,
                });
                true
            }
            None => false,
        }
    }

    pub fn push(&mut self, bytes: &[u8], head: H) {
        self.bytes.extend_from_slice(bytes);
        self.records.push(Entry {
            end: self.bytes.len(),
            head,
        });
    }

    /// The last record's bytes and head.
    pub fn last(&self) -> Option<(&[u8], &H)> {
        let (last, earlier) = self.records.split_last()?;
        let start = earlier.last().map_or(0, |r| r.end);
        Some((&self.bytes[start..last.end], &last.head))
    }

    /// Moves the last record into `other`.
    pub fn move_last(&mut self, other: &mut Records<H>) {
        let Some(last) = self.records.pop() else {
            return;
        };
        let start = self.records.last().map_or(0, |r| r.end);
        other.push(&self.bytes[start..last.end], last.head);
        self.bytes.truncate(start);
    }

    /// Whether there is enough to hand over.
    pub fn is_full(&self) -> bool {
        self.records.len() >= CHUNK_RECORDS || self.bytes.len() >= CHUNK_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Each record's bytes and head, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &H)> {
        let mut start = 0;
        self.records.iter().map(move |r| {
            let bytes = &self.bytes[start..r.end];
            start = r.end;
            (bytes, &r.head)
        })
    }

    /// Empty for reuse; `None` when one huge record left the buffer too large to keep.
    pub fn emptied(mut self) -> Option<Self> {
        if self.bytes.capacity() > 4 * CHUNK_BYTES {
            return None;
        }
        self.bytes.clear();
        self.records.clear();
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(records: &Records<u32>) -> Vec<(String, u32)> {
        records
            .iter()
            .map(|(bytes, head)| (String::from_utf8_lossy(bytes).into_owned(), *head))
            .collect()
    }

    #[test]
    fn records_keep_their_bytes_and_heads_in_order() {
        let mut records = Records::new();
        records.push(b"one", 1);
        assert!(records.read(|buf| {
            buf.extend_from_slice(b"two");
            Some(2)
        }));
        assert!(!records.read(|_| None));
        records.push(b"", 3);
        assert_eq!(
            texts(&records),
            [("one".into(), 1), ("two".into(), 2), ("".into(), 3)]
        );
        assert_eq!(records.last(), Some((&b""[..], &3)));
        assert_eq!(Records::<u32>::new().last(), None);
    }

    #[test]
    fn the_last_record_moves_whole() {
        let mut from = Records::new();
        from.push(b"junk", 1);
        from.push(b"{\"kind\":\"Event\"}", 2);
        let mut to = Records::new();
        to.push(b"x", 0);
        from.move_last(&mut to);
        assert_eq!(texts(&from), [("junk".into(), 1)]);
        assert_eq!(
            texts(&to),
            [("x".into(), 0), ("{\"kind\":\"Event\"}".into(), 2)]
        );
        let mut empty = Records::new();
        empty.move_last(&mut to);
        assert_eq!(texts(&to).len(), 2);
    }

    #[test]
    fn full_at_the_record_or_byte_limit_and_reused_unless_grown_huge() {
        let mut records = Records::new();
        for i in 1..CHUNK_RECORDS {
            records.push(b"x", i as u32);
            assert!(!records.is_full());
        }
        records.push(b"x", 0);
        assert!(records.is_full());
        let reused = records.emptied().expect("kept");
        assert!(reused.is_empty() && reused.bytes.is_empty());

        let mut big = Records::new();
        big.push(&vec![b'y'; CHUNK_BYTES], 1);
        assert!(big.is_full());
        let mut huge = Records::<u32>::new();
        huge.bytes.reserve(8 * CHUNK_BYTES);
        assert!(huge.emptied().is_none());
    }
}
