//! Helpers for the `makemore` integration tests: running the binary, the real data set, small
//! generated word lists and a PyTorch-layout checkpoint.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The 9 tensors of a model checkpoint, in the notebook's order.
pub const TENSORS: [&str; 9] = [
    "C", "W1", "b1", "W2", "b2", "bngain", "bnbias", "bnmean", "bnvar",
];

/// What a run of the binary gave.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Panics unless the run exited 0.
    pub fn ok(self) -> Run {
        assert!(self.success(), "makemore failed:\n{}", self.dump());
        self
    }

    /// Panics unless the run failed cleanly: non-zero exit, stderr starting with "error:",
    /// no panic. Returns stderr.
    pub fn failed(self) -> String {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "makemore should have failed with a non-zero exit code:\n{}",
            self.dump()
        );
        assert!(
            self.stderr.starts_with("error:"),
            "stderr should start with \"error:\":\n{}",
            self.dump()
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "makemore panicked:\n{}",
            self.dump()
        );
        self.stderr
    }
}

/// Runs `makemore` with `args` (RUST_BACKTRACE unset, so that a panic prints its hint).
pub fn makemore<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("cannot start the makemore binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// data/names.txt of the workspace; panics (the test fails) if it is missing.
pub fn names_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    assert!(
        path.is_file(),
        "the real data set {} is missing: these tests need makemore's names.txt there \
         (data/names.txt links to ../../shared/data/names.txt)",
        path.display()
    );
    path
}

/// `n` distinct lowercase names from a fixed generator (syllables drawn by an LCG).
pub fn generated_names(n: usize) -> Vec<String> {
    const SYLLABLES: [&str; 16] = [
        "an", "na", "el", "li", "ma", "ri", "ka", "jo", "se", "ta", "ve", "ny", "ol", "bu", "de",
        "zi",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut seen = HashSet::new();
    let mut names = Vec::with_capacity(n);
    while names.len() < n {
        let len = 2 + next() % 3;
        let name: String = (0..len)
            .map(|_| SYLLABLES[next() % SYLLABLES.len()])
            .collect();
        if seen.insert(name.clone()) {
            names.push(name);
        }
    }
    names
}

/// Number of vocabulary symbols of `words`, '.' included.
pub fn vocab_size(words: &[String]) -> usize {
    let chars: HashSet<char> = words.iter().flat_map(|w| w.chars()).collect();
    chars.len() + 1
}

/// Deterministic values in [lo, hi) (xorshift64*).
pub fn values(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// A checkpoint as PyTorch's `safetensors.torch.save_file` of the notebook's tensors would
/// write it: F32, the notebook's names and shapes (V=27, E=10, T=3, H=64), no metadata.
pub fn pytorch_checkpoint() -> Vec<u8> {
    let (v, e, t, h) = (27, 10, 3, 64);
    let tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("C", vec![v, e], values(1, v * e, -1.0, 1.0)),
        ("W1", vec![t * e, h], values(2, t * e * h, -0.3, 0.3)),
        ("b1", vec![h], values(3, h, -0.1, 0.1)),
        ("W2", vec![h, v], values(4, h * v, -0.2, 0.2)),
        ("b2", vec![v], values(5, v, -0.1, 0.1)),
        ("bngain", vec![1, h], values(6, h, 0.8, 1.2)),
        ("bnbias", vec![1, h], values(7, h, -0.1, 0.1)),
        ("bnmean", vec![1, h], values(8, h, -0.2, 0.2)),
        ("bnvar", vec![1, h], values(9, h, 0.5, 1.5)),
    ];
    let bytes: Vec<(&str, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, data)| {
            let raw = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, shape, raw)
        })
        .collect();
    let views = bytes.iter().map(|(name, shape, raw)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw)
                .expect("tensor view");
        (*name, view)
    });
    safetensors::serialize(views, &None).expect("serialize")
}

/// Parses metrics.json of a training run.
pub fn metrics(out: &Path) -> serde_json::Value {
    let path = out.join("metrics.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A number of a JSON object.
pub fn number(v: &serde_json::Value, key: &str) -> f64 {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{key:?} is missing or not a number in {v}"))
}
