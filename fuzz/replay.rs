// Included by the stable replay tests (`core/tests/fuzz_replay.rs`, `cli/tests/fuzz_replay.rs`):
// runs a fuzz target's check on every file of `fuzz/seeds/<target>/` and
// `fuzz/regressions/<target>/`.

use std::path::{Path, PathBuf};

/// `fuzz/` of the workspace.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The fuzz targets: the files of `fuzz/fuzz_targets/`, by name.
#[allow(dead_code)]
fn fuzz_targets() -> Vec<String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".rs")?.to_owned())
        })
        .collect();
    names.sort();
    names
}

/// Runs `check` on every input of `target`'s seed corpus and regressions (files starting with
/// '.' skipped), then fails listing every input that panicked. Both directories must exist.
fn replay(target: &str, check: fn(&[u8])) {
    let mut inputs = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "fuzz target {target:?}: cannot read {} ({e}); every target needs \
                 fuzz/seeds/{target}/ and fuzz/regressions/{target}/",
                dir.display()
            )
        });
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if path.is_file() && !hidden {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    let mut failed = Vec::new();
    for path in &inputs {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz target {target:?} fails on {} of {} inputs:\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
    let seeds = fuzz_dir().join("seeds").join(target);
    assert!(
        inputs.iter().any(|p| p.starts_with(&seeds)),
        "fuzz target {target:?}: {} holds no seed",
        seeds.display()
    );
}
