//! End-to-end tests of the `makemore` binary on the real names.txt and on small generated word
//! lists. Every training run is short (at most 2000 steps, `--samples 0`) and writes to a
//! temporary directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{generated_names, makemore, metrics, names_path, number, vocab_size, TENSORS};

/// A 2000-step run on names.txt shared by the tests that need a trained checkpoint; its
/// directory is left in CARGO_TARGET_TMPDIR.
fn short_run() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("makemore-short-run-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory");
        let names = names_path();
        makemore(&[
            "train".as_ref(),
            "--input".as_ref(),
            names.as_os_str(),
            "--steps".as_ref(),
            "2000".as_ref(),
            "--samples".as_ref(),
            "0".as_ref(),
            "--out".as_ref(),
            dir.path().as_os_str(),
        ])
        .ok();
        dir
    })
    .path()
}

fn short_checkpoint() -> PathBuf {
    short_run().join("model.safetensors")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Writes `contents` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    path
}

/// `makemore train --input <input> --steps 5 --samples 0 --out <dir>/out`.
fn train_small(input: &Path, dir: &Path) -> common::Run {
    let out = dir.join("out");
    makemore(&[
        "train",
        "--input",
        s(input),
        "--steps",
        "5",
        "--samples",
        "0",
        "--out",
        s(&out),
    ])
}

/// Tensors of a safetensors file by name: (dtype, shape, bytes).
fn tensors(path: &Path) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{} is not safetensors: {e:?}", path.display()));
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut expected: Vec<String> = TENSORS.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected, "tensors of {}", path.display());
    TENSORS
        .iter()
        .map(|&name| {
            let view = st.tensor(name).unwrap();
            let shape = view.shape().to_vec();
            (name.to_string(), view.dtype(), shape, view.data().to_vec())
        })
        .collect()
}

#[test]
fn split_facts_and_outputs_on_names_txt() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = makemore(&[
        "train",
        "--input",
        s(&names),
        "--steps",
        "1",
        "--samples",
        "0",
        "--out",
        s(&out),
    ])
    .ok();
    let first = run.stdout.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!(
            "{}: 32033 words (2539 duplicates kept, 0 blank lines skipped), vocabulary of 27",
            names.display()
        ),
        "{}",
        run.dump()
    );
    for fact in [
        "first word \"yuheng\"",
        "words 25626 / 3203 / 3204",
        "examples: train 182625 / val 22655 / test 22866",
        "parameters: 12297",
    ] {
        assert!(
            run.stdout.contains(fact),
            "missing {fact:?} in:\n{}",
            run.dump()
        );
    }

    let m = metrics(&out);
    let examples = &m["examples"];
    assert_eq!(number(examples, "train"), 182625.0);
    assert_eq!(number(examples, "val"), 22655.0);
    assert_eq!(number(examples, "test"), 22866.0);
    assert_eq!(number(&m, "params"), 12297.0);
    assert_eq!(number(&m, "steps"), 1.0);
    for key in ["train_loss", "val_loss", "test_loss"] {
        let loss = number(&m, key);
        // one step from the notebook's initialisation: near ln 27 = 3.30, certainly finite
        assert!(
            loss.is_finite() && loss > 2.5 && loss < 5.0,
            "{key} = {loss}"
        );
    }
    for key in [
        "train_seconds",
        "steps_per_second",
        "eval_seconds",
        "threads",
    ] {
        let x = number(&m, key);
        assert!(x.is_finite() && x >= 0.0, "{key} = {x}");
    }
    assert!(number(&m, "threads") >= 1.0);
    for file in ["model.safetensors", "loss.csv", "loss.svg"] {
        let path = out.join(file);
        let len = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()))
            .len();
        assert!(len > 0, "{} is empty", path.display());
    }
}

#[test]
fn short_run_learns() {
    let m = metrics(short_run());
    assert_eq!(number(&m, "steps"), 2000.0);
    let val = number(&m, "val_loss");
    // ln 27 = 3.30 is the loss of a uniform guess
    assert!(
        val.is_finite() && val < 2.9,
        "val_loss after 2000 steps: {val}"
    );
    let train = number(&m, "train_loss");
    assert!(
        train.is_finite() && train < 2.9,
        "train_loss after 2000 steps: {train}"
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--input",
            s(&names),
            "--samples",
            "0",
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        makemore(&args)
    };

    train(&a, &["--steps", "300", "--checkpoint-every", "100"]).ok();
    let at_300 = tensors(&a.join("model.safetensors"));
    let resumed = train(&a, &["--steps", "600", "--resume"]).ok();
    assert!(
        resumed.stdout.contains("resuming from step 300"),
        "{}",
        resumed.dump()
    );
    assert_eq!(number(&metrics(&a), "steps"), 600.0);
    train(&b, &["--steps", "600"]).ok();

    let ta = tensors(&a.join("model.safetensors"));
    let tb = tensors(&b.join("model.safetensors"));
    for ((name, dtype_a, shape_a, data_a), (_, dtype_b, shape_b, data_b)) in ta.iter().zip(&tb) {
        assert_eq!(*dtype_a, safetensors::Dtype::F32, "{name}");
        assert_eq!(dtype_a, dtype_b, "{name}");
        assert_eq!(shape_a, shape_b, "{name}");
        assert!(
            data_a == data_b,
            "tensor {name} differs between the resumed and the uninterrupted run"
        );
    }
    // the resumed run did train: its weights moved since step 300
    assert_ne!(
        at_300[0].3, ta[0].3,
        "C did not change from step 300 to 600"
    );

    // resuming with another model size fails and leaves the checkpoint alone
    let before = fs::read(a.join("model.safetensors")).unwrap();
    let err = train(&a, &["--steps", "700", "--resume", "--hidden", "100"]).failed();
    assert!(err.contains("--hidden"), "{err}");
    assert!(err.contains(s(&a.join("model.safetensors"))), "{err}");
    assert_eq!(fs::read(a.join("model.safetensors")).unwrap(), before);
}

#[test]
fn bad_word_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = generated_names(50).join("\n") + "\n";

    // missing file: the hint names names.txt and --input
    let missing = d.join("missing.txt");
    let err = train_small(&missing, d).failed();
    assert!(err.contains(s(&missing)), "{err}");
    assert!(
        err.contains("names.txt") && err.contains("--input"),
        "{err}"
    );

    // a directory
    let sub = d.join("subdir");
    fs::create_dir(&sub).unwrap();
    let err = train_small(&sub, d).failed();
    assert!(err.contains(s(&sub)) && err.contains("directory"), "{err}");

    // an empty file
    let empty = write(d, "empty.txt", b"");
    let err = train_small(&empty, d).failed();
    assert!(err.contains(s(&empty)) && err.contains("empty"), "{err}");

    // only blank lines
    let blank = write(d, "blank.txt", b"\n  \n\t\r\n\n");
    let err = train_small(&blank, d).failed();
    assert!(err.contains(s(&blank)) && err.contains("no words"), "{err}");

    // invalid UTF-8 on line 3
    let mut bytes = b"anna\nbob\nz".to_vec();
    bytes.extend_from_slice(&[0xC3, b'o', b'\n']);
    bytes.extend_from_slice(names.as_bytes());
    let utf8 = write(d, "utf8.txt", &bytes);
    let err = train_small(&utf8, d).failed();
    assert!(
        err.contains(&format!("{}:3:", utf8.display())),
        "line number missing: {err}"
    );
    assert!(err.contains("UTF-8"), "{err}");

    // a word with the reserved '.' on line 4
    let dot = write(
        d,
        "dot.txt",
        format!("anna\nbob\n\nj.r.\n{names}").as_bytes(),
    );
    let err = train_small(&dot, d).failed();
    assert!(err.contains(&format!("{}:4:", dot.display())), "{err}");
    assert!(err.contains("'.'"), "{err}");

    // 64 distinct symbols plus '.'
    let mut wide: String = ('A'..='Z').chain('a'..='z').chain('0'..='9').collect();
    wide.push('é');
    wide.push('ü');
    let many = write(d, "many.txt", format!("{names}{wide}\n").as_bytes());
    let err = train_small(&many, d).failed();
    assert!(err.contains(s(&many)), "{err}");
    assert!(err.contains("65") && err.contains("64"), "{err}");

    assert!(
        !d.join("out").exists(),
        "a failed run created its output directory"
    );
}

#[test]
fn crlf_bom_file_trains_and_counts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let words = generated_names(50);
    let vocab = vocab_size(&words);

    // UTF-8 BOM and CRLF line endings
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice((words.join("\r\n") + "\r\n").as_bytes());
    let crlf = write(d, "crlf.txt", &bytes);
    let run = train_small(&crlf, d).ok();
    let first = run.stdout.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!(
            "{}: 50 words (0 duplicates kept, 0 blank lines skipped), vocabulary of {vocab}",
            crlf.display()
        ),
        "{}",
        run.dump()
    );
    assert!(d.join("out/model.safetensors").is_file());

    // 2 blank lines and 3 duplicates
    let mut lines: Vec<String> = words.clone();
    lines.insert(10, String::new());
    lines.insert(20, "   ".into());
    lines.push(words[0].clone());
    lines.push(words[1].clone());
    lines.push(words[0].clone());
    let dups = write(d, "dups.txt", (lines.join("\n") + "\n").as_bytes());
    let run = train_small(&dups, &d.join("dups")).ok();
    let first = run.stdout.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!(
            "{}: 53 words (3 duplicates kept, 2 blank lines skipped), vocabulary of {vocab}",
            dups.display()
        ),
        "{}",
        run.dump()
    );
}

#[test]
fn model_size_flags_are_range_checked() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (flag, value, range) in [
        ("--hidden", "0", "1 to 4096"),
        ("--context", "17", "1 to 16"),
    ] {
        let err = makemore(&[
            "train",
            "--input",
            s(&names),
            "--steps",
            "1",
            "--samples",
            "0",
            "--out",
            s(&out),
            flag,
            value,
        ])
        .failed();
        assert!(
            err.contains(&format!("{flag} {value}")) && err.contains(range),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn gradcheck_agrees() {
    let names = names_path();
    let run = makemore(&["gradcheck", "--input", s(&names)]).ok();
    // table rows: "name | ..." with a name (the two header lines have "tensor" or nothing)
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('|')?;
            let name = name.trim();
            (!name.is_empty() && name != "tensor" && rest.contains('|')).then_some(name)
        })
        .collect();
    assert_eq!(rows.len(), 26, "{rows:?}\n{}", run.dump());
    assert_eq!(rows.first(), Some(&"logprobs"));
    assert_eq!(rows.last(), Some(&"C"));
    assert!(
        run.stdout.lines().any(|l| l == "all 26 tensors agree"),
        "{}",
        run.dump()
    );
}

#[test]
fn gradcheck_explain_prints_each_rows_notebook_lines_beside_its_comparison() {
    let names = names_path();
    let run = makemore(&["gradcheck", "--input", s(&names), "--explain"]).ok();
    // after the loss line, one block per row: "name    forward: ...", the gradient's lines,
    // then the comparisons ending in pass
    let blocks: Vec<&str> = run.stdout.split("\n\n").skip(1).collect();
    assert_eq!(blocks.len(), 26, "{}", run.dump());
    for (block, (name, forward, backward)) in blocks.iter().zip(cli::gradcheck_table::EXPLAIN) {
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[0], format!("{name}    forward: {forward}"), "{block}");
        for (i, line) in backward.iter().enumerate() {
            assert_eq!(lines[1 + i].trim(), *line, "{block}");
        }
        let last = lines[1 + backward.len()];
        assert!(
            last.contains("atomic f32 vs f64") && last.ends_with(": pass"),
            "{block}"
        );
    }
    // the fused rows name their exercise
    for name in ["logits", "hprebn"] {
        let block = blocks.iter().find(|b| b.starts_with(name)).unwrap();
        assert!(
            block.contains("fused (Exercise") && block.contains("fused f32 vs atomic f32"),
            "{block}"
        );
    }
    assert!(run.stdout.lines().any(|l| l == "all 26 tensors agree"));
}

#[test]
fn pytorch_layout_checkpoint_evaluates_and_samples() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let ck = write(
        dir.path(),
        "torch.safetensors",
        &common::pytorch_checkpoint(),
    );

    let run = makemore(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--input",
        s(&names),
        "--json",
    ])
    .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.dump());
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON line");
    assert_eq!(v.as_object().map(|o| o.len()), Some(3), "{v}");
    for key in ["train", "val", "test"] {
        let loss = number(&v, key);
        assert!(loss.is_finite() && loss > 0.0, "{key} = {loss}");
    }

    let run = makemore(&[
        "sample",
        "--checkpoint",
        s(&ck),
        "--input",
        s(&names),
        "--count",
        "5",
    ])
    .ok();
    assert_eq!(run.stdout.lines().count(), 5, "{}", run.dump());
}

#[test]
fn sampling_is_deterministic_and_checked() {
    let names = names_path();
    let ck = short_checkpoint();
    let sample = |extra: &[&str]| {
        let mut args = vec!["sample", "--checkpoint", s(&ck), "--input", s(&names)];
        args.extend_from_slice(extra);
        makemore(&args)
    };

    let one = sample(&["--count", "30", "--seed", "7"]).ok();
    let two = sample(&["--count", "30", "--seed", "7"]).ok();
    assert_eq!(one.stdout.lines().count(), 30, "{}", one.dump());
    assert_eq!(one.stdout, two.stdout);
    let other = sample(&["--count", "30", "--seed", "8"]).ok();
    assert_ne!(one.stdout, other.stdout, "--seed has no effect");

    let run = sample(&["--count", "20", "--prefix", "an"]).ok();
    assert_eq!(run.stdout.lines().count(), 20, "{}", run.dump());
    for line in run.stdout.lines() {
        assert!(
            line.starts_with("an"),
            "{line:?} does not start with the prefix"
        );
    }

    let err = sample(&["--temperature", "0"]).failed();
    assert!(err.contains("--temperature"), "{err}");

    // corrupted checkpoints
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(&ck).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let truncated = write(
        dir.path(),
        "truncated.safetensors",
        &bytes[..bytes.len() / 2],
    );
    let mut flipped = bytes.clone();
    flipped[8 + header_len / 2] ^= 0xFF;
    let flipped = write(dir.path(), "flipped.safetensors", &flipped);
    let mut brace = bytes.clone();
    brace[8] ^= 0x01;
    let brace = write(dir.path(), "brace.safetensors", &brace);
    let short = write(dir.path(), "short.safetensors", &bytes[..5]);
    for bad in [&truncated, &flipped, &brace, &short] {
        for cmd in ["sample", "eval"] {
            let err = makemore(&[cmd, "--checkpoint", s(bad), "--input", s(&names)]).failed();
            assert!(err.contains(s(bad)), "{cmd} {}: {err}", bad.display());
        }
    }
}

#[test]
fn eval_json_matches_training_metrics() {
    let names = names_path();
    let run = makemore(&[
        "eval",
        "--checkpoint",
        s(&short_checkpoint()),
        "--input",
        s(&names),
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
    let m = metrics(short_run());
    for (key, metric) in [
        ("train", "train_loss"),
        ("val", "val_loss"),
        ("test", "test_loss"),
    ] {
        let (a, b) = (number(&v, key), number(&m, metric));
        assert!(
            (a - b).abs() <= 1e-9,
            "eval {key} {a} vs metrics.json {metric} {b}"
        );
    }
}

/// `--isa` and `--split` take only their choices, and `MAKEMORE_ISA` (read when `--isa` is not
/// given) only an instruction set's name; each error names the flag or the variable, the value
/// and the choices, or what the CPU lacks.
#[test]
fn isa_and_split_choices_are_checked() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let train = |isa: Option<&str>, env: Option<&str>| {
        let mut args = vec!["train", "--input", s(&names), "--steps", "1"];
        args.extend(["--samples", "0", "--out", s(&out)]);
        if let Some(isa) = isa {
            args.extend(["--isa", isa]);
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"));
        cmd.args(&args).env_remove("RUST_BACKTRACE");
        match env {
            Some(v) => cmd.env("MAKEMORE_ISA", v),
            None => cmd.env_remove("MAKEMORE_ISA"),
        };
        let o = cmd.output().expect("cannot start the makemore binary");
        common::Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    let err = train(Some("sse"), None).failed();
    assert!(
        err.contains("invalid value 'sse' for '--isa")
            && err.contains("auto, scalar, avx2, avx512, neon, simd128"),
        "{err}"
    );
    let err = train(None, Some("sse")).failed();
    assert!(
        err.contains("MAKEMORE_ISA=\"sse\": unknown instruction set")
            && err.contains("auto, scalar, avx2, avx512, neon or simd128"),
        "{err}"
    );
    // a path this CPU cannot run, from the flag and from the variable
    let missing = if cfg!(target_arch = "x86_64") {
        "neon"
    } else {
        "avx2"
    };
    let err = train(Some(missing), None).failed();
    assert!(
        err.contains(&format!(
            "--isa {missing}: instruction set {missing} is not available"
        )),
        "{err}"
    );
    let err = train(None, Some(missing)).failed();
    assert!(
        err.contains(&format!(
            "MAKEMORE_ISA={missing}: instruction set {missing} is not available"
        )),
        "{err}"
    );
    // the flag wins over the variable; an empty variable is auto
    let run = train(Some("scalar"), Some("sse")).ok();
    assert!(
        run.stdout.contains("instruction set: scalar"),
        "{}",
        run.dump()
    );
    train(None, Some("")).ok();

    let err = makemore(&["eval", "--split", "dev"]).failed();
    assert!(
        err.contains("invalid value 'dev' for '--split") && err.contains("train, val, test, all"),
        "{err}"
    );
}

#[test]
fn eval_of_one_split_prints_that_split_only() {
    let names = names_path();
    let run = makemore(&[
        "eval",
        "--checkpoint",
        s(&short_checkpoint()),
        "--input",
        s(&names),
        "--split",
        "val",
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
    let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["val"], "{}", run.stdout);
    let (a, b) = (number(&v, "val"), number(&metrics(short_run()), "val_loss"));
    assert!(
        (a - b).abs() <= 1e-9,
        "eval --split val {a} vs metrics.json {b}"
    );
}
