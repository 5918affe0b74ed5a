//! The notebook replayed with `--rng torch`, held against what PyTorch prints for the same cells
//! (`golden/torch_notebook.txt` and `.safetensors`, written by `scripts/notebook_reference.py`
//! with torch; CI does not run it): the gradient check's parameter count, loss and table format,
//! the first 1000 training losses, the names of the sampling cell; and a torch run's resume.
//! The generator itself is checked value by value in `torch_generator.rs`.

#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use cli::checkpoint::Checkpoint;
use common::{generated_names, makemore, names_path};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn golden_path(ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/torch_notebook.{ext}"))
}

/// The golden file's entries: `key values...` per line (`#` starts a comment).
fn golden() -> HashMap<String, Vec<String>> {
    let text = fs::read_to_string(golden_path("txt")).expect("tests/golden/torch_notebook.txt");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace().map(str::to_string);
            (w.next().unwrap(), w.collect())
        })
        .collect()
}

fn f32_hex(h: &str) -> f32 {
    f32::from_bits(u32::from_str_radix(h, 16).expect("8 hex digits"))
}

/// The labels of the notebook's first 26 `cmp('label', ...)` calls, read from the seed notebook
/// (`../shared/seed/backprop-ninja-notebook.txt`; the test fails, saying so, if it is missing).
fn cmp_labels() -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed/backprop-ninja-notebook.txt");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the seed notebook {} is missing ({e}): this test reads its cmp labels; put shared/ beside the repository",
            path.display()
        )
    });
    let labels: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("cmp('")?
                .split('\'')
                .next()
                .map(str::to_string)
        })
        .take(26)
        .collect();
    assert_eq!(labels.len(), 26, "{}", path.display());
    labels
}

#[test]
fn gradcheck_prints_the_notebooks_parameter_count_loss_and_table() {
    let g = golden();
    let names = names_path();
    let run = makemore(&[
        "gradcheck",
        "--rng",
        "torch",
        "--input",
        s(&names),
        "--fd-samples",
        "2",
    ])
    .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], g["gradcheck_parameters"][0], "{}", run.stdout);
    assert_eq!(g["gradcheck_parameters"][0], "4137");
    let loss = f32_hex(&g["gradcheck_loss"][0]);
    assert_eq!(format!("{loss:.4}"), "3.5571", "the golden file's own loss");
    assert_eq!(
        lines[1],
        format!("tensor({loss:.4}, grad_fn=<NegBackward0>)"),
        "{}",
        run.stdout
    );
    // the 26 rows in the notebook's format, every one approximately equal
    let rows: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("| exact: "))
        .collect();
    assert_eq!(rows.len(), 26, "{}", run.stdout);
    for (row, name) in rows.iter().zip(cmp_labels()) {
        let prefix = format!("{name:15} | exact: ");
        assert!(row.starts_with(&prefix), "{row:?} should start {prefix:?}");
        assert!(row.contains(" | approximate: True  | maxdiff: "), "{row:?}");
    }
}

#[test]
fn train_prints_pytorchs_loss_at_step_0_and_tracks_its_first_1000_losses() {
    let g = golden();
    let torch: Vec<f32> = g["train_losses"][1..].iter().map(|h| f32_hex(h)).collect();
    assert_eq!(torch.len(), 1000);
    let dir = tempfile::tempdir().unwrap();
    let names = names_path();
    let out = dir.path().join("out");
    let run = makemore(&[
        "train",
        "--rng",
        "torch",
        "--input",
        s(&names),
        "--out",
        s(&out),
        "--steps",
        "1000",
        "--log-every",
        "1",
        "--samples",
        "0",
    ])
    .ok();
    let printed: Vec<f64> = run
        .stdout
        .lines()
        .filter_map(|l| {
            // "{step:7}/{steps:7}: {loss:.4}", as the notebook prints
            let (head, loss) = l.split_once(": ")?;
            let (step, steps) = head.split_once('/')?;
            let ours = steps.trim() == "1000" && step.trim().parse::<u64>().is_ok();
            ours.then(|| loss.parse().unwrap())
        })
        .collect();
    assert_eq!(printed.len(), 1000, "{}", run.stdout);
    // step 0: what PyTorch prints for the same cell
    assert_eq!(format!("{:.4}", printed[0]), format!("{:.4}", torch[0]));
    // then within the 4-decimal print (5e-5) and 1e-5 of drift between two f32 computations
    // (whose full losses differ by at most 1e-6 here)
    let worst = printed
        .iter()
        .zip(&torch)
        .map(|(&a, &b)| (a - f64::from(b)).abs())
        .fold(0.0, f64::max);
    eprintln!("worst |printed loss - PyTorch's| over 1000 steps: {worst:.2e}");
    assert!(worst <= 6e-5, "worst difference {worst}");
}

#[test]
fn a_pytorch_checkpoint_samples_the_notebooks_names() {
    let g = golden();
    let names = names_path();
    let run = makemore(&[
        "sample",
        "--rng",
        "torch",
        "--checkpoint",
        s(&golden_path("safetensors")),
        "--input",
        s(&names),
        "--count",
        "20",
    ])
    .ok();
    let got: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(got, g["names"], "{}", run.stdout);
}

/// `train` with `--rng rng` on 300 generated names, tiny model, `extra` flags.
fn tiny(input: &Path, out: &Path, rng: &str, extra: &[&str]) -> common::Run {
    let mut a = vec![
        "train",
        "--input",
        s(input),
        "--out",
        s(out),
        "--samples",
        "3",
        "--rng",
        rng,
        "--hidden",
        "16",
        "--embedding",
        "4",
        "--batch-size",
        "16",
    ];
    a.extend(extra);
    makemore(&a)
}

#[test]
fn a_torch_run_resumed_ends_as_the_run_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    fs::write(&input, generated_names(300).join("\n") + "\n").unwrap();
    for rng in ["torch", "torch-generic"] {
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let whole = tiny(&input, &a, rng, &["--steps", "60"]).ok();
        tiny(&input, &b, rng, &["--steps", "25"]).ok();
        let resumed = makemore(&[
            "train",
            "--input",
            s(&input),
            "--out",
            s(&b),
            "--samples",
            "3",
            "--resume",
            "--steps",
            "60",
        ])
        .ok();
        let x = Checkpoint::load(&a.join("model.safetensors")).unwrap();
        let y = Checkpoint::load(&b.join("model.safetensors")).unwrap();
        assert!(
            x.params == y.params,
            "{rng}: the resumed run's tensors differ"
        );
        assert_eq!(x.run, y.run, "{rng}");
        // the names sampled at the end come from the notebook's sampling generator
        let tail = |r: &str| {
            let t = r.split("samples:").nth(1)?;
            t.split("wrote").next().map(str::to_string)
        };
        assert_eq!(tail(&whole.stdout), tail(&resumed.stdout), "{rng}");
        fs::remove_dir_all(&a).unwrap();
        fs::remove_dir_all(&b).unwrap();
    }
    // and torch's bits are not PCG's nor the generic kernel's
    let runs: Vec<Vec<f32>> = ["pcg", "torch", "torch-generic"]
        .iter()
        .map(|rng| {
            let out = dir.path().join(rng);
            tiny(&input, &out, rng, &["--steps", "1"]).ok();
            Checkpoint::load(&out.join("model.safetensors"))
                .unwrap()
                .params
        })
        .collect();
    assert!(runs[0] != runs[1] && runs[1] != runs[2]);
}

#[test]
fn resume_refuses_another_generator_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    fs::write(&input, generated_names(300).join("\n") + "\n").unwrap();
    let out = dir.path().join("out");
    tiny(&input, &out, "torch", &["--steps", "5"]).ok();
    let e = makemore(&[
        "train",
        "--input",
        s(&input),
        "--out",
        s(&out),
        "--resume",
        "--steps",
        "10",
        "--rng",
        "pcg",
    ])
    .failed();
    assert!(
        e.contains("--rng pcg") && e.contains("random generator torch"),
        "{e}"
    );
}
