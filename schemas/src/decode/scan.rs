//! A forward-only reader of one JSON text: it walks the record once, hands out strings
//! borrowed from it (owned only when they hold escapes) and the raw text of values kept
//! whole, and builds no value. The audit decoder reads its hot fields with it; serde's
//! derived reader did the same work through a visitor and an `Option` slot per field.
//!
//! It accepts exactly JSON (RFC 8259): whatever it skips is checked as strictly as what it
//! reads, so a record it takes is one `serde_json` would take.

use std::borrow::Cow;

use super::DecodeError;

/// Values nest at most this deep, as `serde_json` allows: deeper is hostile.
const MAX_DEPTH: usize = 128;

pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    stops: StringStops,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        let stops = StringStops::of(text.as_bytes());
        Scanner {
            text,
            pos: 0,
            stops,
        }
    }

    /// Reads an object, calling `field` with each key and the scanner at its value, which
    /// `field` must read or skip; `false` for `null`.
    pub fn object(
        &mut self,
        expected: &'static str,
        mut field: impl FnMut(&mut Self, &str) -> Result<(), DecodeError>,
    ) -> Result<bool, DecodeError> {
        match self.peek() {
            Some(b'{') => self.pos += 1,
            Some(b'n') => return self.null().map(|()| false),
            _ => return Err(self.wrong_type(expected)),
        }
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(true);
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.syntax("a key"));
            }
            let key = self.string()?;
            self.expect(b':', "':'")?;
            field(self, &key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(true);
                }
                _ => return Err(self.syntax("',' or '}'")),
            }
        }
    }

    /// A string, or `None` for `null`.
    // Inlined into each field's read: called, it cost 1.1 % more of ingest's instructions.
    #[inline(always)]
    pub fn text(&mut self) -> Result<Option<Cow<'a, str>>, DecodeError> {
        match self.peek() {
            Some(b'"') => self.string().map(Some),
            Some(b'n') => self.null().map(|()| None),
            _ => Err(self.wrong_type("a string")),
        }
    }

    /// A list of strings, or `None` for `null`.
    pub fn texts(&mut self) -> Result<Option<Vec<Cow<'a, str>>>, DecodeError> {
        match self.peek() {
            Some(b'[') => self.pos += 1,
            Some(b'n') => return self.null().map(|()| None),
            _ => return Err(self.wrong_type("a list of strings")),
        }
        // Room for the groups or addresses of nearly every event without growing.
        let mut texts = Vec::with_capacity(4);
        self.items(|s| {
            if s.peek() != Some(b'"') {
                return Err(s.wrong_type("a string in a list of strings"));
            }
            texts.push(s.string()?);
            Ok(())
        })?;
        Ok(Some(texts))
    }

    /// A 32-bit integer, or `None` for `null`.
    pub fn int32(&mut self) -> Result<Option<i32>, DecodeError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {}
            Some(b'n') => return self.null().map(|()| None),
            _ => return Err(self.wrong_type("a 32-bit integer")),
        }
        let start = self.pos;
        self.number()?;
        let digits = &self.text[start..self.pos];
        digits.parse::<i32>().map(Some).map_err(|_| {
            DecodeError::Shape(format!(
                "invalid value: {digits}, expected a 32-bit integer"
            ))
        })
    }

    /// The text of any value, as it stands in the record, or `None` for `null`.
    pub fn raw(&mut self) -> Result<Option<&'a str>, DecodeError> {
        if self.peek() == Some(b'n') {
            return self.null().map(|()| None);
        }
        self.raw_with(Self::skip).map(|(text, ())| Some(text))
    }

    /// Reads a value with `read`, and hands out its text as it stands in the record too.
    pub fn raw_with<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<(&'a str, T), DecodeError> {
        self.peek();
        let start = self.pos;
        let value = read(self)?;
        Ok((&self.text[start..self.pos], value))
    }

    /// Passes over any value, checking it is JSON.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        self.skip_nested(0)
    }

    /// Ends the text: nothing but whitespace may follow.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("the end of the text")),
        }
    }

    fn skip_nested(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::Json(format!(
                "nested deeper than {MAX_DEPTH} at byte {}",
                self.pos
            )));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => self
                .object("an object", |s, _| s.skip_nested(depth + 1))
                .map(drop),
            Some(b'[') => {
                self.pos += 1;
                self.items(|s| s.skip_nested(depth + 1))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.null(),
            _ => Err(self.syntax("a value")),
        }
    }

    /// Reads a list's items with `item`, from just past its `[` to just past its `]`.
    fn items(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("',' or ']'")),
            }
        }
    }

    /// The next byte that is not whitespace, left unread.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), DecodeError> {
        if self.peek() != Some(byte) {
            return Err(self.syntax(what));
        }
        self.pos += 1;
        Ok(())
    }

    fn null(&mut self) -> Result<(), DecodeError> {
        self.literal("null")
    }

    fn literal(&mut self, word: &'static str) -> Result<(), DecodeError> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(self.syntax(word));
        }
        self.pos += word.len();
        Ok(())
    }

    /// A number as JSON spells it: `-`, digits without a leading zero, a fraction, an
    /// exponent.
    fn number(&mut self) -> Result<(), DecodeError> {
        let bytes = self.text.as_bytes();
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut at = self.pos + usize::from(bytes.get(self.pos) == Some(&b'-'));
        match digits(at) {
            0 => return Err(self.syntax_at(at, "a digit")),
            n if n > 1 && bytes[at] == b'0' => return Err(self.syntax_at(at, "no leading zero")),
            n => at += n,
        }
        if bytes.get(at) == Some(&b'.') {
            match digits(at + 1) {
                0 => return Err(self.syntax_at(at + 1, "a digit")),
                n => at += 1 + n,
            }
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(bytes.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            match digits(at) {
                0 => return Err(self.syntax_at(at, "a digit")),
                n => at += n,
            }
        }
        self.pos = at;
        Ok(())
    }

    /// The string that starts at the scanner, borrowed unless it holds escapes.
    // The plain case inlined where each string is read, the rest out of line: called out
    // of line for each of the ≈ 47 strings of an audit event, the whole function cost
    // 4.5 % more of ingest's instructions, setting up and leaving its frame.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        let start = self.pos + 1;
        let end = self.stops.next(start, self.text.len());
        if self.text.as_bytes().get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(Cow::Borrowed(&self.text[start..end]));
        }
        self.string_past_stop(start, end).map(Cow::Owned)
    }

    /// A string whose first stop at `end` is not its closing quote: an escape, or an error.
    #[cold]
    #[inline(never)]
    fn string_past_stop(&mut self, start: usize, end: usize) -> Result<String, DecodeError> {
        match self.text.as_bytes().get(end) {
            Some(b'\\') => self.unescape(start, end),
            Some(_) => Err(self.control(end)),
            None => Err(self.syntax_at(end, "the end of the string")),
        }
    }

    /// The rest of a string with escapes in it, from its first backslash at `at`.
    fn unescape(&mut self, start: usize, mut at: usize) -> Result<String, DecodeError> {
        let bytes = self.text.as_bytes();
        let mut out = String::with_capacity(at - start + 16);
        out.push_str(&self.text[start..at]);
        loop {
            // `bytes[at]` is a backslash: the character it stands for and its length.
            let (escaped, len) = match bytes.get(at + 1) {
                Some(b'"') => ('"', 2),
                Some(b'\\') => ('\\', 2),
                Some(b'/') => ('/', 2),
                Some(b'b') => ('\u{8}', 2),
                Some(b'f') => ('\u{c}', 2),
                Some(b'n') => ('\n', 2),
                Some(b'r') => ('\r', 2),
                Some(b't') => ('\t', 2),
                Some(b'u') => self.unicode_escape(at)?,
                _ => return Err(self.syntax_at(at + 1, "an escape character")),
            };
            out.push(escaped);
            at = self.copy_plain(&mut out, at + len)?;
            if bytes[at] == b'"' {
                self.pos = at + 1;
                return Ok(out);
            }
        }
    }

    /// Copies the plain text from `at` up to the next quote or backslash, which it returns
    /// the place of.
    fn copy_plain(&self, out: &mut String, at: usize) -> Result<usize, DecodeError> {
        let bytes = self.text.as_bytes();
        let end = self.stops.next(at, bytes.len());
        match bytes.get(end) {
            Some(b'"' | b'\\') => {
                out.push_str(&self.text[at..end]);
                Ok(end)
            }
            Some(_) => Err(self.control(end)),
            None => Err(self.syntax_at(end, "the end of the string")),
        }
    }

    /// `\uXXXX` at `at`, or a surrogate pair of them: the character and the escape's length.
    fn unicode_escape(&self, at: usize) -> Result<(char, usize), DecodeError> {
        let unit = |from: usize| {
            // `from_str_radix` alone would take a sign: `\u+123`.
            self.text
                .get(from..from + 4)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                .ok_or_else(|| self.syntax_at(from, "four hex digits"))
        };
        let first = unit(at + 2)?;
        if let Some(c) = char::from_u32(u32::from(first)) {
            return Ok((c, 6));
        }
        // A surrogate: a leading one followed by `\u` and a trailing one make one character.
        let pair = || self.syntax_at(at, "a surrogate pair");
        let low = match self.text.get(at + 6..at + 8) {
            Some("\\u") if (0xD800..0xDC00).contains(&first) => unit(at + 8)?,
            _ => return Err(pair()),
        };
        if !(0xDC00..0xE000).contains(&low) {
            return Err(pair());
        }
        let code = 0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
        char::from_u32(code).map(|c| (c, 12)).ok_or_else(pair)
    }

    #[cold]
    fn wrong_type(&mut self, expected: &str) -> DecodeError {
        let found = match self.peek() {
            Some(b'{') => "an object",
            Some(b'[') => "a list",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            Some(_) => return self.syntax("a value"),
            None => return self.syntax_at(self.pos, "a value"),
        };
        DecodeError::Shape(format!(
            "invalid type: {found}, expected {expected} at byte {}",
            self.pos
        ))
    }

    #[cold]
    fn syntax(&mut self, expected: &str) -> DecodeError {
        self.peek();
        self.syntax_at(self.pos, expected)
    }

    #[cold]
    fn syntax_at(&self, at: usize, expected: &str) -> DecodeError {
        if at >= self.text.len() {
            return DecodeError::Json(format!("the text ends early, expected {expected}"));
        }
        DecodeError::Json(format!("expected {expected} at byte {at}"))
    }

    #[cold]
    fn control(&self, at: usize) -> DecodeError {
        DecodeError::Json(format!("control character in a string at byte {at}"))
    }
}

/// Where the bytes that end a string's plain text are (`"`, `\` or a control character,
/// which JSON allows only escaped): one bit per byte of the text, found in one pass before
/// it is read. A string's end is then the next set bit. Searched string by string instead
/// (sixteen bytes at a time with SSE2), each of the ≈ 47 strings of an audit event paid
/// for setting up and leaving its search: a string took 76 instructions, 49 with the
/// index, which costs under one per byte of the record (callgrind: 1.3 % fewer for all of
/// ingest). It takes an eighth of the record's size, for as long as the scanner lives.
struct StringStops(Vec<u64>);

impl StringStops {
    fn of(bytes: &[u8]) -> StringStops {
        let mut words = Vec::with_capacity(bytes.len().div_ceil(64));
        let blocks = bytes.chunks_exact(64);
        let rest = blocks.remainder();
        words.extend(blocks.map(|block| stops_in(block.try_into().expect("64 bytes"))));
        if !rest.is_empty() {
            // Spaces end no string, so no bit is set past the text.
            let mut padded = [b' '; 64];
            padded[..rest.len()].copy_from_slice(rest);
            words.push(stops_in(&padded));
        }
        StringStops(words)
    }

    /// The first stop at or after `from`, else `len` (the text's length).
    #[inline(always)]
    fn next(&self, from: usize, len: usize) -> usize {
        let mut word = from / 64;
        let Some(&first) = self.0.get(word) else {
            return len;
        };
        let bits = first >> (from % 64);
        if bits != 0 {
            return from + bits.trailing_zeros() as usize;
        }
        loop {
            word += 1;
            match self.0.get(word) {
                Some(0) => {}
                Some(bits) => return word * 64 + bits.trailing_zeros() as usize,
                None => return len,
            }
        }
    }
}

/// The stops among 64 bytes, bit `i` for byte `i`: sixteen bytes at a time with SSE2
/// (every x86-64 has it), each block tested for all three kinds of stop at once.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn stops_in(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: the intrinsics need SSE2, which this build has (the cfg above), and each
    // load reads sixteen bytes inside the 64 of `block` (unaligned loads allow any
    // address). Called from a function of our own with `#[target_feature]` they need no
    // `unsafe`, but such a function is not inlined into its callers, and the call cost
    // 0.35 % of ingest's instructions.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control = _mm_set1_epi8(0x1f);
        let sixteen = |i: usize| {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * i).cast::<__m128i>());
            // A byte is a control character when min(byte, 0x1f) is the byte itself.
            let hits = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmpeq_epi8(_mm_min_epu8(v, control), v),
            );
            u64::from(_mm_movemask_epi8(hits) as u16)
        };
        sixteen(0) | sixteen(1) << 16 | sixteen(2) << 32 | sixteen(3) << 48
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn stops_in(block: &[u8; 64]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |stops, (i, &b)| stops | u64::from(is_stop(b)) << i)
}

/// Whether a byte ends a string's plain text: the definition [`stops_in`] computes.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn is_stop(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever serde_json makes of the text: a string, or whether it is JSON at all.
    fn serde_text(json: &str) -> Result<String, ()> {
        serde_json::from_str::<String>(json).map_err(drop)
    }

    /// The first stop at or after `from` by the definition, byte by byte.
    fn next_stop_bytewise(bytes: &[u8], from: usize) -> usize {
        from + bytes[from..]
            .iter()
            .position(|&b| is_stop(b))
            .unwrap_or(bytes.len() - from)
    }

    #[test]
    fn a_string_stops_at_its_first_quote_backslash_or_control_character() {
        for (text, stop) in [
            ("", 0),
            ("abc", 3),
            ("abcdefgh\"", 8),
            ("abcdefghijklmno\\", 15),
            ("a\"b\\", 1),
            ("é中😀 \u{1f}\"", 10),
            ("\u{7f}\u{80}\u{ff}x", 6),
            ("0123456789abcdef", 16),
        ] {
            assert_eq!(
                StringStops::of(text.as_bytes()).next(0, text.len()),
                stop,
                "{text:?}"
            );
        }
        // Wherever in a block or word the stop falls, after plain bytes high or low, and
        // whatever comes after it, searched from anywhere: the index agrees with the
        // definition.
        for len in [7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 130, 200] {
            for at in 0..len {
                for stop in [b'"', b'\\', 0x00, 0x1f] {
                    for plain in [b'x', 0x20, 0x7f, 0x80, 0xff] {
                        let mut bytes = vec![plain; len];
                        bytes[at] = stop;
                        bytes[at + 1..].fill(0x01);
                        let stops = StringStops::of(&bytes);
                        for from in [0, at / 2, at, at + 1, len] {
                            let want = next_stop_bytewise(&bytes, from);
                            assert_eq!(stops.next(from, len), want, "{len} {at} {stop} {plain}");
                        }
                    }
                }
            }
            let plain = vec![0x20u8; len];
            assert_eq!(StringStops::of(&plain).next(0, len), len);
        }
        // Texts of many stops, every byte of them tried as a start.
        let text = "{\"a\":\"x\\\"y\",\n\t\"key\":[\"\u{1}\"]}".repeat(9);
        let stops = StringStops::of(text.as_bytes());
        for from in 0..=text.len() {
            assert_eq!(
                stops.next(from, text.len()),
                next_stop_bytewise(text.as_bytes(), from)
            );
        }
    }

    #[test]
    fn strings_match_serde_json_escapes_and_all() {
        for json in [
            r#""plain""#,
            r#""""#,
            r#""tab\there \"quoted\" back\\slash \/ \b\f\n\r""#,
            r#""\u00e9t\u00E9 \ud83d\ude00 end""#,
            r#""ünïcödé raw""#,
            r#""\u0000""#,
        ] {
            let mut s = Scanner::new(json);
            let got = s.text().unwrap().unwrap();
            s.finish().unwrap();
            assert_eq!(Ok(got.into_owned()), serde_text(json), "{json}");
        }
        // Borrowed unless escaped.
        assert!(matches!(
            Scanner::new(r#""x""#).text().unwrap(),
            Some(Cow::Borrowed("x"))
        ));
    }

    #[test]
    fn bad_strings_are_rejected_as_serde_json_rejects_them() {
        for json in [
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"short \\u12\"",
            "\"lone \\ud83d surrogate\"",
            "\"reversed \\ude00\\ud83d pair\"",
            "\"raw \n newline\"",
            "\"ends in a backslash\\",
            "\"\\u12G4\"",
            "\"\\u+123\"",
        ] {
            assert!(serde_text(json).is_err(), "serde_json takes {json:?}");
            let got = Scanner::new(json).text();
            assert!(
                matches!(got, Err(DecodeError::Json(_))),
                "{json:?}: {got:?}"
            );
        }
    }

    #[test]
    fn skipped_values_are_checked_like_read_ones() {
        let good = r#"{"a":[1,-2.5e+3,0,true,false,null,{"b":{}},[],"s"],"c":0.1E-2}"#;
        let mut s = Scanner::new(good);
        assert_eq!(s.raw().unwrap(), Some(good));
        s.finish().unwrap();
        for bad in [
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1"#,
            r#"{"a":[1 2]}"#,
            "{\"a\":+1}",
        ] {
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad}"
            );
            assert!(Scanner::new(bad).skip().is_err(), "{bad}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        let err = Scanner::new(&deep).skip().unwrap_err();
        assert!(err.to_string().contains("nested deeper than 128"), "{err}");
    }

    #[test]
    fn objects_hand_out_each_key_and_reject_what_is_not_one() {
        let mut seen = Vec::new();
        let mut s = Scanner::new(r#" { "a" : "x" , "b\u0031" : [ "y" , "z" ] , "n": null } "#);
        let present = s
            .object("a test object", |s, key| {
                match key {
                    "a" => seen.push((key.to_owned(), s.text()?.map(|t| vec![t.into_owned()]))),
                    "b1" => seen.push((
                        key.to_owned(),
                        s.texts()?
                            .map(|l| l.into_iter().map(Cow::into_owned).collect()),
                    )),
                    _ => seen.push((key.to_owned(), s.text()?.map(|_| vec![]))),
                }
                Ok(())
            })
            .unwrap();
        s.finish().unwrap();
        assert!(present);
        assert_eq!(
            seen,
            [
                ("a".to_owned(), Some(vec!["x".to_owned()])),
                ("b1".to_owned(), Some(vec!["y".to_owned(), "z".to_owned()])),
                ("n".to_owned(), None),
            ]
        );
        assert!(!Scanner::new("null").object("x", |_, _| Ok(())).unwrap());
        let wrong = Scanner::new("[1]").object("an audit event", |_, _| Ok(()));
        assert_eq!(
            wrong.unwrap_err().to_string(),
            "unexpected value: invalid type: a list, expected an audit event at byte 0"
        );
        let trailing = Scanner::new("{} x");
        let mut trailing = trailing;
        trailing.object("x", |_, _| Ok(())).unwrap();
        assert!(trailing.finish().is_err());
    }

    #[test]
    fn numbers_and_lists_say_what_they_expected() {
        assert_eq!(Scanner::new("200").int32().unwrap(), Some(200));
        assert_eq!(Scanner::new("-7").int32().unwrap(), Some(-7));
        assert_eq!(Scanner::new("null").int32().unwrap(), None);
        for (json, reason) in [
            (
                "3000000000",
                "invalid value: 3000000000, expected a 32-bit integer",
            ),
            ("200.5", "invalid value: 200.5, expected a 32-bit integer"),
            (
                "\"ok\"",
                "invalid type: a string, expected a 32-bit integer at byte 0",
            ),
        ] {
            let err = Scanner::new(json).int32().unwrap_err();
            assert_eq!(err, DecodeError::Shape(reason.to_owned()), "{json}");
        }
        let err = Scanner::new(r#"["a",7]"#).texts().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected value: invalid type: a number, expected a string in a list of strings at byte 5"
        );
        assert_eq!(Scanner::new("[]").texts().unwrap(), Some(vec![]));
        assert!(Scanner::new(r#""10.0.0.1""#).texts().is_err());
    }
}
