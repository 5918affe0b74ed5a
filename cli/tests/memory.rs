//! Memory and threads that fit the machine: a configuration that needs more memory than the
//! process may use is refused before allocating, with the figure; the sharded step's scratch
//! does not grow by a gradient per shard; `--threads` above the core count is warned about and
//! runs on the cores, with the same results.

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use cli::memory::{train_bytes, TrainMemory};
use common::{makemore, names_path, Run};
use makemore_core::step::Step;
use makemore_core::Dims;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The largest configuration the flags accept (README: hidden 4096, embedding 256, context
/// 16, batch 65536), on the 27 symbols of names.txt.
const LARGEST: Dims = Dims {
    vocab: 27,
    context: 16,
    embedding: 256,
    hidden: 4096,
};

const GIB: u64 = 1 << 30;

/// `makemore args` under `ulimit -v kib` (the address-space limit), through `sh`.
fn makemore_limited(kib: u64, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("cannot start sh");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "makemore was killed by a signal (an abort on allocation?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Under `ulimit -v` of 2 GiB, the largest configuration (about 4.3 GiB) is refused before it
/// allocates: a clear error naming the figures and the limit, exit 1, no abort, nothing
/// written. (Before: SIGABRT on allocation.) A small run under the same limit trains.
#[test]
fn a_configuration_that_does_not_fit_is_refused_with_the_figure() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big");
    let run = makemore_limited(
        2 * GIB / 1024,
        &[
            "train",
            "--input",
            s(&names),
            "--out",
            s(&out),
            "--hidden",
            "4096",
            "--embedding",
            "256",
            "--context",
            "16",
            "--batch-size",
            "65536",
            "--steps",
            "1",
            "--samples",
            "0",
        ],
    );
    let err = run.failed();
    let need = train_bytes(LARGEST, 65536, 0).unwrap();
    let figure = format!("needs about {}", cli::memory::Bytes(need));
    for part in [
        figure.as_str(),
        "activations of batch 65536",
        "gradients",
        "is available (the address-space limit, ulimit -v)",
        "use a smaller --batch-size or --hidden",
    ] {
        assert!(err.contains(part), "{part:?} missing from:\n{err}");
    }
    assert!(
        !out.join("model.safetensors").exists(),
        "nothing is written"
    );

    let small = dir.path().join("small");
    let args = [
        "train",
        "--input",
        s(&names),
        "--out",
        s(&small),
        "--steps",
        "20",
        "--batch-size",
        "256",
        "--samples",
        "0",
    ];
    makemore_limited(2 * GIB / 1024, &args).ok();
    assert!(small.join("model.safetensors").is_file());
}

/// The step's scratch for the largest configuration at batch 65536 (1024 shards) holds the
/// batch's activations and at most 18 gradients besides, far below the 1024 gradient copies
/// of one per shard (before: 1024 copies, 69 GiB). And the estimate of the whole run is the
/// scratch plus the parameters and a little: between 4 and 5 GiB.
#[test]
fn the_sharded_step_does_not_hold_a_gradient_per_shard() {
    let d = LARGEST;
    let (n, p) = (65536, d.num_params());
    let len = Step::flat_len(&d, n).unwrap();
    let activations = n * (d.embcat() + 2 * d.hidden + d.vocab);
    assert!(len >= activations, "the batch's activations are kept");
    let beside = (len - activations) as f64 / p as f64;
    assert!(
        beside <= 18.0,
        "besides the activations the scratch holds {beside:.1} gradients (of {p} values)"
    );
    assert!(len < 1024 * p / 8, "{len} values for 1024 shards");

    let m = TrainMemory::new(d, n, 0).unwrap();
    assert_eq!(m.gradients + m.activations, len as u64 * 4);
    let total = m.total().unwrap();
    assert!(
        (4 * GIB..5 * GIB).contains(&total),
        "the largest configuration needs {total} bytes ({m})"
    );
    // the notebook's run: a few MiB
    assert!(train_bytes(Dims::EXERCISE4, 32, 0).unwrap() < 16 << 20);
}

/// `--threads 1000` on this machine's cores: a warning naming both counts, the run uses the
/// cores, finishes, and writes the same model bytes as `--threads 2` (a sharded batch).
/// (Before: no warning, 1000 threads.)
#[test]
fn threads_above_the_cores_are_warned_about_and_give_the_same_model() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut models = Vec::new();
    for threads in ["1000", "2"] {
        let out = dir.path().join(format!("t{threads}"));
        let run = makemore(&[
            "train",
            "--input",
            s(&names),
            "--out",
            s(&out),
            "--steps",
            "200",
            "--batch-size",
            "256",
            "--hidden",
            "48",
            "--samples",
            "0",
            "--threads",
            threads,
        ])
        .ok();
        assert!(
            run.stdout.contains("training step: sharded"),
            "{}",
            run.dump()
        );
        if threads == "1000" {
            let warning = format!(
                "warning: --threads 1000 is more than the {cores} cores here; using {cores} (results do not depend on the count)"
            );
            assert_eq!(
                run.stderr.matches(&warning).count(),
                1,
                "one warning:\n{}",
                run.dump()
            );
            assert!(
                run.stdout.contains(&format!("{cores} threads")),
                "{}",
                run.dump()
            );
        }
        models.push(fs::read(out.join("model.safetensors")).unwrap());
    }
    assert!(
        models[0] == models[1],
        "model.safetensors differs between --threads 1000 and --threads 2"
    );
}
