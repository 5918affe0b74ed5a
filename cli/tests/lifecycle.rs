//! A training run's lifecycle, driven through the binary: `--resume` continues the run (its
//! config, schedule, data and loss history come from the checkpoint; a contradicting flag or
//! other words are refused), SIGINT/SIGTERM save and exit 130/143, the output directory is
//! checked and locked before training, a failed final save says what is left, log lines reach
//! stdout, and the training controls (`--eval-every`, `--log-every`, `--sample-every`,
//! `--lr-schedule`) and `metrics.json` say what ran. Tiny models on generated word lists.

#[allow(dead_code)]
mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cli::checkpoint::Checkpoint;
use common::{generated_names, makemore, metrics, Run};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A word list of 300 generated names in `dir`, as `name`.
fn words(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, generated_names(300).join("\n") + "\n").unwrap();
    path
}

/// The flags of the tiny model (H=16, E=4, batch 16).
const TINY: [&str; 6] = ["--hidden", "16", "--embedding", "4", "--batch-size", "16"];

/// `train --input input --out out --samples 0` and `extra`.
fn train_args(input: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--input",
        s(input),
        "--out",
        s(out),
        "--samples",
        "0",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// A fresh tiny run of `steps` steps with `extra` flags.
fn tiny(input: &Path, out: &Path, steps: u64, extra: &[&str]) -> Run {
    let steps = steps.to_string();
    let mut e = vec!["--steps", &steps];
    e.extend(TINY);
    e.extend(extra);
    makemore(&train_args(input, out, &e))
}

/// `--resume` of the run in `out` to `steps`, with no other flag than `extra`.
fn resume(input: &Path, out: &Path, steps: u64, extra: &[&str]) -> Run {
    let steps = steps.to_string();
    let mut e = vec!["--resume", "--steps", &steps];
    e.extend(extra);
    makemore(&train_args(input, out, &e))
}

/// `--resume` of the tiny run in `out` to `steps`, repeating the tiny model's flags (as a
/// resume had to before the checkpoint gave them), `flags` (pairs) replacing or adding to them.
fn resume_tiny(input: &Path, out: &Path, steps: u64, flags: &[&str]) -> Run {
    let mut pairs: Vec<[&str; 2]> = TINY.chunks(2).map(|p| [p[0], p[1]]).collect();
    for p in flags.chunks(2) {
        match pairs.iter_mut().find(|q| q[0] == p[0]) {
            Some(q) => q[1] = p[1],
            None => pairs.push([p[0], p[1]]),
        }
    }
    let flat: Vec<&str> = pairs.concat();
    resume(input, out, steps, &flat)
}

/// Asserts that two checkpoints hold the same tensors, config, run state and history.
fn assert_same_run(a: &Path, b: &Path) {
    let (x, y) = (Checkpoint::load(a).unwrap(), Checkpoint::load(b).unwrap());
    assert_eq!(x.dims, y.dims);
    assert!(
        x.params == y.params,
        "{} and {} differ in their parameters",
        a.display(),
        b.display()
    );
    assert!(
        x.bn == y.bn,
        "{} and {} differ in bnmean/bnvar",
        a.display(),
        b.display()
    );
    assert_eq!(x.run, y.run);
    assert_eq!(x.history, y.history);
    // and so the same bytes: the seconds trained are not in the checkpoint
    assert!(
        read(a) == read(b),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ------------------------------------------------------------------------------------------------
// Resume means continue

#[test]
fn a_run_resumed_with_only_resume_equals_one_run_loss_curve_included() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    // 1500 steps cut a 1000-step window in two
    tiny(
        &input,
        &a,
        1500,
        &["--lr-decay-step", "2000", "--seed", "7"],
    )
    .ok();
    // no config flag: every one comes from the checkpoint
    let r = resume(&input, &a, 3000, &[]).ok();
    assert!(r.stdout.contains("resuming from step 1500"), "{}", r.dump());
    tiny(
        &input,
        &b,
        3000,
        &["--lr-decay-step", "2000", "--seed", "7"],
    )
    .ok();
    assert_same_run(&a.join("model.safetensors"), &b.join("model.safetensors"));
    let csv = String::from_utf8(read(&a.join("loss.csv"))).unwrap();
    assert_eq!(csv, String::from_utf8(read(&b.join("loss.csv"))).unwrap());
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert_eq!(read(&a.join("loss.svg")), read(&b.join("loss.svg")));
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!(ma["steps"], 3000);
    assert_eq!(ma["steps_this_run"], 1500);
    assert_eq!(ma["config"], mb["config"]);
    // train_seconds is the whole run's
    let whole = ma["train_seconds"].as_f64().unwrap();
    let this = ma["train_seconds_this_run"].as_f64().unwrap();
    assert!(whole > this, "train_seconds {whole}, this run {this}");
}

#[test]
fn a_flag_that_contradicts_the_checkpoint_is_refused_naming_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    tiny(&input, &out, 200, &[]).ok();
    let ckpt = out.join("model.safetensors");
    let before = read(&ckpt);
    for (flag, value, what) in [
        ("--batch-size", "64", "batch size 16"),
        ("--seed", "5", "seed 2147483647"),
        ("--lr-decay-step", "50", "lr decay step 100000"),
        ("--hidden", "32", "hidden size 16"),
        ("--lr-schedule", "cosine", "lr schedule step"),
        ("--warmup", "10", "lr schedule step"),
    ] {
        let err = resume_tiny(&input, &out, 400, &[flag, value]).failed();
        assert!(
            err.contains(&format!(
                "{flag} {value} contradicts the checkpoint's {what}"
            )),
            "{err}"
        );
        assert!(
            err.contains(s(&ckpt)) && err.contains("start a new --out"),
            "{err}"
        );
        assert_eq!(read(&ckpt), before, "{flag}: the checkpoint changed");
    }
    // the same values as the checkpoint's are fine
    resume_tiny(&input, &out, 300, &["--batch-size", "16", "--hidden", "16"]).ok();
}

#[test]
fn a_new_lr_on_resume_applies_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    tiny(&input, &a, 300, &[]).ok();
    tiny(&input, &b, 300, &[]).ok();
    resume_tiny(&input, &a, 600, &["--lr", "0.05"]).ok();
    resume_tiny(&input, &b, 600, &[]).ok();
    let ck = Checkpoint::load(&a.join("model.safetensors")).unwrap();
    assert_eq!(ck.run.as_ref().unwrap().lr, 0.05);
    let h = ck.history.expect("history");
    assert!(h.ends_with("lr_changes=300:0.05"), "{h}");
    let m = metrics(&a);
    assert_eq!(
        m["lr_changes"],
        serde_json::json!([{"step": 300, "lr": 0.05}])
    );
    // it changed the training
    let other = Checkpoint::load(&b.join("model.safetensors")).unwrap();
    assert!(ck.params != other.params, "--lr 0.05 on resume was ignored");
}

#[test]
fn resuming_on_other_words_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    tiny(&input, &out, 100, &[]).ok();
    // the same letters, so the same vocabulary: one word reversed
    let mut names = generated_names(300);
    names[17] = names[17].chars().rev().collect();
    let other = dir.path().join("other.txt");
    fs::write(&other, names.join("\n") + "\n").unwrap();
    let err = resume_tiny(&other, &out, 200, &[]).failed();
    assert!(
        err.contains(&format!("{} holds other words", s(&other))),
        "{err}"
    );
    assert!(err.contains("data fingerprint"), "{err}");
    // the same words in another order are another split: refused too
    let mut shuffled = generated_names(300);
    shuffled.swap(0, 1);
    fs::write(&other, shuffled.join("\n") + "\n").unwrap();
    resume_tiny(&other, &out, 200, &[]).failed();
}

#[test]
fn a_resume_with_nothing_to_do_says_so_and_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    tiny(&input, &out, 1200, &[]).ok();
    let files = ["model.safetensors", "loss.csv", "loss.svg", "metrics.json"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| read(&out.join(f))).collect();
    for steps in [1200, 1000] {
        let r = resume_tiny(&input, &out, steps, &[]).ok();
        assert!(r.stdout.contains("nothing to do"), "{}", r.dump());
        assert!(!r.stdout.contains("trained"), "{}", r.dump());
        for (f, b) in files.iter().zip(&before) {
            assert!(read(&out.join(f)) == *b, "{f} was rewritten");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Nothing is lost

/// Starts a long tiny run into `out` (with the flags `extra`) and waits until it trains.
fn start_long_run(
    input: &Path,
    out: &Path,
    extra: &[&str],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut args = train_args(input, out, &["--steps", "100000000"]);
    args.extend(TINY.iter().chain(extra).map(|x| x.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the run printed nothing for 60 s");
        if line.starts_with("training step:") {
            break;
        }
    }
    // some steps, then the signal
    std::thread::sleep(Duration::from_millis(300));
    (child, rx)
}

/// Sends `signal` to `child` with the kill command.
fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} failed");
}

#[cfg(unix)]
#[test]
fn sigint_and_sigterm_save_print_how_to_resume_and_exit_130_143() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let out = dir.path().join(format!("out{signal}"));
        let (mut child, rx) = start_long_run(&input, &out, &[]);
        kill(&child, signal);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{signal}: {status}");
        let said: Vec<String> = rx.iter().collect();
        let said = said.join("\n");
        let ckpt = out.join("model.safetensors");
        let step = Checkpoint::load(&ckpt).unwrap().run.unwrap().step;
        assert!(step > 0 && step < 100_000_000, "step {step}");
        assert!(
            said.contains(&format!("stopped after step {step}")),
            "{said}"
        );
        assert!(
            said.contains("Resume with:") && said.contains("train --resume --out"),
            "{said}"
        );
        // the lock was released, and the resumed run ends where one run would
        let end = step + 1500;
        resume(&input, &out, end, &[]).ok();
        let straight = dir.path().join(format!("straight{signal}"));
        tiny(&input, &straight, end, &[]).ok();
        assert_same_run(&ckpt, &straight.join("model.safetensors"));
        assert_eq!(
            read(&out.join("loss.csv")),
            read(&straight.join("loss.csv"))
        );
    }
}

/// A run with `--stats-every` stopped by SIGINT keeps its records and draws its pictures, and the
/// resume command it prints goes on recording.
#[cfg(unix)]
#[test]
fn sigint_keeps_the_stats_and_the_resume_command_continues_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    let (mut child, rx) = start_long_run(&input, &out, &["--stats-every", "100"]);
    kill(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let said = rx.iter().collect::<Vec<String>>().join("\n");
    let resume_line = said
        .lines()
        .find(|l| l.contains("train --resume --out"))
        .unwrap_or_else(|| panic!("no resume command: {said}"));
    assert!(resume_line.ends_with("--stats-every 100"), "{resume_line}");
    let step = Checkpoint::load(&out.join("model.safetensors"))
        .unwrap()
        .run
        .unwrap()
        .step;
    let stats: serde_json::Value =
        serde_json::from_str(&String::from_utf8(read(&out.join("stats.json"))).unwrap()).unwrap();
    let records = stats["records"].as_array().unwrap();
    assert_eq!(
        records.len() as u64,
        step.div_ceil(100),
        "one record per 100 steps up to {step}"
    );
    for picture in ["stats.svg", "stats.png"] {
        assert!(
            out.join(picture).exists(),
            "{picture} not drawn when stopped"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_second_run_on_the_same_out_is_refused_while_the_first_trains() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    let (mut first, _rx) = start_long_run(&input, &out, &[]);
    let err = tiny(&input, &out, 10, &[]).failed();
    kill(&first, "-TERM");
    let status = first.wait().unwrap();
    assert!(
        err.contains(&format!(
            "another makemore run (process {}) is training into {}",
            first.id(),
            s(&out)
        )),
        "{err}"
    );
    assert_eq!(
        status.code(),
        Some(143),
        "the first run was disturbed: {status}"
    );
    // the lock is gone with the process
    tiny(&input, &out, 10, &[]).ok();
}

#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_out_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    // /proc exists and no one can create a file in it, root included
    let out = Path::new("/proc");
    let r = tiny(&input, out, 20_000, &[]);
    assert!(
        !r.stdout.contains("trained"),
        "it trained first:\n{}",
        r.dump()
    );
    let err = r.failed();
    assert!(
        err.contains("cannot write to output directory /proc"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_failed_final_save_keeps_the_last_periodic_checkpoint_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    // H = 300: the final checkpoint (with bnmean, bnvar) is 2.4 KB larger than a periodic one
    let big = ["--hidden", "300", "--embedding", "4", "--batch-size", "16"];
    let probe = dir.path().join("probe");
    let mut a = train_args(&input, &probe, &["--steps", "25"]);
    a.extend(big.iter().map(|x| x.to_string()));
    makemore(&a).ok();
    let full = fs::metadata(probe.join("model.safetensors")).unwrap().len();
    // a file size limit (in 512-byte blocks) below the final checkpoint, above a periodic one
    let blocks = (full - 1) / 512;
    assert!(blocks * 512 > full - 2000, "{full}");
    let out = dir.path().join("out");
    let mut cmd = vec![format!(
        "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
    )];
    cmd.push(env!("CARGO_BIN_EXE_makemore").into());
    let mut args = train_args(&input, &out, &["--steps", "25", "--checkpoint-every", "10"]);
    args.extend(big.iter().map(|x| x.to_string()));
    cmd.extend(args);
    let o = Command::new("sh").arg("-c").args(&cmd).output().unwrap();
    let run = Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    let err = run.failed();
    let ckpt = out.join("model.safetensors");
    assert!(err.contains(&format!("cannot write {}", s(&ckpt))), "{err}");
    assert!(
        err.contains(&format!("{} (step 20) is untouched", s(&ckpt))),
        "{err}"
    );
    assert_eq!(Checkpoint::load(&ckpt).unwrap().run.unwrap().step, 20);
}

// ------------------------------------------------------------------------------------------------
// Logging

#[cfg(target_os = "linux")]
#[test]
fn log_lines_reach_a_terminal_stdout_when_stderr_is_redirected() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    let mut args = train_args(&input, &out, &["--steps", "300", "--log-every", "100"]);
    args.extend(TINY.iter().map(|x| x.to_string()));
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_makemore").to_string())
        .chain(args)
        .map(|a| format!("'{a}'"))
        .collect();
    // script(1) gives the command a terminal as stdout; stderr goes to a file
    let err_file = dir.path().join("stderr.txt");
    let inner = format!("{} 2>'{}'", quoted.join(" "), s(&err_file));
    let o = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("the test needs script(1) from util-linux");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    for step in ["      0/    300", "    100/    300", "    200/    300"] {
        assert!(text.contains(step), "log line {step:?} missing:\n{text}");
    }
}

// ------------------------------------------------------------------------------------------------
// Training controls and metrics.json

#[test]
fn eval_every_records_val_losses_and_keeps_the_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    let r = tiny(&input, &out, 1500, &["--eval-every", "500"]).ok();
    assert_eq!(r.stdout.matches(": val loss ").count(), 3, "{}", r.dump());
    let m = metrics(&out);
    let vals = m["val_losses"].as_array().unwrap();
    assert_eq!(vals.len(), 3, "{m}");
    let best = vals
        .iter()
        .min_by(|a, b| {
            a["val_loss"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["val_loss"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(m["best_val"]["step"], best["step"]);
    let ck = Checkpoint::load(&out.join("best.safetensors")).unwrap();
    assert!(ck.bn.is_some(), "best.safetensors is not calibrated");
    assert_eq!(serde_json::json!(ck.run.unwrap().step), best["step"]);
    let csv = String::from_utf8(read(&out.join("loss.csv"))).unwrap();
    assert!(csv.starts_with("step,log10_loss,log10_val_loss\n"), "{csv}");
    assert!(csv.contains("\n500,,"), "{csv}");
    let svg = String::from_utf8(read(&out.join("loss.svg"))).unwrap();
    // plotters writes each text on a line of its own
    assert!(svg.contains(">\nval\n</text>"), "no val series in loss.svg");
    // eval then uses the calibrated best checkpoint as is
    let e = makemore(&[
        "eval",
        "--checkpoint",
        s(&out.join("best.safetensors")),
        "--input",
        s(&input),
        "--json",
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(e.stdout.trim()).unwrap();
    let (got, want) = (
        v["val"].as_f64().unwrap(),
        best["val_loss"].as_f64().unwrap(),
    );
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "eval {got}, during training {want}"
    );
}

#[test]
fn log_every_and_sample_every_print_at_their_steps() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    let r = tiny(
        &input,
        &out,
        300,
        &["--log-every", "100", "--sample-every", "150"],
    )
    .ok();
    for line in ["      0/    300", "    100/    300", "    200/    300"] {
        assert!(r.stdout.contains(line), "{}", r.dump());
    }
    assert_eq!(r.stdout.matches("/    300: ").count(), 3, "{}", r.dump());
    for step in ["    150: samples ", "    300: samples "] {
        assert!(r.stdout.contains(step), "{}", r.dump());
    }
    let r = tiny(&input, &out, 300, &["--log-every", "0"]).ok();
    assert!(!r.stdout.contains("/    300: "), "{}", r.dump());
}

#[test]
fn the_cosine_schedule_is_recorded_and_continued_by_resume() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let cosine = [
        "--lr-schedule",
        "cosine",
        "--warmup",
        "100",
        "--min-lr",
        "0.01",
    ];
    tiny(&input, &a, 400, &cosine).ok();
    let ck = Checkpoint::load(&a.join("model.safetensors")).unwrap();
    let run = ck.run.unwrap();
    assert_eq!(
        run.schedule,
        makemore_core::checkpoint::Schedule::Cosine {
            warmup: 100,
            total: 400,
            min_lr: 0.01
        }
    );
    let m = metrics(&a);
    assert_eq!(
        m["config"]["lr_schedule"],
        serde_json::json!({"name": "cosine", "lr": 0.1, "warmup": 100, "total": 400, "min_lr": 0.01})
    );
    // another schedule than step's: the weights differ from a step run's
    tiny(&input, &b, 400, &[]).ok();
    let other = Checkpoint::load(&b.join("model.safetensors")).unwrap();
    assert!(ck.params != other.params);
    // --min-lr without cosine is refused
    let err = tiny(&input, &b, 10, &["--min-lr", "0.01"]).failed();
    assert!(
        err.contains("--min-lr applies to --lr-schedule cosine"),
        "{err}"
    );
}

#[test]
fn metrics_json_says_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    tiny(&input, &out, 300, &["--checkpoint-every", "100"]).ok();
    let m = metrics(&out);
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["input"], s(&input));
    let fp = m["data_fingerprint"].as_str().unwrap();
    assert!(fp.starts_with("fnv1a64:") && fp.len() == 24, "{fp}");
    let c = &m["config"];
    for k in [
        "vocab",
        "context",
        "embedding",
        "hidden",
        "batch_size",
        "steps",
        "lr",
        "seed",
    ] {
        assert!(c[k].is_number(), "config.{k}: {m}");
    }
    assert_eq!(
        c["lr_schedule"],
        serde_json::json!({"name": "step", "lr": 0.1, "decay_step": 100000, "decayed_lr": 0.01})
    );
    assert_eq!(c["optimizer"]["name"], "sgd");
    let ckpt = s(&out.join("model.safetensors")).to_string();
    assert_eq!(
        m["checkpoints"],
        serde_json::json!([{"path": ckpt, "step": 300}])
    );
    assert!(m["train_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(m["val_losses"], serde_json::json!([]));
}

#[test]
fn a_checkpoint_without_history_resumes_with_its_curve_from_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let out = dir.path().join("out");
    tiny(&input, &out, 1500, &[]).ok();
    // as an earlier makemore wrote it: no history
    let ckpt = out.join("model.safetensors");
    let mut ck = Checkpoint::load(&ckpt).unwrap();
    ck.history = None;
    ck.save(&ckpt).unwrap();
    resume(&input, &out, 4000, &[]).ok();
    let csv = String::from_utf8(read(&out.join("loss.csv"))).unwrap();
    let steps: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(steps, ["2500", "3500", "4000"], "{csv}");
}

// ------------------------------------------------------------------------------------------------
// The optimiser and gradient clipping

/// AdamW's m and v travel in the checkpoint: 300 steps, then a resume to 600, equal 600 steps
/// straight, bit for bit (a resume that restarted m and v at zero would differ). A flag that
/// contradicts the checkpoint's optimiser is refused naming both.
#[test]
fn adamw_state_travels_in_the_checkpoint_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let adamw = [
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--weight-decay",
        "0.1",
    ];
    tiny(&input, &a, 300, &adamw).ok();
    let ck = Checkpoint::load(&a.join("model.safetensors")).unwrap();
    assert_eq!(ck.opt_state.len(), 2 * ck.params.len(), "m and v are saved");
    assert!(ck.opt_state.iter().any(|&x| x != 0.0));
    resume(&input, &a, 600, &[]).ok();
    tiny(&input, &b, 600, &adamw).ok();
    assert_same_run(&a.join("model.safetensors"), &b.join("model.safetensors"));
    let m = metrics(&a);
    assert_eq!(m["config"]["optimizer"]["name"], "adamw", "{m}");
    assert_eq!(m["config"]["optimizer"]["weight_decay"], 0.1, "{m}");
    assert_eq!(m["config"]["optimizer"]["beta2"], 0.99, "{m}");

    // AdamW is not SGD: the same flags under SGD give other parameters
    tiny(&input, &c, 600, &["--lr", "0.01"]).ok();
    let (x, y) = (
        Checkpoint::load(&b.join("model.safetensors")).unwrap(),
        Checkpoint::load(&c.join("model.safetensors")).unwrap(),
    );
    assert!(x.params != y.params);
    assert!(y.opt_state.is_empty(), "SGD has no state to save");

    let err = resume(&input, &a, 900, &["--optimizer", "sgd"]).failed();
    assert!(
        err.contains("--optimizer sgd contradicts the checkpoint's optimizer adamw"),
        "{err}"
    );
    let err = resume(&input, &a, 900, &["--weight-decay", "0.01"]).failed();
    assert!(
        err.contains("--weight-decay 0.01 contradicts the checkpoint's weight decay 0.1"),
        "{err}"
    );
    let err = tiny(&input, &c, 10, &["--weight-decay", "0.1"]).failed();
    assert!(err.contains("--optimizer adamw"), "{err}");
}

/// `--grad-clip` scales a gradient whose global norm exceeds it: a tiny limit changes the run,
/// is recorded in the checkpoint and metrics.json, and is kept by a resume; a bad value or a
/// contradicting one on resume is refused.
#[test]
fn grad_clip_clips_is_recorded_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path(), "w.txt");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    tiny(&input, &a, 100, &["--grad-clip", "0.05"]).ok();
    resume(&input, &a, 200, &[]).ok();
    tiny(&input, &b, 200, &["--grad-clip", "0.05"]).ok();
    tiny(&input, &c, 200, &[]).ok();
    assert_same_run(&a.join("model.safetensors"), &b.join("model.safetensors"));
    let (x, y) = (
        Checkpoint::load(&b.join("model.safetensors")).unwrap(),
        Checkpoint::load(&c.join("model.safetensors")).unwrap(),
    );
    assert!(
        x.params != y.params,
        "a limit of 0.05 clips these gradients"
    );
    assert_eq!(x.run.as_ref().unwrap().grad_clip, Some(0.05));
    assert_eq!(metrics(&b)["config"]["grad_clip"], 0.05);
    let err = resume(&input, &a, 300, &["--grad-clip", "1"]).failed();
    assert!(
        err.contains("--grad-clip 1 contradicts the checkpoint's grad clip 0.05"),
        "{err}"
    );
    for bad in ["0", "-1", "NaN", "inf"] {
        let flag = format!("--grad-clip={bad}");
        let err = tiny(&input, &c, 10, &[&flag]).failed();
        assert!(err.contains("--grad-clip"), "{bad}: {err}");
    }
}

/// A word list too small for a split or a batch says so: the empty val split's loss is "none"
/// with the reason (not NaN), a training split smaller than the batch is noted, and
/// `--eval-every` without a val split is refused.
#[test]
fn a_data_set_too_small_for_a_split_or_a_batch_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two.txt");
    fs::write(&input, "ab\ncd\n").unwrap();
    let r = makemore(&train_args(
        &input,
        &dir.path().join("a"),
        &["--steps", "50"],
    ))
    .ok();
    assert!(!r.stdout.contains("NaN"), "{}", r.dump());
    assert!(
        r.stdout.contains("val loss   none") && r.stdout.contains("the val split is empty"),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout
            .contains("the training split has 3 examples, fewer than the batch size 32"),
        "{}",
        r.dump()
    );
    let err = makemore(&train_args(
        &input,
        &dir.path().join("b"),
        &["--steps", "50", "--eval-every", "10"],
    ))
    .failed();
    assert!(
        err.contains("--eval-every needs a val split") && err.contains("at least 6 words"),
        "{err}"
    );
}
