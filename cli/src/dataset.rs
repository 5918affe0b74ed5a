//! The notebook's data set: the words of a file, their vocabulary, the 80/10/10 split of
//! `random.seed(42); random.shuffle(words)` and the examples of each split.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Result;

use crate::data::{
    build_examples, read_words, split_words, DataError, Examples, Split, Vocab, Words,
    DEFAULT_SPLIT_SEED,
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
    /// Reads `path` and builds everything with a context of `context` tokens.
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
pub struct Provenance {
    train: HashSet<String>,
    held_out: HashSet<String>,
}

impl Provenance {
    pub fn new(split: &Split) -> Self {
        Provenance {
            train: split.train.iter().cloned().collect(),
            held_out: split.val.iter().chain(&split.test).cloned().collect(),
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
