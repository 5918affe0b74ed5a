//! Input and output of the commands, driven through the binary: word lists split as Python's
//! `str.splitlines()`, control characters and over-long words refused, bounded reads of the word
//! list and the checkpoint (`/dev/zero`), `--input -` from stdin, `sample` streaming its names,
//! stdout write errors, and the messages of `--prefix` and of a split too small to evaluate.

#[allow(dead_code)]
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::checkpoint::Checkpoint;
use common::{makemore, names_path, pytorch_checkpoint, Run};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// 30 names of names.txt, in the order the tests write them.
const WORDS: &str = "emma olivia ava isabella sophia charlotte mia amelia harper evelyn abigail \
                     emily elizabeth mila ella avery sofia camila aria scarlett victoria madison \
                     luna grace chloe penelope layla riley zoey nora";

/// Every line boundary of Python's `str.splitlines()`, "\r\n" as one.
const BOUNDARIES: [&str; 11] = [
    "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\u{85}", "\u{2028}", "\u{2029}",
];

/// `train` of one step of a tiny model on `input` into `out`, on one thread.
fn train_one_step(input: &str, out: &Path, stdin: Option<&[u8]>) -> Run {
    let args = [
        "train",
        "--input",
        input,
        "--out",
        s(out),
        "--steps",
        "1",
        "--hidden",
        "4",
        "--embedding",
        "2",
        "--batch-size",
        "4",
        "--samples",
        "0",
        "--threads",
        "1",
    ];
    match stdin {
        Some(bytes) => with_stdin(&args, bytes),
        None => makemore(&args),
    }
}

/// Runs `makemore` with `args` and `bytes` on its stdin.
fn with_stdin(args: &[&str], bytes: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the makemore binary");
    let mut stdin = child.stdin.take().unwrap();
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test if it takes longer.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Run {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The checkpoint's vocabulary as a string and its parameters.
fn vocab_and_params(out: &Path) -> (String, Vec<f32>) {
    let ck = Checkpoint::load(&out.join("model.safetensors")).unwrap_or_else(|e| panic!("{e:#}"));
    let vocab = ck.vocab.expect("vocabulary in the metadata");
    (vocab.symbols().iter().collect(), ck.params)
}

/// The examples per split of a run's metrics.json, as (train, val, test).
fn examples(out: &Path) -> (f64, f64, f64) {
    let m = common::metrics(out);
    let e = &m["examples"];
    let n = |k| common::number(e, k);
    (n("train"), n("val"), n("test"))
}

// python3 -c "
// import random
// W='emma olivia ... nora'.split()   # WORDS
// B=['\n','\r\n','\r','\x0b','\x0c','\x1c','\x1d','\x1e','\x85','\u2028','\u2029']
// for b in B:
//     w=[l for l in (b.join(W)+b).splitlines() if l.strip()]
//     v=''.join(sorted(set(''.join(w))))
//     random.seed(42); random.shuffle(w); n1=int(0.8*len(w)); n2=int(0.9*len(w))
//     print(repr(b), len(w), '.'+v, [sum(len(x)+1 for x in s) for s in (w[:n1],w[n1:n2],w[n2:])])"
// -> every boundary: 30 .abcdefghilmnoprstuvyz [156, 20, 23]
const PY_VOCAB: &str = ".abcdefghilmnoprstuvyz";
const PY_EXAMPLES: (f64, f64, f64) = (156.0, 20.0, 23.0);

#[test]
fn each_line_boundary_splits_as_python_splitlines() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<&str> = WORDS.split(' ').collect();
    // the reference: the same words one per "\n" line
    let base = dir.path().join("base.txt");
    fs::write(&base, words.join("\n") + "\n").unwrap();
    let base_out = dir.path().join("base");
    train_one_step(s(&base), &base_out, None).ok();
    let (vocab, params) = vocab_and_params(&base_out);
    assert_eq!(vocab, PY_VOCAB);
    assert_eq!(examples(&base_out), PY_EXAMPLES);

    for (i, b) in BOUNDARIES.iter().enumerate() {
        let path = dir.path().join(format!("words{i}.txt"));
        fs::write(&path, words.join(b) + b).unwrap();
        let out = dir.path().join(format!("out{i}"));
        let run = train_one_step(s(&path), &out, None);
        let shown = b.escape_unicode().to_string();
        assert!(run.success(), "boundary {shown}: {}", run.dump());
        let (v, p) = vocab_and_params(&out);
        assert_eq!(v, PY_VOCAB, "boundary {shown}: vocabulary");
        assert_eq!(examples(&out), PY_EXAMPLES, "boundary {shown}: split");
        assert!(p == params, "boundary {shown}: another split or order");
    }
}

#[test]
fn mixed_boundaries_and_blank_lines_match_python() {
    // python3 -c "
    // import random
    // W='emma olivia ... nora'.split(); B=[...]   # WORDS, BOUNDARIES
    // t=''.join(x+B[i%len(B)]+('\r\r\n' if i%7==6 else '') for i,x in enumerate(W))
    // L=t.splitlines(); w=[l for l in L if l.strip()]; print(len(L), len(w))
    // random.seed(42); random.shuffle(w); n1=int(0.8*len(w)); n2=int(0.9*len(w))
    // print(''.join(sorted(set(''.join(w)))), [sum(len(x)+1 for x in s) for s in (w[:n1],w[n1:n2],w[n2:])])"
    // -> 38 30 / abcdefghilmnoprstuvyz [156, 20, 23]: 8 blank lines, skipped
    let dir = tempfile::tempdir().unwrap();
    let text: String = WORDS
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            let blank = if i % 7 == 6 { "\r\r\n" } else { "" };
            format!("{w}{}{blank}", BOUNDARIES[i % BOUNDARIES.len()])
        })
        .collect();
    let path = dir.path().join("mixed.txt");
    fs::write(&path, text).unwrap();
    let out = dir.path().join("out");
    let run = train_one_step(s(&path), &out, None).ok();
    assert!(
        run.stdout.contains("30 words") && run.stdout.contains("8 blank lines"),
        "{}",
        run.dump()
    );
    assert_eq!(vocab_and_params(&out).0, PY_VOCAB);
    assert_eq!(examples(&out), PY_EXAMPLES);
}

#[test]
fn control_characters_are_refused_with_line_column_and_code_point() {
    let dir = tempfile::tempdir().unwrap();
    let names = WORDS.replace(' ', "\n");
    for (c, code) in [
        ('\0', "U+0000"),
        ('\t', "U+0009"),
        ('\x1b', "U+001B"),
        ('\x1f', "U+001F"),
        ('\x7f', "U+007F"),
        ('\u{80}', "U+0080"),
        ('\u{9f}', "U+009F"),
    ] {
        let path = dir.path().join(format!("{}.txt", u32::from(c)));
        fs::write(&path, format!("emma\nol{c}ivia\n{names}\n")).unwrap();
        let err = train_one_step(s(&path), &dir.path().join("out"), None).failed();
        let at = format!("{}:2:3:", path.display());
        assert!(err.contains(&at), "{code}: no {at} in {err}");
        assert!(
            err.contains(code) && err.contains("control character") && err.contains("remove"),
            "{code}: {err}"
        );
        let err = makemore(&["gradcheck", "--input", s(&path)]).failed();
        assert!(err.contains(&at) && err.contains(code), "gradcheck: {err}");
    }
    assert!(!dir.path().join("out").exists());
}

#[test]
fn word_longer_than_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(257);
    let path = dir.path().join("long.txt");
    fs::write(
        &path,
        format!("emma\nava\n{long}\n{}\n", WORDS.replace(' ', "\n")),
    )
    .unwrap();
    let err = train_one_step(s(&path), &dir.path().join("out"), None).failed();
    assert!(
        err.contains(&format!("{}:3:", path.display()))
            && err.contains("257 characters")
            && err.contains("limit of 256"),
        "{err}"
    );
    // 256 characters is allowed
    fs::write(
        &path,
        format!("emma\n{}\n{}\n", &long[1..], WORDS.replace(' ', "\n")),
    )
    .unwrap();
    train_one_step(s(&path), &dir.path().join("out"), None).ok();
}

#[test]
fn dev_zero_is_refused_quickly_with_the_limit() {
    if !Path::new("/dev/zero").exists() {
        panic!("this test needs /dev/zero");
    }
    let ck = short_checkpoint();
    let names = names_path();
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_makemore"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let limit = Duration::from_secs(20);
    for cmd in ["eval", "sample"] {
        let child = spawn(&[cmd, "--checkpoint", "/dev/zero", "--input", s(&names)]);
        let err = wait_within(child, limit, cmd).failed();
        assert!(
            err.contains("/dev/zero") && err.contains("256 MiB") && err.contains("limit"),
            "{cmd}: {err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for args in [
        vec![
            "train",
            "--input",
            "/dev/zero",
            "--out",
            s(&out),
            "--steps",
            "1",
        ],
        vec!["eval", "--checkpoint", s(&ck), "--input", "/dev/zero"],
        vec!["gradcheck", "--input", "/dev/zero"],
    ] {
        let err = wait_within(spawn(&args), limit, args[0]).failed();
        assert!(
            err.contains("/dev/zero") && err.contains("64 MiB") && err.contains("limit"),
            "{}: {err}",
            args[0]
        );
    }
}

/// A checkpoint of a one-step tiny run on names.txt, shared by the tests of this file.
fn short_checkpoint() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("input-test-checkpoint");
        let _ = fs::remove_dir_all(&dir);
        let run = train_one_step(s(&names_path()), &dir, None);
        assert!(run.success(), "{}", run.dump());
        dir.join("model.safetensors")
    })
    .clone()
}

#[test]
fn stdin_input_equals_file_input() {
    let names = names_path();
    let bytes = fs::read(&names).unwrap();
    let ck = short_checkpoint();

    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("file"), dir.path().join("stdin"));
    train_one_step(s(&names), &a, None).ok();
    train_one_step("-", &b, Some(&bytes)).ok();
    assert!(
        vocab_and_params(&a) == vocab_and_params(&b),
        "train --input -"
    );

    for args in [
        vec!["eval", "--checkpoint", s(&ck), "--json"],
        vec!["sample", "--checkpoint", s(&ck), "--count", "50"],
        vec!["gradcheck", "--fd-samples", "2"],
    ] {
        let mut file_args = args.clone();
        file_args.extend(["--input", s(&names)]);
        let from_file = makemore(&file_args).ok();
        let mut stdin_args = args.clone();
        stdin_args.extend(["--input", "-"]);
        let from_stdin = with_stdin(&stdin_args, &bytes).ok();
        assert_eq!(from_file.stdout, from_stdin.stdout, "{}", args[0]);
        assert!(!from_file.stdout.is_empty());
    }
    // errors name stdin
    let err = with_stdin(&["eval", "--checkpoint", s(&ck), "--input", "-"], b"a\0b\n").failed();
    assert!(
        err.contains("<stdin>:1:2:") && err.contains("U+0000"),
        "{err}"
    );
}

#[test]
fn sample_prints_the_first_name_at_once_and_stops_when_stdout_closes() {
    let ck = short_checkpoint();
    let names = names_path();
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(["sample", "--checkpoint", s(&ck), "--input", s(&names)])
        .args(["--count", "10000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // read the first line on a thread, so that a slow binary fails instead of hanging
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // dropping the reader closes the pipe, like `| head -1`
    });
    let first = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no name within 10 s of `sample --count 10000000`: the names are not streamed");
        }
    };
    let took = t0.elapsed();
    assert!(first.contains('\t'), "{first:?}");
    // makemore stops drawing once the pipe is closed, quietly
    let run = wait_within(
        child,
        Duration::from_secs(10),
        "sample after the pipe closed",
    );
    assert!(
        run.success() && run.stderr.is_empty(),
        "first name after {took:?}; {}",
        run.dump()
    );
    // the first line is the first line of a short run
    let short = makemore(&[
        "sample",
        "--checkpoint",
        s(&ck),
        "--input",
        s(&names),
        "--count",
        "1",
    ])
    .ok();
    assert_eq!(first, short.stdout);
}

#[test]
fn stdout_write_error_is_an_error() {
    if !Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full");
    }
    let ck = short_checkpoint();
    let names = names_path();
    let cases: [&[&str]; 3] = [
        &["eval", "--json"],
        &["eval"],
        &["sample", "--count", "100"],
    ];
    for args in cases {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_makemore"))
            .args(args)
            .args(["--checkpoint", s(&ck), "--input", s(&names)])
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("error: cannot write to standard output") && err.contains("incomplete"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn prefix_messages() {
    let ck = short_checkpoint();
    let names = names_path();
    let sample = |prefix: &str| {
        makemore(&[
            "sample",
            "--checkpoint",
            s(&ck),
            "--input",
            s(&names),
            "--prefix",
            prefix,
        ])
    };
    let err = sample("an.").failed();
    assert!(
        err.contains("character 3 is '.'") && err.contains("reserved start/end token"),
        "{err}"
    );
    let err = sample("anX").failed();
    assert!(
        err.contains("character 3 is 'X' (U+0058)")
            && err.contains("not in the model's vocabulary")
            && err.contains("abcdefghijklmnopqrstuvwxyz"),
        "{err}"
    );
    let err = sample(&"a".repeat(300)).failed();
    assert!(
        err.contains("300 characters") && err.contains("at most 255"),
        "{err}"
    );
    let run = sample(&"a".repeat(255)).ok();
    assert_eq!(run.stdout.lines().count(), 20);
}

#[test]
fn a_split_too_small_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("pytorch.safetensors");
    fs::write(&ck, pytorch_checkpoint()).unwrap();
    // 26 letters in 5 words: the vocabulary of 27 the checkpoint has; int(0.8*5) = int(0.9*5) = 4
    let five = dir.path().join("five.txt");
    fs::write(&five, "abcdefghij\nklmnopqrs\ntuvwxyz\nab\ncd\n").unwrap();
    let eval = |split: &str| {
        makemore(&[
            "eval",
            "--checkpoint",
            s(&ck),
            "--input",
            s(&five),
            "--split",
            split,
        ])
    };
    for split in ["val", "all"] {
        let err = eval(split).failed();
        assert!(
            err.contains("the val split is empty")
                && err.contains("5 words")
                && err.contains("4 train, 0 val and 1 test")
                && err.contains("at least 6 words"),
            "{split}: {err}"
        );
    }
    eval("train").ok();
    // gradcheck's batch comes from the training split: one word leaves it empty
    let one = dir.path().join("one.txt");
    fs::write(&one, "abcdefghijklmnopqrstuvwxyz\n").unwrap();
    let err = makemore(&["gradcheck", "--input", s(&one)]).failed();
    assert!(
        err.contains("the train split is empty") && err.contains("at least 2 words"),
        "{err}"
    );
}
