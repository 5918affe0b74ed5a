//! Loading, splitting and tokenizing the word list (makemore's `names.txt`),
//! reproducing the notebook's data pipeline exactly:
//!
//! ```python
//! words = open("names.txt", "r").read().splitlines()
//! chars = sorted(set(''.join(words)))          # ids 1.., '.' = 0
//! random.seed(42); random.shuffle(words)
//! n1, n2 = int(0.8*len(words)), int(0.9*len(words))
//! ```
//!
//! followed by `build_dataset` with a context of `block_size` tokens.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::pyrandom::PyRandom;

/// The start/end token; always id 0 and never allowed inside a word.
pub const END: char = '.';

/// Maximum number of vocabulary symbols, including [`END`].
pub const MAX_VOCAB: usize = 64;

/// Seed the notebook passes to `random.seed` before shuffling.
pub const DEFAULT_SPLIT_SEED: u64 = 42;

/// Largest word list read, in bytes (names.txt has 228 145): checked before the bytes are
/// allocated, and a stream (`--input -`, a FIFO, a device) stops one byte after it.
pub const MAX_WORD_LIST_BYTES: u64 = 64 << 20;

/// Longest word, in characters; also the longest name `sample` draws.
pub const MAX_WORD: usize = 256;

/// The `--input` value that reads the word list from standard input.
pub const STDIN: &str = "-";

/// Allowed range of the context length (`block_size`) in [`build_examples`].
pub const MAX_CONTEXT: usize = makemore_core::eval::MAX_CONTEXT;

/// Errors from reading a word file or building a vocabulary.
///
/// For errors not tied to a file (`path == None`, from [`Vocab::from_words`]),
/// `line` is the 1-based index of the word in the slice.
pub enum DataError {
    /// The file does not exist.
    NotFound { path: PathBuf },
    /// The path names a directory.
    IsDirectory { path: PathBuf },
    /// Any other I/O error while reading: the `std::io::Error`, boxed so that only
    /// [`read_words`] (which the WebAssembly build never runs) links its formatting.
    Io {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file has no bytes (apart from an optional UTF-8 BOM).
    Empty { path: PathBuf },
    /// Every line is blank.
    NoWords { path: PathBuf, blank_lines: usize },
    /// A line is not valid UTF-8; `column` is the 1-based byte offset.
    InvalidUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// The file is larger than `limit` bytes ([`MAX_WORD_LIST_BYTES`]).
    TooLarge { path: PathBuf, limit: u64 },
    /// A word contains a control character (`char::is_control`: C0 but the line boundaries,
    /// DEL, C1 but U+0085); `column` counts characters from 1.
    ControlChar {
        path: PathBuf,
        line: usize,
        column: usize,
        ch: char,
    },
    /// A word has more than `max` ([`MAX_WORD`]) characters.
    WordTooLong {
        path: Option<PathBuf>,
        line: usize,
        chars: usize,
        max: usize,
    },
    /// A word contains the reserved start/end token '.'.
    ReservedDot {
        path: Option<PathBuf>,
        line: usize,
        word: String,
    },
    /// More than [`MAX_VOCAB`] symbols (`count` includes '.').
    TooManySymbols {
        path: Option<PathBuf>,
        count: usize,
        max: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::NotFound { path } => write!(
                f,
                "{}: file not found; download makemore's names.txt \
                 (https://github.com/karpathy/makemore) or pass --input PATH",
                path.display()
            ),
            DataError::IsDirectory { path } => write!(
                f,
                "{}: is a directory, expected a text file with one word per line; \
                 pass --input PATH to a file",
                path.display()
            ),
            DataError::Io { path, source } => write!(
                f,
                "{}: cannot read file: {source}; check that it exists and is readable",
                path.display()
            ),
            DataError::Empty { path } => write!(
                f,
                "{}: file is empty; it must contain one word per line",
                path.display()
            ),
            DataError::NoWords { path, blank_lines } => write!(
                f,
                "{}: no words found ({blank_lines} blank line(s) skipped); \
                 the file must contain one word per line",
                path.display()
            ),
            DataError::InvalidUtf8 { path, line, column } => write!(
                f,
                "{}:{line}: invalid UTF-8 at byte {column} of the line; \
                 re-encode the file as UTF-8",
                path.display()
            ),
            DataError::TooLarge { path, limit } => write!(
                f,
                "{}: larger than {} MiB, the limit for a word list (makemore's names.txt is \
                 0.2 MiB); pass a text file with one word per line, or split this one",
                path.display(),
                limit >> 20
            ),
            DataError::ControlChar {
                path,
                line,
                column,
                ch,
            } => write!(
                f,
                "{}:{line}:{column}: control character U+{:04X} in a word; a word list holds \
                 printable text, one word per line: remove it (e.g. `tr -d` the character) or \
                 fix how the file was exported",
                path.display(),
                u32::from(*ch)
            ),
            DataError::WordTooLong {
                path,
                line,
                chars,
                max,
            } => {
                write_location(f, path.as_deref(), *line)?;
                write!(
                    f,
                    ": the word has {chars} characters, more than the limit of {max}; \
                     is this a word list (one word per line)? shorten or remove the line"
                )
            }
            DataError::ReservedDot { path, line, word } => {
                write_location(f, path.as_deref(), *line)?;
                write!(
                    f,
                    ": word \"{word}\" contains '.', which is reserved as the \
                     start/end token; remove or replace it"
                )
            }
            DataError::TooManySymbols { path, count, max } => {
                if let Some(path) = path {
                    write!(f, "{}: ", path.display())?;
                }
                write!(
                    f,
                    "the words use {count} distinct symbols (including '.'), \
                     but the maximum is {max}; remove words with rare characters"
                )
            }
        }
    }
}

fn write_location(f: &mut fmt::Formatter<'_>, path: Option<&Path>, line: usize) -> fmt::Result {
    match path {
        Some(path) => write!(f, "{}:{line}", path.display()),
        None => write!(f, "word {line}"),
    }
}

/// Debug is the message: the derived form would add every variant's and field's name to the
/// WebAssembly build (anyhow keeps it reachable), and nothing shows it but failing tests.
impl fmt::Debug for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// Character vocabulary: id 0 is '.', ids `1..` the distinct characters of
/// the words sorted by code point (Python's `sorted(set(''.join(words)))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    symbols: Vec<char>,
}

impl Vocab {
    /// Builds the vocabulary; fails if a word has more than [`MAX_WORD`] characters or
    /// contains '.', or there are more than [`MAX_VOCAB`] symbols including '.'.
    pub fn from_words(words: &[String]) -> Result<Vocab, DataError> {
        build_vocab(
            words.iter().enumerate().map(|(i, w)| (i + 1, w.as_str())),
            None,
        )
    }

    /// The vocabulary stored in a checkpoint: its symbols in id order, '.' first, the rest
    /// sorted and distinct, at most [`MAX_VOCAB`].
    pub fn from_symbols(symbols: &str) -> Option<Vocab> {
        let symbols: Vec<char> = symbols.chars().collect();
        let ok = symbols.first() == Some(&END)
            && symbols.len() <= MAX_VOCAB
            && symbols[1..].windows(2).all(|w| w[0] < w[1])
            && !symbols[1..].contains(&END);
        ok.then_some(Vocab { symbols })
    }

    /// Number of symbols, including '.'.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Never true: '.' is always a symbol.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// All symbols, indexed by id.
    pub fn symbols(&self) -> &[char] {
        &self.symbols
    }

    /// Id of `c`, if it is in the vocabulary.
    pub fn encode(&self, c: char) -> Option<u8> {
        if c == END {
            return Some(0);
        }
        self.symbols[1..]
            .binary_search(&c)
            .ok()
            .map(|i| (i + 1) as u8)
    }

    /// Symbol with id `id`, if any.
    pub fn decode(&self, id: u8) -> Option<char> {
        self.symbols.get(usize::from(id)).copied()
    }
}

/// Builds a vocabulary from `(line, word)` pairs; `path` is used for errors.
fn build_vocab<'a>(
    words: impl IntoIterator<Item = (usize, &'a str)>,
    path: Option<&Path>,
) -> Result<Vocab, DataError> {
    // One bit per code point (136 KiB): linear in the text and sorted by construction.
    let mut seen = vec![0u64; (char::MAX as usize + 1).div_ceil(64)];
    for (line, word) in words {
        let chars = word.chars().count();
        if chars > MAX_WORD {
            return Err(DataError::WordTooLong {
                path: path.map(Path::to_path_buf),
                line,
                chars,
                max: MAX_WORD,
            });
        }
        if word.contains(END) {
            return Err(DataError::ReservedDot {
                path: path.map(Path::to_path_buf),
                line,
                word: word.to_string(),
            });
        }
        for c in word.chars() {
            seen[c as usize / 64] |= 1 << (c as usize % 64);
        }
    }
    let count = seen.iter().map(|w| w.count_ones() as usize).sum::<usize>() + 1;
    if count > MAX_VOCAB {
        return Err(DataError::TooManySymbols {
            path: path.map(Path::to_path_buf),
            count,
            max: MAX_VOCAB,
        });
    }
    let mut symbols = Vec::with_capacity(count);
    symbols.push(END);
    for (i, &w) in seen.iter().enumerate().filter(|&(_, &w)| w != 0) {
        let bits = (0..64).filter(|b| w >> b & 1 != 0);
        symbols.extend(bits.filter_map(|b| char::from_u32((i * 64 + b) as u32)));
    }
    Ok(Vocab { symbols })
}

/// Words read from a file, with counts of what was skipped or repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// Non-blank lines in file order, duplicates included.
    pub words: Vec<String>,
    /// Number of skipped blank lines.
    pub blank_lines: usize,
    /// Number of words equal to an earlier word (these are kept).
    pub duplicates: usize,
}

/// True for the characters Python's `str.splitlines()` ends a line at: \n, \r (and \r\n as
/// one boundary), \x0b, \x0c, \x1c, \x1d, \x1e, \x85, \u2028, \u2029.
pub fn is_line_boundary(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// The lines of `text` exactly as Python's `text.splitlines()` gives them: split at every
/// [`is_line_boundary`] character, "\r\n" counting as one boundary, a final boundary not
/// starting another line (so `""` and `"a\n"` give `[]` and `["a"]`, `"\n"` gives `[""]`).
pub fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_line_boundary(c) {
            lines.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && chars.next_if(|&(_, n)| n == '\n').is_some() {
                end += 1;
            }
            start = end;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Reads at most `limit` bytes from `reader`: `Ok(None)` if it has more (it stops reading one
/// byte past the limit, so an endless stream ends). The buffer grows with what was read.
pub fn read_bounded(reader: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Reads one word per line from `path`, or from standard input if `path` is [`STDIN`] ("-",
/// named `<stdin>` in errors).
///
/// - At most [`MAX_WORD_LIST_BYTES`]: a larger regular file is refused before it is read, a
///   stream one byte past the limit.
/// - A leading UTF-8 BOM is removed; the text must be UTF-8 and is split into lines exactly as
///   Python's `str.splitlines()` splits it ([`splitlines`]: \n, \r\n, \r, \x0b, \x0c, \x1c,
///   \x1d, \x1e, \x85, \u2028, \u2029), as the notebook's `open(...).read().splitlines()`.
/// - Lines that are empty or contain only whitespace are skipped and counted in
///   [`Words::blank_lines`] (the notebook would keep them as `""` words; makemore.py drops them).
///   No other trimming is done: a word with leading/trailing spaces keeps them and ' ' becomes
///   a vocabulary symbol.
/// - A word with a control character (NUL, a C0 character other than the boundaries, such as
///   a tab, DEL, a C1 character other than \x85) is an error naming line, column and U+XXXX.
/// - Duplicate words are kept (as in the notebook) and counted.
///
/// Fails on a missing file, a directory, I/O errors, a file over the limit, an empty file, a
/// file with no words, invalid UTF-8, a control character, a word longer than [`MAX_WORD`]
/// characters, a word containing '.', or more than [`MAX_VOCAB`] symbols.
pub fn read_words(path: &Path) -> Result<Words, DataError> {
    if path.as_os_str() == STDIN {
        let name = Path::new("<stdin>");
        let bytes = read_bounded(io::stdin().lock(), MAX_WORD_LIST_BYTES).map_err(|source| {
            DataError::Io {
                path: name.to_path_buf(),
                source: source.into(),
            }
        })?;
        let bytes = bytes.ok_or_else(|| DataError::TooLarge {
            path: name.to_path_buf(),
            limit: MAX_WORD_LIST_BYTES,
        })?;
        return parse_words(&bytes, name);
    }
    let io_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source: source.into(),
            }
        }
    };
    let too_large = || DataError::TooLarge {
        path: path.to_path_buf(),
        limit: MAX_WORD_LIST_BYTES,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(DataError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if meta.is_file() && meta.len() > MAX_WORD_LIST_BYTES {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(io_err)?;
    let bytes = read_bounded(file, MAX_WORD_LIST_BYTES)
        .map_err(io_err)?
        .ok_or_else(too_large)?;
    parse_words(&bytes, path)
}

/// [`read_words`] on bytes already read; `path` names the file in errors. Never panics.
pub fn parse_words(bytes: &[u8], path: &Path) -> Result<Words, DataError> {
    let content = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if content.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let text = std::str::from_utf8(content).map_err(|e| {
        // the line and byte column of the first invalid byte, counted as splitlines() would
        let valid = std::str::from_utf8(&content[..e.valid_up_to()]).unwrap_or("");
        let lines = splitlines(valid);
        let ends_with_boundary = valid.chars().next_back().is_some_and(is_line_boundary);
        let (line, column) = match lines.last() {
            Some(last) if !ends_with_boundary => (lines.len(), last.len() + 1),
            _ => (lines.len() + 1, 1),
        };
        DataError::InvalidUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        }
    })?;

    let mut numbered: Vec<(usize, &str)> = Vec::new();
    let mut blank_lines = 0;
    for (i, text) in splitlines(text).into_iter().enumerate() {
        let line = i + 1;
        if text.chars().all(char::is_whitespace) {
            blank_lines += 1;
            continue;
        }
        if let Some((column, ch)) = text.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(DataError::ControlChar {
                path: path.to_path_buf(),
                line,
                column: column + 1,
                ch,
            });
        }
        numbered.push((line, text));
    }
    if numbered.is_empty() {
        return Err(DataError::NoWords {
            path: path.to_path_buf(),
            blank_lines,
        });
    }
    build_vocab(numbered.iter().copied(), Some(path))?;

    let mut seen = HashSet::with_capacity(numbered.len());
    let duplicates = numbered.iter().filter(|(_, w)| !seen.insert(*w)).count();
    Ok(Words {
        words: numbered.iter().map(|(_, w)| w.to_string()).collect(),
        blank_lines,
        duplicates,
    })
}

/// Train/validation/test words (80% / 10% / 10%).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<String>,
    pub val: Vec<String>,
    pub test: Vec<String>,
}

/// The cut points `(int(0.8*n), int(0.9*n))`, computed in f64 like Python.
pub fn split_points(n: usize) -> (usize, usize) {
    let n = n as f64;
    ((0.8 * n) as usize, (0.9 * n) as usize)
}

/// `random.seed(seed); random.shuffle(words)`, then cuts at
/// [`split_points`]. The notebook uses `seed = 42` ([`DEFAULT_SPLIT_SEED`]).
pub fn split_words(mut words: Vec<String>, seed: u64) -> Split {
    PyRandom::new(seed).shuffle(&mut words);
    let (n1, n2) = split_points(words.len());
    let test = words.split_off(n2);
    let val = words.split_off(n1);
    Split {
        train: words,
        val,
        test,
    }
}

/// Training examples: each row of `x` holds `context` token ids, `y` the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Examples {
    pub context: usize,
    /// `len() * context` ids, row-major.
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True if there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Context of example `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.x[i * self.context..(i + 1) * self.context]
    }
}

/// The notebook's `build_dataset`: for each word, the context starts as
/// `[0; context]`; for each character of `word + "."` emit `(context, id)`
/// and shift `id` into the context.
///
/// # Panics
/// If `context` is not in `1..=MAX_CONTEXT` or a word has a character not
/// in `vocab`.
pub fn build_examples(words: &[String], vocab: &Vocab, context: usize) -> Examples {
    assert!(
        (1..=MAX_CONTEXT).contains(&context),
        "context length {context} out of range 1..={MAX_CONTEXT}"
    );
    let n: usize = words.iter().map(|w| w.chars().count() + 1).sum();
    let mut x = Vec::with_capacity(n * context);
    let mut y = Vec::with_capacity(n);
    let mut ctx = vec![0u8; context];
    for word in words {
        ctx.fill(0);
        for c in word.chars().chain(std::iter::once(END)) {
            let id = vocab.encode(c).unwrap_or_else(|| {
                panic!("character {c:?} of word {word:?} is not in the vocabulary")
            });
            x.extend_from_slice(&ctx);
            y.push(id);
            ctx.rotate_left(1);
            ctx[context - 1] = id;
        }
    }
    Examples { context, x, y }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// FNV-1a 64 over `bytes`.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn names_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt")
    }

    /// A unique temporary file with `contents`, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &[u8]) -> TempFile {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "makemore-data-test-{}-{}.txt",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn read(contents: &[u8]) -> (TempFile, Result<Words, DataError>) {
        let file = TempFile::new(contents);
        let result = read_words(&file.0);
        (file, result)
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn real_names_file_matches_python() {
        let path = names_path();
        let words = read_words(&path)
            .unwrap_or_else(|e| panic!("the real dataset is required for this test: {e}"));
        // python3 -c "w=open('data/names.txt').read().splitlines(); print(len(w), len(w)-len(set(w)), w.count(''))"
        // -> 32033 2539 0
        assert_eq!(words.words.len(), 32033);
        assert_eq!(words.duplicates, 2539);
        assert_eq!(words.blank_lines, 0);

        let vocab = Vocab::from_words(&words.words).unwrap();
        // python3 -c "w=open('data/names.txt').read().splitlines(); print(''.join(sorted(set(''.join(w)))))"
        let expected: String = ".abcdefghijklmnopqrstuvwxyz".into();
        assert_eq!(vocab.symbols().iter().collect::<String>(), expected);
        assert_eq!(vocab.len(), 27);

        let split = split_words(words.words, DEFAULT_SPLIT_SEED);
        // python3 -c "import random; w=open('data/names.txt').read().splitlines(); random.seed(42); random.shuffle(w); n1=int(0.8*len(w)); n2=int(0.9*len(w)); print(w[:3], n1, n2, w[n1], w[n2])"
        // -> ['yuheng', 'diondre', 'xavien'] 25626 28829 amay mustafa
        assert_eq!(split.train[..3], strings(&["yuheng", "diondre", "xavien"]));
        assert_eq!(split.train.len(), 25626);
        assert_eq!(split.val.len(), 3203);
        assert_eq!(split.test.len(), 3204);
        assert_eq!(split.val[0], "amay");
        assert_eq!(split.test[0], "mustafa");

        // FNV-1a 64 of "\n".join(split), computed by:
        // python3 -c "
        // import random
        // def fnv(s):
        //     h=0xcbf29ce484222325
        //     for b in s.encode(): h=((h^b)*0x100000001b3)&0xFFFFFFFFFFFFFFFF
        //     return h
        // w=open('data/names.txt').read().splitlines(); random.seed(42); random.shuffle(w)
        // n1=int(0.8*len(w)); n2=int(0.9*len(w))
        // print([hex(fnv('\n'.join(s))) for s in (w[:n1], w[n1:n2], w[n2:])])"
        // -> ['0xcf5a3a41ce6661ad', '0xa67f21fff83bb6e2', '0xd9eebea43189b178']
        assert_eq!(fnv1a(split.train.join("\n").as_bytes()), 0xcf5a3a41ce6661ad);
        assert_eq!(fnv1a(split.val.join("\n").as_bytes()), 0xa67f21fff83bb6e2);
        assert_eq!(fnv1a(split.test.join("\n").as_bytes()), 0xd9eebea43189b178);

        // Example count and FNV-1a 64 of the bytes of X (row-major) and of Y:
        // python3 -c "
        // import random
        // def fnv(bs):
        //     h=0xcbf29ce484222325
        //     for b in bs: h=((h^b)*0x100000001b3)&0xFFFFFFFFFFFFFFFF
        //     return h
        // w=open('data/names.txt').read().splitlines()
        // chars=sorted(set(''.join(w))); stoi={s:i+1 for i,s in enumerate(chars)}; stoi['.']=0
        // random.seed(42); random.shuffle(w); n1=int(0.8*len(w)); n2=int(0.9*len(w))
        // for s in (w[:n1], w[n1:n2], w[n2:]):
        //     X=[];Y=[]
        //     for n in s:
        //         c=[0]*3
        //         for ch in n+'.':
        //             ix=stoi[ch]; X.extend(c); Y.append(ix); c=c[1:]+[ix]
        //     print(len(Y), hex(fnv(bytes(X))), hex(fnv(bytes(Y))))"
        let expected = [
            (&split.train, 182625, 0x9e8964ca8535dc57, 0x740e270eceb728a1),
            (&split.val, 22655, 0x861fe4479f41e5e2, 0xe4ab86bd5324d47e),
            (&split.test, 22866, 0xc29bbd27e50d989f, 0x851de626ff51b73a),
        ];
        for (words, n, hx, hy) in expected {
            let ex = build_examples(words, &vocab, 3);
            assert_eq!(ex.len(), n);
            assert_eq!(ex.x.len(), 3 * n);
            assert_eq!(fnv1a(&ex.x), hx);
            assert_eq!(fnv1a(&ex.y), hy);
        }
    }

    #[test]
    fn split_points_match_python_int() {
        // python3 -c "print([(int(0.8*n), int(0.9*n)) for n in [0,1,2,3,5,7,10,32033,2**53-1,10**17+3]])"
        let cases: [(usize, (usize, usize)); 10] = [
            (0, (0, 0)),
            (1, (0, 0)),
            (2, (1, 1)),
            (3, (2, 2)),
            (5, (4, 4)),
            (7, (5, 6)),
            (10, (8, 9)),
            (32033, (25626, 28829)),
            ((1 << 53) - 1, (7205759403792793, 8106479329266892)),
            (
                100_000_000_000_000_003,
                (80000000000000000, 90000000000000000),
            ),
        ];
        for (n, expected) in cases {
            assert_eq!(split_points(n), expected, "n = {n}");
        }
    }

    #[test]
    fn split_small_list_matches_python_shuffle() {
        // python3 -c "import random; w=[str(i) for i in range(20)]; random.seed(42); random.shuffle(w); print(w)"
        // -> 19 5 14 4 9 13 15 18 6 12 17 10 1 11 2 16 7 8 0 3; n1=16, n2=18
        let words: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let split = split_words(words, 42);
        let join = |v: &[String]| v.join(" ");
        assert_eq!(
            join(&split.train),
            "19 5 14 4 9 13 15 18 6 12 17 10 1 11 2 16"
        );
        assert_eq!(join(&split.val), "7 8");
        assert_eq!(join(&split.test), "0 3");
    }

    #[test]
    fn build_examples_small() {
        let words = strings(&["ab", "b"]);
        let vocab = Vocab::from_words(&words).unwrap();
        let ex = build_examples(&words, &vocab, 2);
        assert_eq!(ex.len(), 5);
        let rows: Vec<&[u8]> = (0..ex.len()).map(|i| ex.row(i)).collect();
        assert_eq!(rows, [[0, 0], [0, 1], [1, 2], [0, 0], [0, 2]]);
        assert_eq!(ex.y, [1, 2, 0, 2, 0]);
        let ex1 = build_examples(&words, &vocab, 1);
        assert_eq!(ex1.x, [0, 1, 2, 0, 2]);
        assert!(build_examples(&[], &vocab, 3).is_empty());
    }

    #[test]
    #[should_panic(expected = "context length 17 out of range")]
    fn build_examples_rejects_long_context() {
        let words = strings(&["a"]);
        let vocab = Vocab::from_words(&words).unwrap();
        build_examples(&words, &vocab, 17);
    }

    #[test]
    #[should_panic(expected = "context length 0 out of range")]
    fn build_examples_rejects_zero_context() {
        let words = strings(&["a"]);
        let vocab = Vocab::from_words(&words).unwrap();
        build_examples(&words, &vocab, 0);
    }

    #[test]
    #[should_panic(expected = "not in the vocabulary")]
    fn build_examples_rejects_unknown_char() {
        let vocab = Vocab::from_words(&strings(&["a"])).unwrap();
        build_examples(&strings(&["ab"]), &vocab, 3);
    }

    #[test]
    fn vocab_order_encode_decode() {
        // python3 -c "print(sorted(set(''.join(['zoé', 'Émile', 'anna', 'Bo']))))"
        // -> ['B', 'a', 'e', 'i', 'l', 'm', 'n', 'o', 'z', 'É', 'é']
        let vocab = Vocab::from_words(&strings(&["zoé", "Émile", "anna", "Bo"])).unwrap();
        let expected = ['.', 'B', 'a', 'e', 'i', 'l', 'm', 'n', 'o', 'z', 'É', 'é'];
        assert_eq!(vocab.symbols(), expected);
        assert_eq!(vocab.len(), 12);
        assert!(vocab.len() > 1);
        for (id, &c) in expected.iter().enumerate() {
            assert_eq!(vocab.encode(c), Some(id as u8));
            assert_eq!(vocab.decode(id as u8), Some(c));
        }
        assert_eq!(vocab.encode('x'), None);
        assert_eq!(vocab.decode(12), None);
    }

    #[test]
    fn vocab_size_limit() {
        // 63 distinct chars + '.' = 64 symbols: accepted.
        let chars: Vec<char> = ('A'..='Z').chain('a'..='z').chain('0'..='9').collect();
        assert_eq!(chars.len(), 62);
        let mut word: String = chars.iter().collect();
        word.push('é');
        let vocab = Vocab::from_words(&[word.clone()]).unwrap();
        assert_eq!(vocab.len(), MAX_VOCAB);
        assert_eq!(vocab.encode('é'), Some(63));

        word.push('ü');
        let err = Vocab::from_words(&[word.clone()]).unwrap_err();
        assert!(matches!(
            err,
            DataError::TooManySymbols {
                path: None,
                count: 65,
                max: 64
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("65") && msg.contains("64"), "{msg}");

        // Same through read_words: the message names the file.
        let (file, result) = read(format!("ab\n{word}\n").as_bytes());
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains(&file.0.display().to_string()), "{msg}");
        assert!(msg.contains("65 distinct symbols") && msg.contains("maximum is 64"));
    }

    #[test]
    fn vocab_rejects_dot() {
        let err = Vocab::from_words(&strings(&["ann", "a.b"])).unwrap_err();
        assert!(matches!(err, DataError::ReservedDot { line: 2, .. }));
        assert!(err.to_string().starts_with("word 2: word \"a.b\""));
    }

    #[test]
    fn missing_file() {
        let path = std::env::temp_dir().join("makemore-data-test-does-not-exist.txt");
        let err = read_words(&path).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }));
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(
            "download makemore's names.txt (https://github.com/karpathy/makemore) or pass --input PATH"
        ));
    }

    #[test]
    fn directory() {
        let dir = std::env::temp_dir();
        let err = read_words(&dir).unwrap_err();
        assert!(matches!(err, DataError::IsDirectory { .. }));
        assert!(err.to_string().contains("is a directory"));
    }

    #[test]
    fn other_io_error() {
        // A path through a regular file cannot be opened (ENOTDIR).
        let file = TempFile::new(b"ann\n");
        let path = file.0.join("child.txt");
        let err = read_words(&path).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn empty_file() {
        for contents in [&b""[..], b"\xEF\xBB\xBF"] {
            let (file, result) = read(contents);
            let err = result.unwrap_err();
            assert!(matches!(err, DataError::Empty { .. }));
            assert!(err.to_string().contains(&file.0.display().to_string()));
        }
    }

    #[test]
    fn only_blank_lines() {
        let (file, result) = read(b"\n\r\n  \n\t\n");
        let err = result.unwrap_err();
        assert!(
            matches!(err, DataError::NoWords { blank_lines: 4, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&file.0.display().to_string()) && msg.contains("no words"));
    }

    #[test]
    fn invalid_utf8_reports_line() {
        let (file, result) = read(b"ann\nbob\nz\xC3o\n");
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                DataError::InvalidUtf8 {
                    line: 3,
                    column: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("{}:3:", file.0.display())), "{msg}");
        assert!(msg.contains("UTF-8"));
    }

    #[test]
    fn dot_in_word_reports_line() {
        let (file, result) = read(b"ann\n\nj.r.\n");
        let err = result.unwrap_err();
        assert!(
            matches!(err, DataError::ReservedDot { line: 3, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("{}:3:", file.0.display())), "{msg}");
        assert!(msg.contains("start/end token"));
    }

    #[test]
    fn crlf_and_bom_accepted() {
        let (_file, result) = read(b"\xEF\xBB\xBFemma\r\nolivia\r\nava\r\n");
        let words = result.unwrap();
        assert_eq!(words.words, strings(&["emma", "olivia", "ava"]));
        assert_eq!(words.blank_lines, 0);
        assert_eq!(words.duplicates, 0);
        // Mixed endings; "\r" alone ends a line, as in Python:
        // python3 -c "print('emma\r\nava\nbo\r\r\nx'.splitlines())" -> ['emma', 'ava', 'bo', '', 'x']
        let (_file, result) = read(b"emma\r\nava\nbo\r\r\nx");
        let words = result.unwrap();
        assert_eq!(words.words, strings(&["emma", "ava", "bo", "x"]));
        assert_eq!(words.blank_lines, 1);
    }

    #[test]
    fn blank_lines_and_duplicates_counted() {
        let (_file, result) = read(b"\nann\n\nbob\nann\n \n ann \nann\n\n");
        let words = result.unwrap();
        // Whitespace inside words is kept; " ann " differs from "ann".
        assert_eq!(words.words, strings(&["ann", "bob", "ann", " ann ", "ann"]));
        assert_eq!(words.blank_lines, 4);
        assert_eq!(words.duplicates, 2);
        let vocab = Vocab::from_words(&words.words).unwrap();
        assert_eq!(vocab.symbols(), ['.', ' ', 'a', 'b', 'n', 'o']);
    }
}
