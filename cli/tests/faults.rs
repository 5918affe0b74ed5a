//! Faults during training and loading: a non-finite loss or gradient, SIGKILL at random moments
//! (during saves too) then resume, an unwritable or full disk, corrupt checkpoints, a closed
//! stdout. Tiny models on a generated word list, so every run takes a fraction of a second.

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli::checkpoint::Checkpoint;
use common::{generated_names, makemore, names_path};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A word list of 200 generated names in `dir`.
fn words(dir: &Path) -> PathBuf {
    let path = dir.join("words.txt");
    fs::write(&path, generated_names(200).join("\n") + "\n").unwrap();
    path
}

/// `train` arguments of a tiny model (H=16, E=4, batch 16) on `input` into `out`.
fn tiny_args(input: &Path, out: &Path, steps: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--input",
        s(input),
        "--out",
        s(out),
        "--steps",
        &steps.to_string(),
        "--hidden",
        "16",
        "--embedding",
        "4",
        "--batch-size",
        "16",
        "--samples",
        "0",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// The step a checkpoint says it was written at.
fn ckpt_step(path: &Path) -> u64 {
    let ck = Checkpoint::load(path).unwrap_or_else(|e| panic!("{e:#}"));
    ck.run.expect("training state").step
}

/// The leftover temporary files of interrupted saves in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".model.safetensors.tmp"))
        .collect();
    v.sort();
    v
}

// ------------------------------------------------------------------------------------------------
// SIGKILL, then resume

/// Deterministic delays (xorshift64*).
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % max
    }
}

#[cfg(unix)]
#[test]
fn sigkill_at_random_moments_then_resume_ends_like_an_uninterrupted_run() {
    const STEPS: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());
    // Saving every step makes saves most of the run time, so many kills land inside one.
    let every = ["--checkpoint-every", "1"];
    let reference = dir.path().join("reference");
    makemore(&tiny_args(&input, &reference, STEPS, &every)).ok();
    let expected = fs::read(reference.join("model.safetensors")).unwrap();

    let out = dir.path().join("killed");
    let ckpt = out.join("model.safetensors");
    let mut delays = Delays(0x9E37_79B9_7F4A_7C15);
    let (mut kills, mut in_save, mut restarts) = (0, 0, 0);
    let mut steps_seen = Vec::new();
    let start = Instant::now();
    // Kill until at least 8 kills, one of them inside a save, have happened (at most 200). A
    // run that completes before that is started again from nothing, so the kills never run out
    // of run to land in (a whole run takes well under a second).
    while (kills < 8 || in_save == 0) && kills < 200 {
        let mut extra = every.to_vec();
        if ckpt.exists() {
            extra.push("--resume");
        }
        let before = temp_files(&out);
        let mut child = Command::new(env!("CARGO_BIN_EXE_makemore"))
            .args(tiny_args(&input, &out, STEPS, &extra))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start makemore");
        std::thread::sleep(Duration::from_millis(5 + delays.next_ms(200)));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "a run between kills failed: {status}");
            fs::remove_dir_all(&out).unwrap();
            steps_seen.clear();
            restarts += 1;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if temp_files(&out).len() > before.len() {
            in_save += 1;
        }
        if ckpt.exists() {
            // whatever the moment of the kill, the checkpoint on disk loads
            steps_seen.push(ckpt_step(&ckpt));
        }
    }
    let mut extra = every.to_vec();
    if ckpt.exists() {
        extra.push("--resume");
    }
    makemore(&tiny_args(&input, &out, STEPS, &extra)).ok();
    eprintln!(
        "{kills} kills ({in_save} inside a save, {restarts} runs completed between kills and \
         restarted) in {:.1} s; checkpoint steps after the kills: {steps_seen:?}",
        start.elapsed().as_secs_f64()
    );
    assert!(in_save > 0, "no kill landed inside a save in {kills} kills");
    assert!(
        steps_seen.windows(2).all(|w| w[0] <= w[1]),
        "a checkpoint went back in time: {steps_seen:?}"
    );
    assert!(
        temp_files(&out).is_empty(),
        "temporary files of killed saves were left: {:?}",
        temp_files(&out)
    );
    let got = fs::read(&ckpt).unwrap();
    assert!(
        got == expected,
        "the resumed run's checkpoint differs from the uninterrupted run's"
    );
}

// ------------------------------------------------------------------------------------------------
// Non-finite loss or gradient

/// The step number `msg` names after `at step `.
fn step_in(msg: &str) -> u64 {
    let rest = msg
        .split("at step ")
        .nth(1)
        .unwrap_or_else(|| panic!("no step in {msg}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step number in {msg}"))
}

#[test]
fn non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());
    let out = dir.path().join("out");
    // lr 1e30: the first update is finite but huge, the next loss is not
    let err = makemore(&tiny_args(
        &input,
        &out,
        50,
        &["--lr", "1e30", "--checkpoint-every", "1"],
    ))
    .failed();
    assert!(err.contains("the loss became"), "{err}");
    let step = step_in(&err);
    let ckpt = out.join("model.safetensors");
    assert!(
        err.contains(&format!("{} (step {step}) is untouched", s(&ckpt))),
        "{err}"
    );
    assert!(err.contains("--lr"), "{err}");
    // the checkpoint is the last good one: it loads, at that step, all finite
    let ck = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(ck.run.unwrap().step, step);
    assert!(ck.params.iter().all(|x| x.is_finite()));
    assert!(temp_files(&out).is_empty());
}

#[test]
fn non_finite_gradient_stops_naming_the_step_and_leaves_the_checkpoint_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());
    let out = dir.path().join("out");
    // H=16, E=2, batch 2 at the initialisation: a gradient large enough that lr * grad
    // overflows f32 for lr = f32::MAX while the loss is finite (found by trying sizes)
    let config = [
        "--hidden",
        "16",
        "--embedding",
        "2",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "1",
    ];
    let args = |steps: u64, extra: &[&str]| {
        let mut a = vec![
            "train".to_string(),
            "--input".into(),
            s(&input).into(),
            "--out".into(),
            s(&out).into(),
            "--steps".into(),
            steps.to_string(),
            "--samples".into(),
            "0".into(),
        ];
        a.extend(config.iter().chain(extra).map(|x| x.to_string()));
        a
    };
    makemore(&args(0, &[])).ok();
    // the run continues with lr = f32::MAX (resume takes the learning rate from the file)
    let ckpt = out.join("model.safetensors");
    let mut ck = Checkpoint::load(&ckpt).unwrap();
    ck.run.as_mut().unwrap().lr = f32::MAX;
    ck.save(&ckpt).unwrap();
    let before = fs::read(&ckpt).unwrap();

    let err = makemore(&args(10, &["--resume"])).failed();
    assert!(err.contains("a gradient was not finite at step 0"), "{err}");
    assert!(
        err.contains(&format!("{} (step 0) is untouched", s(&ckpt))),
        "{err}"
    );
    assert_eq!(
        fs::read(&ckpt).unwrap(),
        before,
        "the checkpoint was changed"
    );
}

// ------------------------------------------------------------------------------------------------
// Unwritable or full disk

#[cfg(unix)]
#[test]
fn full_disk_gives_a_clear_error_and_keeps_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());
    let out = dir.path().join("out");
    makemore(&tiny_args(&input, &out, 20, &[])).ok();
    let ckpt = out.join("model.safetensors");
    let before = fs::read(&ckpt).unwrap();

    // A file size limit makes writes past 1 KiB fail with EFBIG, as a full disk fails with
    // ENOSPC, also as root (SIGXFSZ ignored so the write returns the error). The checkpoint is
    // 3.5 KB, so the first save fails partway through.
    let mut cmd = vec!["trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\"".to_string()];
    cmd.push(env!("CARGO_BIN_EXE_makemore").into());
    cmd.extend(tiny_args(
        &input,
        &out,
        40,
        &["--resume", "--checkpoint-every", "5"],
    ));
    let o = Command::new("sh").arg("-c").args(&cmd).output().unwrap();
    let run = common::Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    let err = run.failed();
    assert!(
        err.contains(&format!("cannot write {}", s(&ckpt))) && err.contains("disk not full"),
        "{err}"
    );
    assert!(err.contains("File too large"), "{err}");
    assert_eq!(fs::read(&ckpt).unwrap(), before, "the checkpoint changed");
    assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    assert_eq!(ckpt_step(&ckpt), 20);
}

#[cfg(unix)]
#[test]
fn unwritable_out_dir_gives_a_clear_error_and_keeps_the_previous_checkpoint() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());

    // an --out whose parent is a file: cannot even be created
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let bad = file.join("out");
    let err = makemore(&tiny_args(&input, &bad, 5, &[])).failed();
    assert!(
        err.contains(&format!("cannot create output directory {}", s(&bad))),
        "{err}"
    );

    // a read-only --out holding a checkpoint
    let out = dir.path().join("out");
    makemore(&tiny_args(&input, &out, 10, &[])).ok();
    let ckpt = out.join("model.safetensors");
    let before = fs::read(&ckpt).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o555)).unwrap();
    let probe = out.join("probe");
    if fs::write(&probe, b"").is_ok() {
        // root ignores the mode: the full-disk test covers this case by a file size limit
        let _ = fs::remove_file(&probe);
        eprintln!("skipped the read-only directory case: running as root");
    } else {
        let err = makemore(&tiny_args(&input, &out, 20, &["--resume"])).failed();
        assert!(err.contains(&format!("cannot write {}", s(&ckpt))), "{err}");
        assert_eq!(fs::read(&ckpt).unwrap(), before);
    }
    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
}

// ------------------------------------------------------------------------------------------------
// Loading refuses corrupt or mismatched checkpoints

/// `eval` of `ckpt` on `input`: its error (it must fail cleanly, naming the file).
fn eval_err(ckpt: &Path, input: &Path) -> String {
    let err = makemore(&["eval", "--checkpoint", s(ckpt), "--input", s(input)]).failed();
    assert!(err.contains(s(ckpt)), "{err}");
    err
}

/// A tensor as the reference crate gives it: name, dtype, shape, bytes.
type RefTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);
/// Metadata as (key, value).
type Meta<'a> = Vec<(&'a str, String)>;

/// Writes `tensors` and `metadata` with the reference crate.
fn reference_file(path: &Path, tensors: &[RefTensor], metadata: &[(&str, String)]) {
    let views = tensors.iter().map(|(n, d, shape, data)| {
        let v = safetensors::tensor::TensorView::new(*d, shape.clone(), data).unwrap();
        (n.clone(), v)
    });
    let meta = Some(
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    );
    fs::write(path, safetensors::serialize(views, &meta).unwrap()).unwrap();
}

#[test]
fn loading_refuses_corrupt_and_mismatched_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = words(d);
    let out = d.join("out");
    makemore(&tiny_args(&input, &out, 5, &[])).ok();
    let ckpt = out.join("model.safetensors");
    makemore(&["eval", "--checkpoint", s(&ckpt), "--input", s(&input)]).ok();
    let bytes = fs::read(&ckpt).unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let write = |name: &str, b: &[u8]| {
        let p = d.join(name);
        fs::write(&p, b).unwrap();
        p
    };

    // truncated anywhere
    for len in [
        0,
        5,
        8,
        header_end / 2,
        header_end,
        header_end + 100,
        bytes.len() - 1,
    ] {
        let p = write(&format!("truncated-{len}.safetensors"), &bytes[..len]);
        let err = eval_err(&p, &input);
        if len < 8 || len >= header_end {
            assert!(err.contains("truncated"), "{len}: {err}");
        }
    }
    // a flipped bit in the tensor data: the checksum
    for at in [header_end, (header_end + bytes.len()) / 2, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let err = eval_err(&write("flipped.safetensors", &b), &input);
        assert!(
            err.contains("corrupt") && err.contains("checksum"),
            "{at}: {err}"
        );
    }

    // the tensors as the reference crate reads them, and the metadata, to rewrite variants
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<RefTensor> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: Meta = meta
        .metadata()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "checksum")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let with = |name: &str, f: &dyn Fn(&mut Vec<RefTensor>, &mut Meta)| {
        let (mut t, mut m) = (tensors.clone(), meta.clone());
        f(&mut t, &mut m);
        let p = d.join(name);
        reference_file(&p, &t, &m);
        p
    };
    // the rewritten file without a checksum loads
    let plain = with("plain.safetensors", &|_, _| {});
    makemore(&["eval", "--checkpoint", s(&plain), "--input", s(&input)]).ok();

    // wrong dtype: W1 as F16 (half the bytes)
    let p = with("f16.safetensors", &|t, _| {
        let w1 = t.iter_mut().find(|x| x.0 == "W1").unwrap();
        w1.1 = safetensors::Dtype::F16;
        w1.3.truncate(w1.3.len() / 2);
    });
    let err = eval_err(&p, &input);
    assert!(
        err.contains("W1") && err.contains("F16") && err.contains("only F32"),
        "{err}"
    );
    // wrong shape: W2 (H,V) stored as (V,H)
    let p = with("shape.safetensors", &|t, _| {
        let w2 = t.iter_mut().find(|x| x.0 == "W2").unwrap();
        w2.2.reverse();
    });
    let err = eval_err(&p, &input);
    assert!(
        err.contains("W2") && err.contains("expected (16, "),
        "{err}"
    );
    // config metadata disagreeing with the shapes
    for (key, value) in [("hidden", "17"), ("embedding", "5"), ("context", "4")] {
        let p = with(&format!("{key}.safetensors"), &|_, m| {
            m.iter_mut().find(|x| x.0 == key).unwrap().1 = value.into();
        });
        let err = eval_err(&p, &input);
        assert!(
            err.contains(key) || err.contains("context length"),
            "{key}: {err}"
        );
    }
    // vocabulary metadata that does not fit C
    let p = with("vocab.safetensors", &|_, m| {
        m.iter_mut().find(|x| x.0 == "vocab").unwrap().1.push('z');
    });
    let err = eval_err(&p, &input);
    assert!(err.contains("metadata vocab"), "{err}");
    // a vocabulary that does not match the data
    let err = eval_err(&ckpt, &names_path());
    assert!(err.contains("vocabulary differs"), "{err}");
    let err = makemore(&tiny_args(&names_path(), &out, 10, &["--resume"])).failed();
    assert!(err.contains("differs"), "{err}");
}

// ------------------------------------------------------------------------------------------------
// A closed stdout

/// Runs makemore with stdout a pipe whose reading end is closed before it writes anything.
fn with_closed_stdout(args: &[String]) -> common::Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    common::Run {
        code: o.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn closed_stdout_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());
    let out = dir.path().join("out");
    // train still writes its checkpoint
    let mut args = tiny_args(&input, &out, 5, &[]);
    let samples = args.iter().position(|a| a == "--samples").unwrap();
    args[samples + 1] = "3".into();
    let run = with_closed_stdout(&args).ok();
    assert!(run.stderr.is_empty(), "{}", run.dump());
    let ckpt = out.join("model.safetensors");
    assert_eq!(ckpt_step(&ckpt), 5);
    let str_args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for args in [
        str_args(&["eval", "--checkpoint", s(&ckpt), "--input", s(&input)]),
        str_args(&[
            "eval",
            "--checkpoint",
            s(&ckpt),
            "--input",
            s(&input),
            "--json",
        ]),
        str_args(&["sample", "--checkpoint", s(&ckpt), "--input", s(&input)]),
        str_args(&[
            "gradcheck",
            "--input",
            s(&names_path()),
            "--fd-samples",
            "2",
        ]),
    ] {
        let run = with_closed_stdout(&args);
        assert!(
            run.success() && !run.stderr.contains("panicked"),
            "{args:?}: {}",
            run.dump()
        );
    }
}
