//! Nothing non-finite is saved or loaded silently, driven through the binary: checkpoints holding
//! NaN or infinities with a valid checksum, a negative bnvar, an invalid lr or batch size in the
//! metadata are refused by `eval`, `sample` and `train --resume`, naming the tensor and element
//! (or the key and value); a batchnorm calibration that overflows is an error and leaves no
//! checkpoint holding it; `gradcheck` refuses inputs it cannot check. Tiny models on a generated
//! word list, so every run takes a fraction of a second.

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cli::checkpoint::Checkpoint;
use common::{generated_names, makemore};
use makemore_core::checkpoint::verify_checksum;
use makemore_core::crc32::crc32;
use makemore_core::safetensors::SafeTensors;

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

/// A trained tiny model (20 steps, with batchnorm statistics): its word list and checkpoint.
fn trained(dir: &Path) -> (PathBuf, PathBuf) {
    let input = words(dir);
    let out = dir.join("out");
    makemore(&tiny_args(&input, &out, 20, &[])).ok();
    (input, out.join("model.safetensors"))
}

/// The header length, the header and the byte buffer after it.
fn split_file(bytes: &[u8]) -> (usize, &str, &[u8]) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        n,
        std::str::from_utf8(&bytes[8..8 + n]).unwrap(),
        &bytes[8 + n..],
    )
}

/// Puts the checksum of the byte buffer into the header, as `makemore train` computes it (zlib's
/// CRC-32 of every tensor's bytes in file order, `"crc32:"` and 8 lowercase hex digits), and
/// checks with the core's reader that the checksum is valid.
fn reseal(bytes: &mut [u8]) {
    let (_, header, data) = split_file(bytes);
    let at = header.find("\"crc32:").expect("a checksum") + 7;
    let hex = format!("{:08x}", crc32(data));
    bytes[8 + at..8 + at + 8].copy_from_slice(hex.as_bytes());
    let st = SafeTensors::parse(bytes).unwrap();
    assert!(
        verify_checksum(&st).unwrap().is_some(),
        "the edited file's checksum is valid"
    );
}

/// A copy of the checkpoint `from` at `to` with element `index` of `tensor` set to `value` and
/// a valid checksum.
fn with_value(from: &Path, to: &Path, tensor: &str, index: usize, value: f32) {
    let mut bytes = fs::read(from).unwrap();
    let (n, header, _) = split_file(&bytes);
    let h: serde_json::Value = serde_json::from_str(header).unwrap();
    let begin = h[tensor]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + n + begin + 4 * index;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    reseal(&mut bytes);
    fs::write(to, bytes).unwrap();
}

/// A copy of the checkpoint `from` at `to` with the metadata value of `key` replaced by `value`
/// (the tensors and so the checksum unchanged).
fn with_metadata(from: &Path, to: &Path, key: &str, value: &str) {
    let bytes = fs::read(from).unwrap();
    let (_, header, data) = split_file(&bytes);
    let h: serde_json::Value = serde_json::from_str(header).unwrap();
    let old = h["__metadata__"][key].as_str().expect("the key is present");
    let (old, new) = (
        format!("\"{key}\":\"{old}\""),
        format!("\"{key}\":\"{value}\""),
    );
    assert_eq!(header.matches(&old).count(), 1, "{header}");
    let header = header.replace(&old, &new);
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    fs::write(to, out).unwrap();
}

/// Runs `eval`, `sample` and `train --resume` on `ckpt` (copied to `model.safetensors` of a
/// fresh output directory for the resume) and returns their errors; each must fail cleanly, and
/// the resume must leave the file as it was.
fn refused_by_every_loader(dir: &Path, input: &Path, ckpt: &Path) -> [String; 3] {
    let eval = makemore(&["eval", "--checkpoint", s(ckpt), "--input", s(input)]).failed();
    let sample = makemore(&[
        "sample",
        "--checkpoint",
        s(ckpt),
        "--input",
        s(input),
        "--count",
        "3",
    ])
    .failed();
    let out = dir.join("resume");
    fs::create_dir_all(&out).unwrap();
    let resumed = out.join("model.safetensors");
    fs::copy(ckpt, &resumed).unwrap();
    let before = fs::read(&resumed).unwrap();
    let resume = makemore(&tiny_args(input, &out, 40, &["--resume"])).failed();
    assert_eq!(
        fs::read(&resumed).unwrap(),
        before,
        "a refused resume changed the checkpoint"
    );
    fs::remove_dir_all(&out).unwrap();
    [eval, sample, resume]
}

// ------------------------------------------------------------------------------------------------
// Tensors

/// NaN or an infinity in any tensor, with a checksum that matches the bytes, is refused by
/// every command that loads a checkpoint, naming the tensor and the element, with advice.
#[test]
fn a_nan_or_infinite_tensor_value_with_a_valid_checksum_is_refused_by_eval_sample_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ckpt) = trained(dir.path());
    let bad = dir.path().join("bad.safetensors");
    let cases = [
        ("W1", 5, f32::NAN, "W1[5] is NaN"),
        ("W2", 17, f32::INFINITY, "W2[17] is inf"),
        ("C", 0, f32::NEG_INFINITY, "C[0] is -inf"),
        ("bngain", 15, f32::NAN, "bngain[15] is NaN"),
        ("bnmean", 3, f32::INFINITY, "bnmean[3] is inf"),
        ("bnvar", 9, f32::NAN, "bnvar[9] is NaN"),
    ];
    for (tensor, index, value, named) in cases {
        with_value(&ckpt, &bad, tensor, index, value);
        for err in refused_by_every_loader(dir.path(), &input, &bad) {
            // the file, then the element
            let named = format!(".safetensors: {named}");
            assert!(
                err.contains(&named) && err.contains("diverged") && err.contains("smaller --lr"),
                "{tensor}[{index}] = {value}: {err}"
            );
        }
    }
    // the untouched checkpoint still loads
    makemore(&["eval", "--checkpoint", s(&ckpt), "--input", s(&input)]).ok();
}

/// A negative bnvar (a variance) is refused, naming the element.
#[test]
fn a_negative_bnvar_is_refused_naming_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ckpt) = trained(dir.path());
    let bad = dir.path().join("bad.safetensors");
    with_value(&ckpt, &bad, "bnvar", 4, -0.5);
    for err in refused_by_every_loader(dir.path(), &input, &bad) {
        assert!(
            err.contains("bnvar[4] is -0.5") && err.contains("variance cannot be negative"),
            "{err}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Metadata

/// A NaN, infinite, zero or negative lr and a batch size outside 2..=65536 in the metadata are
/// refused, naming the key and the value.
#[test]
fn an_invalid_lr_or_batch_size_in_the_metadata_is_refused_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ckpt) = trained(dir.path());
    let bad = dir.path().join("bad.safetensors");
    let cases = [
        ("lr", "NaN"),
        ("lr", "-0.1"),
        ("lr", "inf"),
        ("lr", "0"),
        ("batch_size", "1"),
        ("batch_size", "65537"),
    ];
    for (key, value) in cases {
        with_metadata(&ckpt, &bad, key, value);
        for err in refused_by_every_loader(dir.path(), &input, &bad) {
            assert!(
                err.contains(key) && err.contains(value),
                "{key} = {value}: {err}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Batchnorm calibration and the losses

/// One step at lr 1e15 keeps the training loss finite (the batch's normalisation absorbs the
/// huge W1) but makes the calibration's variance overflow f32: the run fails, naming bnvar and
/// the hidden unit, and writes no checkpoint holding inf; a periodic checkpoint written before
/// stays, and `eval` of it (which calibrates, having no statistics) fails the same way.
#[test]
fn a_calibration_that_overflows_fails_the_run_and_writes_no_infinite_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = words(dir.path());
    let out = dir.path().join("one");
    let err = makemore(&tiny_args(&input, &out, 1, &["--lr", "1e15"])).failed();
    assert!(
        err.contains("calibration overflowed")
            && err.contains("bnvar[0] (hidden unit 0) is inf")
            && err.contains("smaller --lr"),
        "{err}"
    );
    assert!(
        !out.join("model.safetensors").exists(),
        "a checkpoint was written"
    );
    assert!(err.contains("saved nothing"), "{err}");

    // with a periodic checkpoint at step 1: it stays, finite and without statistics
    let out = dir.path().join("two");
    let every = ["--lr", "1e15", "--checkpoint-every", "1"];
    let err = makemore(&tiny_args(&input, &out, 2, &every)).failed();
    assert!(err.contains("calibration overflowed"), "{err}");
    let ckpt = out.join("model.safetensors");
    assert!(err.contains("(step 1) is untouched"), "{err}");
    let ck = Checkpoint::load(&ckpt).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(ck.run.expect("training state").step, 1);
    assert!(ck.bn.is_none());

    let err = makemore(&["eval", "--checkpoint", s(&ckpt), "--input", s(&input)]).failed();
    assert!(
        err.contains("calibration overflowed") && err.contains("is inf"),
        "{err}"
    );
}

/// Finite statistics but a W2 whose logits overflow: `eval` fails instead of printing NaN losses.
#[test]
fn a_loss_that_is_not_finite_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ckpt) = trained(dir.path());
    let mut bytes = fs::read(&ckpt).unwrap();
    let (n, header, _) = split_file(&bytes);
    let h: serde_json::Value = serde_json::from_str(header).unwrap();
    let range = &h["W2"]["data_offsets"];
    let (begin, end) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
    for (i, at) in (8 + n + begin as usize..8 + n + end as usize)
        .step_by(4)
        .enumerate()
    {
        let x: f32 = if i % 2 == 0 { 3e38 } else { -3e38 };
        bytes[at..at + 4].copy_from_slice(&x.to_le_bytes());
    }
    reseal(&mut bytes);
    let bad = dir.path().join("bad.safetensors");
    fs::write(&bad, bytes).unwrap();
    let err = makemore(&["eval", "--checkpoint", s(&bad), "--input", s(&input)]).failed();
    assert!(
        err.contains("mean loss") && err.contains("is NaN") && err.contains("smaller --lr"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------------------
// gradcheck

/// A word list of one word has an empty training split (80% of 1 is 0 words): a clear error.
/// `--fd-samples 0` would check nothing by finite differences and report success: refused.
#[test]
fn gradcheck_refuses_an_empty_training_split_and_zero_fd_samples() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.txt");
    fs::write(&one, "abcdefghijklmnopqrstuvwxyz\n").unwrap();
    let err = makemore(&["gradcheck", "--input", s(&one)]).failed();
    assert!(
        err.contains("one.txt")
            && err.contains("training split is empty")
            && err.contains("at least 2 words"),
        "{err}"
    );
    // the same 27 symbols in two words: one training word, and the check runs
    let two = dir.path().join("two.txt");
    fs::write(
        &two,
        "abcdefghijklmnopqrstuvwxyz\nzyxwvutsrqponmlkjihgfedcba\n",
    )
    .unwrap();
    makemore(&["gradcheck", "--input", s(&two)]).ok();

    let err = makemore(&["gradcheck", "--input", s(&two), "--fd-samples", "0"]).failed();
    assert!(err.contains("--fd-samples 0"), "{err}");
}
