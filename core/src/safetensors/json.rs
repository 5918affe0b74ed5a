//! The header's JSON, without allocation: string validation and unescaping, the strict cursor
//! the reader walks the header with, and the writer's byte sinks and string escaping.

use super::{Result, SafetensorsError, HEADER_START};

// ------------------------------------------------------------------------------------------------
// JSON strings: validation and unescaping

/// Reads the escape starting at `b[i] == b'\\'`: the code point and the index after it. `base`
/// is added to error positions.
pub(crate) fn escape(b: &[u8], i: usize, base: usize) -> Result<(u32, usize)> {
    let bad = SafetensorsError::InvalidEscape {
        pos: base.saturating_add(i),
    };
    let lone = SafetensorsError::LoneSurrogate {
        pos: base.saturating_add(i),
    };
    let c = *b.get(i.saturating_add(1)).ok_or(bad)?;
    let simple = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let hi = hex4(b, i.saturating_add(2)).ok_or(bad)?;
            if (0xDC00..0xE000).contains(&hi) {
                return Err(lone);
            }
            if !(0xD800..0xDC00).contains(&hi) {
                return Ok((hi, i.saturating_add(6)));
            }
            if b.get(i.saturating_add(6)) != Some(&b'\\')
                || b.get(i.saturating_add(7)) != Some(&b'u')
            {
                return Err(lone);
            }
            let lo = hex4(b, i.saturating_add(8)).ok_or(SafetensorsError::InvalidEscape {
                pos: base.saturating_add(i).saturating_add(6),
            })?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(lone);
            }
            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return Ok((cp, i.saturating_add(12)));
        }
        _ => return Err(bad),
    };
    Ok((u32::from(simple), i.saturating_add(2)))
}

/// Four hex digits at `b[i..i + 4]`.
pub(crate) fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i.checked_add(4)?)?;
    let mut v = 0u32;
    for &d in digits {
        let x = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u32::from(x);
    }
    Some(v)
}

/// Scans a string's content from `start`: the index of the closing `"`, or `None` if the input
/// ends first. Validates every escape and refuses raw control characters.
pub(crate) fn scan_string(b: &[u8], start: usize, base: usize) -> Result<Option<usize>> {
    let mut i = start;
    loop {
        match b.get(i) {
            None => return Ok(None),
            Some(b'"') => return Ok(Some(i)),
            Some(b'\\') => i = escape(b, i, base)?.1,
            Some(&c) if c < 0x20 => {
                return Err(SafetensorsError::ControlCharacter {
                    pos: base.saturating_add(i),
                })
            }
            Some(_) => i = i.saturating_add(1),
        }
    }
}

/// The UTF-8 bytes a raw (already validated) JSON string's content stands for.
pub(crate) struct Unescaped<'a> {
    raw: &'a [u8],
    pub(crate) i: usize,
    pending: [u8; 4],
    pending_len: u8,
    pending_at: u8,
}

impl<'a> Unescaped<'a> {
    pub(crate) fn new(raw: &'a str) -> Self {
        Unescaped {
            raw: raw.as_bytes(),
            i: 0,
            pending: [0; 4],
            pending_len: 0,
            pending_at: 0,
        }
    }
}

impl Iterator for Unescaped<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.pending_at < self.pending_len {
            let b = self.pending.get(usize::from(self.pending_at)).copied();
            self.pending_at += 1;
            return b;
        }
        let b = *self.raw.get(self.i)?;
        if b != b'\\' {
            self.i += 1;
            return Some(b);
        }
        match escape(self.raw, self.i, 0) {
            Ok((cp, next)) => {
                self.i = next;
                let ch = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
                let len = ch.encode_utf8(&mut self.pending).len();
                self.pending_len = len as u8;
                self.pending_at = 1;
                self.pending.first().copied()
            }
            // Unreachable for validated strings; yields the raw byte rather than panicking.
            Err(_) => {
                self.i += 1;
                Some(b)
            }
        }
    }
}

/// Whether the raw JSON string content `raw` stands for `s`.
#[inline(never)] // called for every key and name compared: once in the code, not in each caller
pub(crate) fn json_eq(raw: &str, s: &str) -> bool {
    if !raw.as_bytes().contains(&b'\\') {
        return raw == s;
    }
    Unescaped::new(raw).eq(s.bytes())
}

/// Whether two raw JSON string contents stand for the same string.
pub(crate) fn json_eq_raw(a: &str, b: &str) -> bool {
    if !a.as_bytes().contains(&b'\\') {
        return json_eq(b, a);
    }
    if !b.as_bytes().contains(&b'\\') {
        return json_eq(a, b);
    }
    Unescaped::new(a).eq(Unescaped::new(b))
}

/// Unescapes validated raw content into `buf`.
#[inline(never)] // called for every metadata value read: once in the code, not in each caller
pub(crate) fn unescape_validated<'b>(raw: &str, buf: &'b mut [u8]) -> Result<&'b str> {
    let needed = Unescaped::new(raw).count();
    let Some(out) = buf.get_mut(..needed) else {
        return Err(SafetensorsError::BufferTooSmall { needed });
    };
    for (d, b) in out.iter_mut().zip(Unescaped::new(raw)) {
        *d = b;
    }
    core::str::from_utf8(out).map_err(|e| SafetensorsError::InvalidEscape {
        pos: e.valid_up_to(),
    })
}

/// Unescapes the raw content of a JSON string (the text between the quotes, as
/// [`SafeTensors::metadata_entries`](super::SafeTensors::metadata_entries) and [`TensorView::name`](super::TensorView::name) give it) into `buf`.
///
/// Errors: [`SafetensorsError::BufferTooSmall`] with the length needed; for content that is not
/// valid JSON string content, [`SafetensorsError::InvalidEscape`], [`LoneSurrogate`],
/// [`ControlCharacter`] or [`Syntax`] (an unescaped `"`), with positions relative to `raw`.
///
/// [`LoneSurrogate`]: SafetensorsError::LoneSurrogate
/// [`ControlCharacter`]: SafetensorsError::ControlCharacter
/// [`Syntax`]: SafetensorsError::Syntax
pub fn unescape_json_str<'b>(raw: &str, buf: &'b mut [u8]) -> Result<&'b str> {
    if let Some(pos) = scan_string(raw.as_bytes(), 0, 0)? {
        return Err(SafetensorsError::Syntax {
            pos,
            expected: "an escaped '\"'",
        });
    }
    unescape_validated(raw, buf)
}

// ------------------------------------------------------------------------------------------------
// The header parser

pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a str,
    pub(crate) i: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn pos(&self) -> usize {
        HEADER_START.saturating_add(self.i)
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    pub(crate) fn bump(&mut self) {
        self.i = self.i.saturating_add(1);
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    pub(crate) fn syntax(&self, expected: &'static str) -> SafetensorsError {
        SafetensorsError::Syntax {
            pos: self.pos(),
            expected,
        }
    }

    /// Consumes punctuation `c`.
    pub(crate) fn eat(&mut self, c: u8, expected: &'static str) -> Result<()> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// The error for a value that is not the `expected` kind: [`SafetensorsError::WrongType`] if
    /// a JSON value starts here, else a syntax error.
    pub(crate) fn wrong_value(&self, expected: &'static str) -> SafetensorsError {
        match self.peek() {
            Some(b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                SafetensorsError::WrongType {
                    pos: self.pos(),
                    expected,
                }
            }
            _ => self.syntax(expected),
        }
    }

    /// A string: its raw content.
    pub(crate) fn string(&mut self, expected: &'static str) -> Result<&'a str> {
        if self.peek() != Some(b'"') {
            return Err(self.wrong_value(expected));
        }
        let start = self.i.saturating_add(1);
        let Some(end) = scan_string(self.s.as_bytes(), start, HEADER_START)? else {
            return Err(SafetensorsError::Syntax {
                pos: HEADER_START.saturating_add(self.s.len()),
                expected: "a closing '\"'",
            });
        };
        // Quotes are ASCII, so both ends are character boundaries.
        let raw = self.s.get(start..end).ok_or(self.syntax("a JSON string"))?;
        self.i = end.saturating_add(1);
        Ok(raw)
    }

    /// A non-negative integer fitting `usize`.
    pub(crate) fn uint(&mut self) -> Result<usize> {
        let pos = self.pos();
        match self.peek() {
            Some(b'-') => return Err(SafetensorsError::Negative { pos }),
            Some(b'0'..=b'9') => {}
            _ => return Err(self.wrong_value("a non-negative integer")),
        }
        let leading_zero = self.peek() == Some(b'0');
        let mut v: u64 = 0;
        let mut digits = 0usize;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if leading_zero && digits == 1 {
                return Err(SafetensorsError::Syntax {
                    pos,
                    expected: "an integer without leading zeros",
                });
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or(SafetensorsError::IntegerOverflow { pos })?;
            digits += 1;
            self.bump();
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err(SafetensorsError::Float { pos });
        }
        usize::try_from(v).map_err(|_| SafetensorsError::IntegerOverflow { pos })
    }

    /// An array of integers: stores the first `out.len()`, returns how many there are.
    pub(crate) fn uint_array(&mut self, out: &mut [usize]) -> Result<usize> {
        if self.peek() != Some(b'[') {
            return Err(self.wrong_value("an array of integers"));
        }
        self.bump();
        self.ws();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(0);
        }
        let mut count = 0usize;
        loop {
            self.ws();
            if let Some(b'[' | b'{') = self.peek() {
                return Err(SafetensorsError::NestingTooDeep { pos: self.pos() });
            }
            let v = self.uint()?;
            if let Some(slot) = out.get_mut(count) {
                *slot = v;
            }
            count = count.saturating_add(1);
            self.ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b']') => {
                    self.bump();
                    return Ok(count);
                }
                _ => return Err(self.syntax("',' or ']'")),
            }
        }
    }

    /// After a member's value: `,` (more members follow) or `}` (the object ends).
    pub(crate) fn member_end(&mut self) -> Result<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.bump();
                Ok(true)
            }
            Some(b'}') => {
                self.bump();
                Ok(false)
            }
            _ => Err(self.syntax("',' or '}'")),
        }
    }

    /// After `{`: whether the object has members (consumes `}` if it has none).
    pub(crate) fn object_open(&mut self) -> bool {
        self.ws();
        if self.peek() == Some(b'}') {
            self.bump();
            false
        } else {
            true
        }
    }

    /// A member's key and the `:` after it: the key's position and raw content.
    pub(crate) fn key(&mut self, expected: &'static str) -> Result<(usize, &'a str)> {
        self.ws();
        let pos = self.pos();
        let key = self.string(expected)?;
        self.ws();
        self.eat(b':', "':'")?;
        self.ws();
        Ok((pos, key))
    }
}

// ------------------------------------------------------------------------------------------------
// The writer

pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Counts bytes (saturating).
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Writes into a slice, noting (instead of panicking) if it runs out.
pub(crate) struct SliceSink<'b> {
    pub(crate) buf: &'b mut [u8],
    pub(crate) pos: usize,
    pub(crate) overflow: bool,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.checked_add(bytes.len());
        match end.and_then(|end| self.buf.get_mut(self.pos..end)) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos += bytes.len();
            }
            None => self.overflow = true,
        }
    }
}

pub(crate) fn put_usize(sink: &mut impl Sink, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    sink.put(digits.get(i..).unwrap_or(&[]));
}

/// A JSON string: `"` and `\` escaped, control characters as `\u00XX`, the rest raw UTF-8.
pub(crate) fn put_json_str(sink: &mut impl Sink, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    sink.put(b"\"");
    let mut run = 0;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<[u8; 6]> = match b {
            b'"' => Some(*b"\\\"    "),
            b'\\' => Some(*b"\\\\    "),
            0..=0x1F => Some([
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
            _ => None,
        };
        if let Some(esc) = esc {
            sink.put(bytes.get(run..i).unwrap_or(&[]));
            let len = if b < 0x20 { 6 } else { 2 };
            sink.put(esc.get(..len).unwrap_or(&[]));
            run = i + 1;
        }
    }
    sink.put(bytes.get(run..).unwrap_or(&[]));
    sink.put(b"\"");
}
