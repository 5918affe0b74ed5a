//! Fuzz target `dataset`: the CLI's word-list reader, vocabulary and split builder on arbitrary
//! bytes.
//!
//! Shared, as a plain function, by the fuzz target and by the stable replay test
//! (`cli/tests/fuzz_replay.rs` includes this file), so it uses only the `cli` library and std.

use std::collections::HashMap;
use std::path::Path;

use cli::data::{parse_words, split_points, Vocab, END, MAX_CONTEXT, MAX_VOCAB};
use cli::dataset::Dataset;

/// Never panics for any `bytes`; what it accepts is a usable data set:
/// - the words are the non-blank lines, none contains '.' or a line break, at most
///   [`MAX_VOCAB`] symbols, duplicates counted;
/// - the vocabulary is '.' then the sorted distinct characters, encodes and decodes every
///   character, and round-trips through its checkpoint form (`Vocab::from_symbols`);
/// - the split is a permutation of the words cut at `split_points`, and every example has
///   `context` ids and a target, all < V, one end token per word.
///
/// The first byte picks the context length (1..=16); `Vocab::from_symbols` also gets the bytes
/// as text.
pub fn check(bytes: &[u8]) {
    let context = 1 + usize::from(bytes.first().copied().unwrap_or(0)) % MAX_CONTEXT;
    symbols(bytes);
    let words = match parse_words(bytes, Path::new("fuzz-input.txt")) {
        Ok(w) => w,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz-input.txt") || msg.starts_with("word "),
                "{msg}"
            );
            return;
        }
    };
    assert!(!words.words.is_empty());
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in &words.words {
        assert!(!w.contains(END) && !w.contains('\n'), "{w:?}");
        assert!(!w.chars().all(char::is_whitespace), "blank word {w:?}");
        *counts.entry(w.as_str()).or_default() += 1;
    }
    assert_eq!(words.duplicates, words.words.len() - counts.len());

    let vocab = Vocab::from_words(&words.words).expect("parse_words checked the vocabulary");
    let symbols = vocab.symbols();
    assert!(vocab.len() <= MAX_VOCAB && symbols.first() == Some(&END));
    assert!(symbols[1..].windows(2).all(|w| w[0] < w[1]));
    for w in &words.words {
        for c in w.chars() {
            let id = vocab
                .encode(c)
                .expect("every character is in the vocabulary");
            assert!(id != 0 && vocab.decode(id) == Some(c));
        }
    }
    let text: String = symbols.iter().collect();
    assert_eq!(Vocab::from_symbols(&text).as_ref(), Some(&vocab));

    let ds = Dataset::from_words(words.clone(), context).expect("valid words");
    assert_eq!(ds.vocab, vocab);
    let (n1, n2) = split_points(words.words.len());
    assert_eq!(ds.split.train.len(), n1);
    assert_eq!(ds.split.val.len(), n2 - n1);
    assert_eq!(ds.split.test.len(), words.words.len() - n2);
    let mut split_counts: HashMap<&str, usize> = HashMap::new();
    for w in ds
        .split
        .train
        .iter()
        .chain(&ds.split.val)
        .chain(&ds.split.test)
    {
        *split_counts.entry(w.as_str()).or_default() += 1;
    }
    assert_eq!(
        split_counts, counts,
        "the split is not a permutation of the words"
    );
    for (examples, split) in [
        (&ds.train, &ds.split.train),
        (&ds.val, &ds.split.val),
        (&ds.test, &ds.split.test),
    ] {
        let chars: usize = split.iter().map(|w| w.chars().count() + 1).sum();
        assert_eq!(examples.len(), chars);
        assert_eq!(examples.x.len(), chars * context);
        assert!(examples
            .x
            .iter()
            .chain(&examples.y)
            .all(|&t| usize::from(t) < vocab.len()));
        assert_eq!(examples.y.iter().filter(|&&t| t == 0).count(), split.len());
    }
}

/// `Vocab::from_symbols` (a checkpoint's "vocab" metadata) on the bytes as text.
fn symbols(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(v) = Vocab::from_symbols(&text) {
        assert_eq!(v.symbols().iter().collect::<String>(), text);
        assert!(v.len() <= MAX_VOCAB);
        for (id, &c) in v.symbols().iter().enumerate() {
            assert_eq!(v.encode(c), Some(id as u8));
        }
    }
}
