//! The notebook's data set: the words of a file, their vocabulary, the 80/10/10 split of
//! `random.seed(42); random.shuffle(words)` and the examples of each split.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Result};

use crate::data::{
    build_examples, read_words, split_points, split_words, DataError, Examples, Split, Vocab,
    Words, DEFAULT_SPLIT_SEED,
};

pub struct Dataset {
    pub vocab: Vocab,
    pub split: Split,
    pub train: Examples,
    pub val: Examples,
    pub test: Examples,
    pub words: usize,
    pub duplicates: usize,
    pub blank_lines: usize,
}

impl Dataset {
    /// Reads `path` (or standard input for "-", see [`read_words`]) and builds everything
    /// with a context of `context` tokens.
    pub fn load(path: &Path, context: usize) -> Result<Dataset> {
        Ok(Self::from_words(read_words(path)?, context)?)
    }

    /// Builds everything from words already read, with a context of `context` tokens
    /// (panics outside 1..=[`crate::data::MAX_CONTEXT`], as [`build_examples`] does). Errors: the
    /// vocabulary's (a '.' in a word, too many symbols).
    pub fn from_words(words: Words, context: usize) -> Result<Dataset, DataError> {
        let vocab = Vocab::from_words(&words.words)?;
        let (count, duplicates, blank_lines) =
            (words.words.len(), words.duplicates, words.blank_lines);
        let split = split_words(words.words, DEFAULT_SPLIT_SEED);
        let train = build_examples(&split.train, &vocab, context);
        let val = build_examples(&split.val, &vocab, context);
        let test = build_examples(&split.test, &vocab, context);
        Ok(Dataset {
            vocab,
            split,
            train,
            val,
            test,
            words: count,
            duplicates,
            blank_lines,
        })
    }

    /// The examples of split `name` ("train", "val" or "test"), or an error, naming `input`,
    /// if the split has no words: how the words were cut and how many the split needs.
    pub fn nonempty(&self, name: &str, input: &Path) -> Result<&Examples> {
        let examples = self.examples(name);
        if examples.is_empty() {
            // the smallest word count that gives this split a word
            let sizes = |n: usize| {
                let (n1, n2) = split_points(n);
                [n1, n2 - n1, n - n2]
            };
            let i = ["train", "val", "test"]
                .iter()
                .position(|&s| s == name)
                .unwrap_or(2);
            let needed = (1..).find(|&n| sizes(n)[i] > 0).unwrap_or(1);
            let [a, b, c] = sizes(self.words);
            bail!(
                "{}: the {name} split is empty: {} words are cut 80/10/10 as the notebook \
                 cuts them (int(0.8*n), int(0.9*n)) into {a} train, {b} val and {c} test \
                 words, and the {name} split needs at least {needed} words in all; use a \
                 larger word list",
                input.display(),
                self.words
            );
        }
        Ok(examples)
    }

    /// The examples of a split by name.
    pub fn examples(&self, split: &str) -> &Examples {
        match split {
            "train" => &self.train,
            "val" => &self.val,
            _ => &self.test,
        }
    }
}

/// Where a sampled name comes from, as makemore.py reports it.
/// Borrows the split's words: sets of `&str`, as [`crate::data::parse_words`]'s duplicate count,
/// so one hash set type serves both.
pub struct Provenance<'a> {
    train: HashSet<&'a str>,
    held_out: HashSet<&'a str>,
}

impl<'a> Provenance<'a> {
    pub fn new(split: &'a Split) -> Self {
        let set = |words: &'a [String]| words.iter().map(String::as_str);
        Provenance {
            train: set(&split.train).collect(),
            held_out: set(&split.val).chain(set(&split.test)).collect(),
        }
    }

    /// "in train", "in val/test" or "new".
    pub fn of(&self, name: &str) -> &'static str {
        if self.train.contains(name) {
            "in train"
        } else if self.held_out.contains(name) {
            "in val/test"
        } else {
            "new"
        }
    }
}
