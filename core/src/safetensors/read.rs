//! [`SafeTensors::parse`]: the validating reader, and [`TensorView`], a tensor borrowed from the
//! file.

use core::fmt;

use super::json::{json_eq, json_eq_raw, unescape_validated, Cursor};
use super::{
    Dtype, NameBuf, Result, SafetensorsError, Shape, F32_SIZE, HEADER_START, MAX_HEADER_LEN,
    MAX_METADATA, MAX_RANK, MAX_TENSORS,
};

/// A tensor entry as parsed, before the layout checks.
#[derive(Clone, Copy)]
struct Entry<'a> {
    name: &'a str,
    shape: Shape,
    begin: usize,
    end: usize,
}

fn parse_entry<'a>(c: &mut Cursor<'a>, name: &'a str, buffer_len: usize) -> Result<Entry<'a>> {
    let tensor = NameBuf::new(name);
    if c.peek() != Some(b'{') {
        return Err(c.wrong_value("a tensor entry object"));
    }
    c.bump();
    let mut dtype: Option<&str> = None;
    let mut shape: Option<Shape> = None;
    let mut offsets: Option<(usize, usize)> = None;
    let mut more = c.object_open();
    while more {
        let (pos, key) = c.key("a field name")?;
        let dup = SafetensorsError::DuplicateKey {
            pos,
            key: NameBuf::new(key),
        };
        if json_eq(key, "dtype") {
            if dtype.is_some() {
                return Err(dup);
            }
            dtype = Some(c.string("a dtype string")?);
        } else if json_eq(key, "shape") {
            if shape.is_some() {
                return Err(dup);
            }
            let mut dims = [0usize; MAX_RANK];
            let n = c.uint_array(&mut dims)?;
            if n > MAX_RANK {
                return Err(SafetensorsError::TooManyDims {
                    tensor,
                    max: MAX_RANK,
                });
            }
            shape = Shape::new(dims.get(..n).unwrap_or(&[]));
        } else if json_eq(key, "data_offsets") {
            if offsets.is_some() {
                return Err(dup);
            }
            let mut o = [0usize; 2];
            let n = c.uint_array(&mut o)?;
            if n != 2 {
                return Err(SafetensorsError::DataOffsetsLen { tensor, got: n });
            }
            offsets = Some((o[0], o[1]));
        } else {
            return Err(SafetensorsError::UnknownField {
                pos,
                tensor,
                field: NameBuf::new(key),
            });
        }
        more = c.member_end()?;
    }
    let missing = |field| SafetensorsError::MissingField { tensor, field };
    let dtype = dtype.ok_or(missing("dtype"))?;
    let shape = shape.ok_or(missing("shape"))?;
    let (begin, end) = offsets.ok_or(missing("data_offsets"))?;

    let known = if dtype.as_bytes().contains(&b'\\') {
        Dtype::ALL.into_iter().find(|d| json_eq(dtype, d.as_str()))
    } else {
        Dtype::from_name(dtype)
    };
    match known {
        None => {
            return Err(SafetensorsError::UnknownDtype {
                tensor,
                dtype: NameBuf::new(dtype),
            })
        }
        Some(Dtype::F32) => {}
        Some(dtype) => return Err(SafetensorsError::UnsupportedDtype { tensor, dtype }),
    }
    if begin > end {
        return Err(SafetensorsError::OffsetsReversed { tensor, begin, end });
    }
    let expected = shape
        .num_elements()
        .and_then(|n| n.checked_mul(F32_SIZE))
        .ok_or(SafetensorsError::SizeOverflow { tensor })?;
    if end - begin != expected {
        return Err(SafetensorsError::SizeMismatch {
            tensor,
            shape,
            expected,
            got: end - begin,
        });
    }
    if end > buffer_len {
        return Err(SafetensorsError::OffsetOutOfRange {
            tensor,
            end,
            buffer_len,
        });
    }
    Ok(Entry {
        name,
        shape,
        begin,
        end,
    })
}

// ------------------------------------------------------------------------------------------------
// The parsed file

/// One tensor of a parsed file: borrowed name, shape and little-endian `F32` data.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    name: &'a str,
    shape: Shape,
    begin: usize,
    end: usize,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// The name's raw JSON text: the name itself unless it contains a `\` escape (then see
    /// [`TensorView::name_into`]).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The name, unescaped into `buf` ([`SafetensorsError::BufferTooSmall`] if it does not fit).
    pub fn name_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str> {
        unescape_validated(self.name, buf)
    }

    /// Whether the (unescaped) name is `name`.
    pub fn name_eq(&self, name: &str) -> bool {
        json_eq(self.name, name)
    }

    /// The dimensions (at most [`MAX_RANK`]).
    pub fn shape(&self) -> &[usize] {
        self.shape.as_slice()
    }

    /// The shape as a value (printable as Python's tuple).
    pub fn shape_value(&self) -> Shape {
        self.shape
    }

    /// The number of elements: the product of the shape (1 for a scalar).
    pub fn num_elements(&self) -> usize {
        self.data.len() / F32_SIZE
    }

    /// The dtype: always [`Dtype::F32`], the only one [`SafeTensors::parse`] accepts.
    pub fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    /// `[begin, end)` within the byte buffer (after the header).
    pub fn data_offsets(&self) -> (usize, usize) {
        (self.begin, self.end)
    }

    /// The raw little-endian bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The values, decoded one by one.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'a {
        self.data.chunks_exact(F32_SIZE).map(|c| match *c {
            [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
            _ => 0.0,
        })
    }

    /// Decodes the values into `out`, which must have exactly [`TensorView::num_elements`]
    /// values ([`SafetensorsError::OutputLenMismatch`] otherwise; `out` is then untouched).
    pub fn read_f32_into(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.num_elements() {
            return Err(SafetensorsError::OutputLenMismatch {
                expected: self.num_elements(),
                got: out.len(),
            });
        }
        for (o, v) in out.iter_mut().zip(self.values()) {
            *o = v;
        }
        Ok(())
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorView")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("data_offsets", &(self.begin, self.end))
            .finish()
    }
}

/// A parsed and fully validated safetensors file, borrowing its bytes; holds at most
/// [`MAX_TENSORS`] tensors and [`MAX_METADATA`] metadata entries, in fixed arrays.
#[derive(Clone, Copy)]
pub struct SafeTensors<'a> {
    /// Sorted by offset; the first `len` are `Some`.
    tensors: [Option<TensorView<'a>>; MAX_TENSORS],
    len: usize,
    /// Raw key and value, in file order.
    metadata: [Option<(&'a str, &'a str)>; MAX_METADATA],
    header_len: usize,
}

impl<'a> SafeTensors<'a> {
    /// Parses and validates a whole file (see the module documentation for every check).
    pub fn parse(bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
        let Some((len_bytes, rest)) = bytes.split_first_chunk::<HEADER_START>() else {
            return Err(SafetensorsError::TooShort { len: bytes.len() });
        };
        let n = u64::from_le_bytes(*len_bytes);
        if n > MAX_HEADER_LEN as u64 {
            return Err(SafetensorsError::HeaderTooLarge {
                len: n,
                max: MAX_HEADER_LEN,
            });
        }
        let out_of_bounds = SafetensorsError::HeaderOutOfBounds {
            len: n,
            available: rest.len(),
        };
        let n = usize::try_from(n).map_err(|_| out_of_bounds)?;
        let (header, data) = rest.split_at_checked(n).ok_or(out_of_bounds)?;
        let header = core::str::from_utf8(header).map_err(|e| SafetensorsError::HeaderNotUtf8 {
            pos: HEADER_START.saturating_add(e.valid_up_to()),
        })?;

        let mut st = SafeTensors {
            tensors: [None; MAX_TENSORS],
            len: 0,
            metadata: [None; MAX_METADATA],
            header_len: n,
        };
        let mut entries: [Option<Entry<'a>>; MAX_TENSORS] = [None; MAX_TENSORS];
        let mut count = 0usize;
        let mut has_metadata = false;

        let mut c = Cursor { s: header, i: 0 };
        c.ws();
        if c.peek() != Some(b'{') {
            return Err(c.wrong_value("an object"));
        }
        c.bump();
        let mut more = c.object_open();
        while more {
            let (pos, key) = c.key("a string key")?;
            let dup = SafetensorsError::DuplicateKey {
                pos,
                key: NameBuf::new(key),
            };
            if json_eq(key, "__metadata__") {
                if has_metadata {
                    return Err(dup);
                }
                has_metadata = true;
                st.parse_metadata(&mut c)?;
            } else {
                if entries.iter().flatten().any(|e| json_eq_raw(e.name, key)) {
                    return Err(dup);
                }
                let Some(slot) = entries.get_mut(count) else {
                    return Err(SafetensorsError::TooManyTensors { max: MAX_TENSORS });
                };
                *slot = Some(parse_entry(&mut c, key, data.len())?);
                count += 1;
            }
            more = c.member_end()?;
        }
        c.ws();
        if c.i < header.len() {
            return Err(SafetensorsError::TrailingCharacters { pos: c.pos() });
        }

        // Stable insertion sort by (begin, end): `None`s stay at the back.
        let key = |e: &Option<Entry<'_>>| e.map(|e| (e.begin, e.end));
        for i in 1..count.min(MAX_TENSORS) {
            let mut j = i;
            while j > 0 && key(&entries[j]) < key(&entries[j - 1]) {
                entries.swap(j, j - 1);
                j -= 1;
            }
        }
        let mut expected = 0usize;
        for (e, slot) in entries.iter().flatten().zip(st.tensors.iter_mut()) {
            let tensor = NameBuf::new(e.name);
            if e.begin < expected {
                return Err(SafetensorsError::Overlap {
                    tensor,
                    begin: e.begin,
                    expected,
                });
            }
            if e.begin > expected {
                return Err(SafetensorsError::Hole {
                    tensor,
                    begin: e.begin,
                    expected,
                });
            }
            expected = e.end;
            let bytes = data
                .get(e.begin..e.end)
                .ok_or(SafetensorsError::OffsetOutOfRange {
                    tensor,
                    end: e.end,
                    buffer_len: data.len(),
                })?;
            *slot = Some(TensorView {
                name: e.name,
                shape: e.shape,
                begin: e.begin,
                end: e.end,
                data: bytes,
            });
        }
        if expected != data.len() {
            return Err(SafetensorsError::TrailingBytes {
                used: expected,
                buffer_len: data.len(),
            });
        }
        st.len = count;
        Ok(st)
    }

    fn parse_metadata(&mut self, c: &mut Cursor<'a>) -> Result<()> {
        if c.peek() != Some(b'{') {
            return Err(SafetensorsError::MetadataNotObject { pos: c.pos() });
        }
        c.bump();
        let mut count = 0usize;
        let mut more = c.object_open();
        while more {
            let (pos, key) = c.key("a string key")?;
            if self
                .metadata
                .iter()
                .flatten()
                .any(|(k, _)| json_eq_raw(k, key))
            {
                return Err(SafetensorsError::DuplicateKey {
                    pos,
                    key: NameBuf::new(key),
                });
            }
            if c.peek() != Some(b'"') {
                return Err(SafetensorsError::MetadataNotString {
                    pos: c.pos(),
                    key: NameBuf::new(key),
                });
            }
            let value = c.string("a string")?;
            let Some(slot) = self.metadata.get_mut(count) else {
                return Err(SafetensorsError::TooManyMetadataEntries { max: MAX_METADATA });
            };
            *slot = Some((key, value));
            count += 1;
            more = c.member_end()?;
        }
        Ok(())
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The header's length N as stated in the file (padding included); the data starts at 8 + N.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The tensors, in the order of their offsets.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'a>> + '_ {
        self.tensors.iter().flatten().copied()
    }

    /// The tensor whose (unescaped) name is `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        self.tensors().find(|t| t.name_eq(name))
    }

    /// The metadata entries as raw JSON text (key, value), in file order; [`unescape_json_str`](super::unescape_json_str)
    /// decodes them.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.metadata.iter().flatten().copied()
    }

    /// The raw JSON text of the metadata value whose (unescaped) key is `key`.
    pub fn metadata_raw(&self, key: &str) -> Option<&'a str> {
        self.metadata_entries()
            .find(|(k, _)| json_eq(k, key))
            .map(|(_, v)| v)
    }

    /// The metadata value whose (unescaped) key is `key`, unescaped into `buf`: `Ok(None)` if
    /// there is no such key, [`SafetensorsError::BufferTooSmall`] if the value does not fit.
    pub fn metadata<'b>(&self, key: &str, buf: &'b mut [u8]) -> Result<Option<&'b str>> {
        match self.metadata_raw(key) {
            None => Ok(None),
            Some(raw) => unescape_validated(raw, buf).map(Some),
        }
    }
}

impl fmt::Debug for SafeTensors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeTensors")
            .field("tensors", &DebugIter(self.tensors.iter().flatten()))
            .field("metadata", &DebugIter(self.metadata.iter().flatten()))
            .finish()
    }
}

/// Debug-prints an iterator's items as a list without collecting them.
struct DebugIter<I>(I);

impl<I: Iterator + Clone> fmt::Debug for DebugIter<I>
where
    I::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}
