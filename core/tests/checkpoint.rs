//! Tests of `makemore_core::checkpoint`, the schema: the metadata's bytes as `makemore train`
//! writes them, the round trip of every key, and a named error for a missing key, a value of the
//! wrong type, or one that disagrees with the tensors; values a checkpoint may not hold (NaN,
//! infinities, a negative bnvar, an invalid lr or batch size) refused on loading and saving.

use makemore_core::checkpoint::{
    key, load_model, read_dims, read_metadata, save, saved_len, verify_checksum, Metadata,
    RunState, Schedule, FORMAT, MODEL_TENSOR_NAMES,
};
use makemore_core::crc32::crc32;
use makemore_core::rng::Generator;
use makemore_core::safetensors::{write, written_len, SafeTensors, SafetensorsError as E};
use makemore_core::{Dims, Params, PARAM_NAMES};

type Model = Params<f32, 27, 3, 10, 30, 64>;
const DIMS: Dims = Model::DIMS;
const VOCAB: &str = ".abcdefghijklmnopqrstuvwxyz";

fn model() -> Box<Model> {
    let mut p = Box::new(Model::ZERO);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for t in p.view_mut().tensors_mut() {
        for v in t {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *v = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
    }
    p
}

/// The run `makemore train --steps 200` records.
const RUN: RunState = RunState {
    step: 200,
    seed: 2147483647,
    steps: 200,
    batch_size: 32,
    lr: 0.1,
    lr_decay_step: 100000,
    schedule: Schedule::Step,
    fingerprint: None,
    optimizer: makemore_core::optim::Optimizer::Sgd,
    grad_clip: None,
    generator: Generator::Pcg,
};

fn saved(meta: &Metadata<'_>, with_bn: bool) -> Vec<u8> {
    let p = model();
    let (mean, var) = (vec![0.25f32; 64], vec![2.0f32; 64]);
    let bn = with_bn.then_some((mean.as_slice(), var.as_slice()));
    let mut out = vec![0u8; saved_len(DIMS, with_bn, meta)];
    let n = save(&mut out, p.view(), bn, meta).expect("save");
    assert_eq!(n, out.len(), "saved_len is the size written");
    out
}

fn header(file: &[u8]) -> &str {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    std::str::from_utf8(&file[8..8 + n]).unwrap()
}

/// The model's seven tensors with `metadata` as given (no checksum): a file edited by hand.
fn file_with(metadata: &[(&str, &str)]) -> Vec<u8> {
    let p = model();
    let shapes: [&[usize]; 7] = [
        &[27, 10],
        &[30, 64],
        &[64],
        &[64, 27],
        &[27],
        &[1, 64],
        &[1, 64],
    ];
    let tensors: Vec<(&str, &[usize], &[f32])> = PARAM_NAMES
        .iter()
        .zip(shapes)
        .zip(p.view().tensors())
        .map(|((n, s), d)| (*n, s, d))
        .collect();
    let mut out = vec![0u8; written_len(&tensors, metadata)];
    write(&mut out, &tensors, metadata).unwrap();
    out
}

/// The metadata of a complete checkpoint, without the checksum, as owned pairs.
fn full_entries() -> Vec<(&'static str, String)> {
    let f = saved(
        &Metadata {
            vocab: Some(VOCAB),
            run: Some(RUN),
            history: None,
        },
        false,
    );
    let st = SafeTensors::parse(&f).unwrap();
    let all = [
        key::FORMAT,
        key::VOCAB,
        key::CONTEXT,
        key::EMBEDDING,
        key::HIDDEN,
        key::STEP,
        key::SEED,
        key::STEPS,
        key::BATCH_SIZE,
        key::LR,
        key::LR_DECAY_STEP,
    ];
    all.iter()
        .map(|k| (*k, st.metadata_raw(k).unwrap().to_string()))
        .collect()
}

fn read_err(metadata: &[(&str, String)]) -> E {
    let m: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let f = file_with(&m);
    let st = SafeTensors::parse(&f).unwrap();
    let mut buf = [0u8; 64];
    read_metadata(&st, DIMS, &mut buf).expect_err("the metadata should be refused")
}

#[test]
fn the_model_tensor_names_extend_the_parameter_names() {
    assert_eq!(MODEL_TENSOR_NAMES[..7], PARAM_NAMES);
    assert_eq!(MODEL_TENSOR_NAMES[7..], ["bnmean", "bnvar"]);
}

/// The header `makemore train --input data/names.txt --steps 200 --samples 0 --threads 1` wrote
/// before the schema moved to the core (the code at 0c833f7), up to the checksum's value: the
/// keys, their order and the numbers' text are part of the format.
#[test]
fn metadata_bytes_are_those_makemore_train_wrote() {
    let f = saved(
        &Metadata {
            vocab: Some(VOCAB),
            run: Some(RUN),
            history: None,
        },
        true,
    );
    let h = header(&f);
    let want = r#"{"__metadata__":{"format":"makemore-rs/1","vocab":".abcdefghijklmnopqrstuvwxyz","context":"3","embedding":"10","hidden":"64","step":"200","seed":"2147483647","steps":"200","batch_size":"32","lr":"0.1","lr_decay_step":"100000","checksum":"crc32:"#;
    assert!(h.starts_with(want), "{h}");
    // without vocabulary and training state: format and config only
    let f = saved(&Metadata::default(), false);
    let want = r#"{"__metadata__":{"format":"makemore-rs/1","context":"3","embedding":"10","hidden":"64","checksum":"crc32:"#;
    assert!(header(&f).starts_with(want), "{}", header(&f));
}

#[test]
fn every_key_round_trips() {
    let runs = [
        RUN,
        RunState {
            step: u64::MAX,
            seed: 0,
            steps: u64::MAX,
            batch_size: usize::MAX,
            lr: f32::from_bits(1), // the smallest subnormal: the longest decimal text
            lr_decay_step: u64::MAX,
            schedule: Schedule::Cosine {
                warmup: u64::MAX,
                total: u64::MAX,
                min_lr: f32::from_bits(1),
            },
            fingerprint: Some(u64::MAX),
            optimizer: makemore_core::optim::Optimizer::Sgd,
            grad_clip: None,
            generator: Generator::TorchGeneric,
        },
        RunState {
            generator: Generator::Torch,
            ..RUN
        },
        RunState {
            lr: f32::MAX,
            ..RUN
        },
        RunState {
            lr: 1.0 / 3.0,
            batch_size: 2,
            ..RUN
        },
    ];
    let vocabs = [
        None,
        Some(VOCAB),
        Some(".\"\\\u{1}é€😀bcdefghijklmnopqrstu"),
    ];
    for vocab in vocabs {
        for run in runs.iter().cloned().map(Some).chain([None]) {
            for with_bn in [false, true] {
                // the history goes with the run, text with escapes included
                let history = run.as_ref().map(|_| "windows=1.5,2;\"\\\n");
                let meta = Metadata {
                    vocab,
                    run: run.clone(),
                    history,
                };
                let f = saved(&meta, with_bn);
                let st = SafeTensors::parse(&f).unwrap();
                assert_eq!(read_dims(&st, None).unwrap(), DIMS);
                let mut buf = [0u8; 256];
                let back = read_metadata(&st, DIMS, &mut buf).unwrap();
                assert_eq!(back.vocab, vocab);
                assert_eq!(back.history, history);
                let (a, b) = (back.run, run.clone());
                assert_eq!(
                    a.as_ref().map(|r| r.lr.to_bits()),
                    b.as_ref().map(|r| r.lr.to_bits())
                );
                assert_eq!(a, b);
            }
        }
    }
}

/// A training state that parses but cannot be a run's (a NaN, infinite, zero or negative `lr`,
/// a batch of fewer than 2) is refused on reading, naming the key and the value, and never
/// written.
#[test]
fn an_invalid_training_state_is_refused_naming_key_and_value() {
    let full = full_entries();
    let cases = [
        (key::LR, "NaN"),
        (key::LR, "inf"),
        (key::LR, "-inf"),
        (key::LR, "-0.1"),
        (key::LR, "0"),
        (key::LR, "-0"),
        (key::BATCH_SIZE, "1"),
        (key::BATCH_SIZE, "0"),
    ];
    for (k, v) in cases {
        let mut m = full.clone();
        m.iter_mut().find(|x| x.0 == k).unwrap().1 = v.into();
        let e = read_err(&m);
        assert!(
            matches!(e, E::InvalidMetadata { key, .. } if key == k),
            "{k} = {v}: {e:?}"
        );
        let text = e.to_string();
        assert!(text.contains(k) && text.contains(v), "{text}");
    }
    let p = model();
    let bad_runs = [
        RunState {
            lr: f32::NAN,
            ..RUN
        },
        RunState {
            lr: f32::INFINITY,
            ..RUN
        },
        RunState { lr: -0.1, ..RUN },
        RunState { lr: 0.0, ..RUN },
        RunState {
            batch_size: 1,
            ..RUN
        },
    ];
    for run in bad_runs {
        let meta = Metadata {
            vocab: Some(VOCAB),
            run: Some(run.clone()),
            history: None,
        };
        let mut out = vec![0u8; saved_len(DIMS, false, &meta)];
        let e = save(&mut out, p.view(), None, &meta).expect_err("an invalid run was saved");
        assert!(matches!(e, E::InvalidMetadata { .. }), "{run:?}: {e:?}");
        assert!(out.iter().all(|&b| b == 0), "{run:?}: bytes written");
    }
    // step > steps is a run resumed with a smaller --steps: valid
    let meta = Metadata {
        vocab: None,
        run: Some(RunState { steps: 100, ..RUN }),
        history: None,
    };
    let f = saved(&meta, false);
    let st = SafeTensors::parse(&f).unwrap();
    let mut buf = [0u8; 8];
    let back = read_metadata(&st, DIMS, &mut buf).unwrap();
    assert_eq!(back.run.unwrap().steps, 100);
}

/// The model's nine tensors as `save` writes them, with `meta`'s entries and a checksum that
/// matches the bytes, but without `save`'s checks: a file holding any values.
fn file_with_valid_checksum(p: &Model, mean: &[f32], var: &[f32]) -> Vec<u8> {
    let shapes: [&[usize]; 9] = [
        &[27, 10],
        &[30, 64],
        &[64],
        &[64, 27],
        &[27],
        &[1, 64],
        &[1, 64],
        &[1, 64],
        &[1, 64],
    ];
    let view = p.view();
    let data = view.tensors().into_iter().chain([mean, var]);
    let tensors: Vec<(&str, &[usize], &[f32])> = MODEL_TENSOR_NAMES
        .iter()
        .zip(shapes)
        .zip(data)
        .map(|((n, s), d)| (*n, s, d))
        .collect();
    // zlib's CRC-32 of every tensor's bytes in file order, as save_model computes it
    let bytes: Vec<u8> = tensors
        .iter()
        .flat_map(|(_, _, d)| d.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    let checksum = format!("crc32:{:08x}", crc32(&bytes));
    let metadata = [(key::FORMAT, FORMAT), (key::CHECKSUM, checksum.as_str())];
    let mut out = vec![0u8; written_len(&tensors, &metadata)];
    write(&mut out, &tensors, &metadata).unwrap();
    out
}

/// A NaN or an infinity in any of the nine tensors, or a negative bnvar, is refused by
/// `load_model` though the checksum is valid, naming the tensor and the index; `save` refuses
/// to write it and writes nothing.
#[test]
fn a_non_finite_value_or_a_negative_variance_is_refused_naming_tensor_and_index() {
    let h = DIMS.hidden;
    let mut cases: Vec<(&str, usize)> = PARAM_NAMES
        .iter()
        .zip(model().view().tensors())
        .flat_map(|(n, t)| [(*n, 0), (*n, t.len() / 2 + 1), (*n, t.len() - 1)])
        .collect();
    cases.extend([
        ("bnmean", 0),
        ("bnmean", h - 1),
        ("bnvar", 5),
        ("bnvar", h - 1),
    ]);
    let meta = Metadata {
        vocab: Some(VOCAB),
        run: Some(RUN),
        history: None,
    };
    let bads = [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ];
    for (name, index) in cases {
        for (bad, shown) in bads {
            let mut p = model();
            let (mut mean, mut var) = (vec![0.25f32; h], vec![2.0f32; h]);
            match MODEL_TENSOR_NAMES.iter().position(|n| *n == name).unwrap() {
                7 => mean[index] = bad,
                8 => var[index] = bad,
                i => p.view_mut().tensors_mut()[i][index] = bad,
            }
            let want = E::NonFinite {
                tensor: MODEL_TENSOR_NAMES.iter().find(|n| **n == name).unwrap(),
                index,
                bits: bad.to_bits(),
            };
            assert_eq!(want.to_string(), format!("{name}[{index}] is {shown}"));

            let f = file_with_valid_checksum(&p, &mean, &var);
            let st = SafeTensors::parse(&f).unwrap();
            assert!(
                verify_checksum(&st).unwrap().is_some(),
                "the checksum is valid"
            );
            let mut q = Box::new(Model::ZERO);
            let (mut m2, mut v2) = (vec![0f32; h], vec![0f32; h]);
            let got = load_model(&st, &mut q.view_mut(), Some((&mut m2, &mut v2)));
            assert_eq!(got, Err(want), "{name}[{index}] = {shown}");
            assert!(q
                .view()
                .tensors()
                .iter()
                .all(|t| t.iter().all(|x| *x == 0.0)));

            let mut out = vec![0u8; saved_len(DIMS, true, &meta)];
            let bn = Some((mean.as_slice(), var.as_slice()));
            assert_eq!(save(&mut out, p.view(), bn, &meta), Err(want));
            assert!(
                out.iter().all(|&b| b == 0),
                "{name}[{index}]: bytes written"
            );
        }
    }
    // bnvar < 0: named; bnvar = -0.0 or 0 and a negative bnmean are valid
    let p = model();
    let mean = vec![-0.25f32; h];
    let mut var = vec![2.0f32; h];
    var[3] = -0.5;
    let f = file_with_valid_checksum(&p, &mean, &var);
    let st = SafeTensors::parse(&f).unwrap();
    let mut q = Box::new(Model::ZERO);
    let (mut m2, mut v2) = (vec![0f32; h], vec![0f32; h]);
    let want = E::NegativeVariance {
        index: 3,
        bits: (-0.5f32).to_bits(),
    };
    let got = load_model(&st, &mut q.view_mut(), Some((&mut m2, &mut v2)));
    assert_eq!(got, Err(want));
    assert_eq!(
        want.to_string(),
        "bnvar[3] is -0.5: a variance cannot be negative"
    );
    let mut out = vec![0u8; saved_len(DIMS, true, &meta)];
    let bn = Some((mean.as_slice(), var.as_slice()));
    assert_eq!(save(&mut out, p.view(), bn, &meta), Err(want));
    var[3] = -0.0;
    var[4] = 0.0;
    let f = file_with_valid_checksum(&p, &mean, &var);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(
        load_model(&st, &mut q.view_mut(), Some((&mut m2, &mut v2))),
        Ok(true)
    );
    assert_eq!((m2, v2), (mean, var));
}

#[test]
fn a_file_without_metadata_reads_as_empty() {
    let f = file_with(&[]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(
        read_metadata(&st, DIMS, &mut []).unwrap(),
        Metadata::default()
    );
    // unknown keys are ignored
    let f = file_with(&[("made_by", "torch")]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(
        read_metadata(&st, DIMS, &mut []).unwrap(),
        Metadata::default()
    );
}

#[test]
fn a_missing_key_of_the_training_state_is_named() {
    let full = full_entries();
    for k in key::RUN {
        let m: Vec<_> = full.iter().filter(|(x, _)| *x != k).cloned().collect();
        let e = read_err(&m);
        assert!(
            matches!(e, E::MissingMetadata { key, .. } if key == k),
            "{k}: {e:?}"
        );
        assert!(e.to_string().contains(k), "{e}");
    }
    // The config and the vocabulary are optional each (files from PyTorch have none).
    for k in [
        key::FORMAT,
        key::VOCAB,
        key::CONTEXT,
        key::EMBEDDING,
        key::HIDDEN,
    ] {
        let m: Vec<(&str, &str)> = full
            .iter()
            .filter(|(x, _)| *x != k)
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let f = file_with(&m);
        let st = SafeTensors::parse(&f).unwrap();
        let mut buf = [0u8; 64];
        let got = read_metadata(&st, DIMS, &mut buf).unwrap();
        assert_eq!(got.run, Some(RUN), "{k}");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let full = full_entries();
    let integers = [
        key::CONTEXT,
        key::EMBEDDING,
        key::HIDDEN,
        key::STEP,
        key::SEED,
        key::STEPS,
        key::BATCH_SIZE,
        key::LR_DECAY_STEP,
    ];
    let bad = [
        "",
        "x",
        "-1",
        "+1",
        "1.5",
        "1e3",
        " 3",
        "18446744073709551616",
    ];
    for k in integers {
        for v in bad {
            let mut m = full.clone();
            m.iter_mut().find(|x| x.0 == k).unwrap().1 = v.into();
            let e = read_err(&m);
            assert!(
                matches!(e, E::InvalidMetadata { key, .. } if key == k),
                "{k} = {v:?}: {e:?}"
            );
            assert!(e.to_string().contains(k), "{e}");
        }
    }
    for v in ["", "fast", "0.1.", "0,1"] {
        let mut m = full.clone();
        m.iter_mut().find(|x| x.0 == key::LR).unwrap().1 = v.into();
        let e = read_err(&m);
        assert!(
            matches!(e, E::InvalidMetadata { key: key::LR, .. }),
            "{v:?}: {e:?}"
        );
    }
    // the schedule and the data fingerprint, added to a file with the training state
    let cases = [
        (key::LR_SCHEDULE, "step"),
        (key::LR_SCHEDULE, "cosine"),
        (key::LR_SCHEDULE, "cosine warmup=1 total=2"),
        (key::LR_SCHEDULE, "cosine warmup=1 total=2 min_lr=x"),
        (key::LR_SCHEDULE, "cosine warmup=1 total=2 min_lr=0.1 more"),
        (key::LR_SCHEDULE, "cosine total=2 warmup=1 min_lr=0.1"),
        (key::FINGERPRINT, "0123456789abcdef"),
        (key::FINGERPRINT, "fnv1a64:0123456789ABCDEF"),
        (key::FINGERPRINT, "fnv1a64:0123456789abcde"),
        (key::FINGERPRINT, "fnv1a64:+123456789abcdef"),
        (key::OPTIMIZER, "adam"),
        (key::OPTIMIZER, "adamw"),
        (key::OPTIMIZER, "adamw beta1=0.9 beta2=0.99 eps=1e-8"),
        (
            key::OPTIMIZER,
            "adamw beta2=0.99 beta1=0.9 eps=1e-8 weight_decay=0.01",
        ),
        (
            key::OPTIMIZER,
            "adamw beta1=1.5 beta2=0.99 eps=1e-8 weight_decay=0.01",
        ),
        (key::OPTIMIZER, "sgd grad_clip=0"),
        (key::OPTIMIZER, "sgd grad_clip=NaN"),
        (key::OPTIMIZER, "sgd grad_clip=1 more=2"),
        (key::RNG, "Torch"),
        (key::RNG, "mt19937"),
        (key::RNG, ""),
    ];
    for (k, v) in cases {
        let mut m = full.clone();
        m.push((k, v.into()));
        let e = read_err(&m);
        assert!(
            matches!(e, E::InvalidMetadata { key, .. } if key == k),
            "{k} = {v:?}: {e:?}"
        );
    }
}

#[test]
fn a_value_that_disagrees_is_named() {
    let full = full_entries();
    let with = |k: &str, v: &str| {
        let mut m = full.clone();
        m.iter_mut().find(|x| x.0 == k).unwrap().1 = v.into();
        read_err(&m)
    };
    assert!(matches!(
        with(key::FORMAT, "makemore-rs/2"),
        E::UnknownFormat { .. }
    ));
    assert!(matches!(
        with(key::EMBEDDING, "11"),
        E::ConfigMismatch {
            key: key::EMBEDDING,
            expected: 10,
            got: 11
        }
    ));
    assert!(matches!(
        with(key::HIDDEN, "200"),
        E::ConfigMismatch {
            key: key::HIDDEN,
            expected: 64,
            got: 200
        }
    ));
    assert!(matches!(
        with(key::CONTEXT, "4"),
        E::ContextMismatch {
            expected: 3,
            got: 4,
            ..
        }
    ));
    assert!(matches!(
        with(key::VOCAB, &VOCAB[1..]),
        E::VocabMismatch {
            symbols: 26,
            vocab: 27
        }
    ));
    // and the writer refuses a vocabulary that does not fit C
    let p = model();
    let meta = Metadata {
        vocab: Some("abc"),
        run: None,
        history: None,
    };
    let mut out = vec![0u8; saved_len(DIMS, false, &meta)];
    assert!(matches!(
        save(&mut out, p.view(), None, &meta),
        Err(E::VocabMismatch {
            symbols: 3,
            vocab: 27
        })
    ));
    // a vocabulary larger than the caller's buffer: an error, not a truncation
    let f = saved(
        &Metadata {
            vocab: Some(VOCAB),
            run: None,
            history: None,
        },
        false,
    );
    let st = SafeTensors::parse(&f).unwrap();
    assert!(matches!(
        read_metadata(&st, DIMS, &mut [0u8; 26]),
        Err(E::BufferTooSmall { needed: 27 })
    ));
    assert_eq!(FORMAT, "makemore-rs/1");
}

/// The optimiser (AdamW's hyperparameters, gradient clipping) and its state (m then v) round
/// trip; plain SGD without clipping writes no `optimizer` entry and no state, so the default
/// run's bytes are unchanged.
#[test]
fn the_optimizer_and_its_state_round_trip() {
    use makemore_core::checkpoint::{
        read_optimizer_state, save_with_state, saved_len_with_state, OPTIMIZER_STATE,
    };
    use makemore_core::optim::{AdamW, Optimizer};
    let p = model();
    let n = DIMS.num_params();
    let state: Vec<f32> = (0..2 * n).map(|i| i as f32 * 1e-3).collect();
    for (optimizer, grad_clip) in [
        (Optimizer::AdamW(AdamW::MAKEMORE), None),
        (
            Optimizer::AdamW(AdamW {
                weight_decay: 0.5,
                ..AdamW::MAKEMORE
            }),
            Some(1.25),
        ),
        (Optimizer::Sgd, Some(0.5)),
    ] {
        let run = RunState {
            optimizer,
            grad_clip,
            ..RUN
        };
        let st_len = optimizer.state_len(n);
        let meta = Metadata {
            vocab: Some(VOCAB),
            run: Some(run.clone()),
            history: None,
        };
        let mut out = vec![0u8; saved_len_with_state(DIMS, false, st_len, &meta)];
        let len = save_with_state(&mut out, p.view(), None, &state[..st_len], &meta).unwrap();
        assert_eq!(len, out.len());
        let st = SafeTensors::parse(&out).unwrap();
        let mut buf = [0u8; 64];
        let back = read_metadata(&st, DIMS, &mut buf).unwrap();
        assert_eq!(back.run, Some(run));
        let mut got = vec![0f32; st_len];
        assert_eq!(read_optimizer_state(&st, &mut got).unwrap(), st_len > 0);
        assert_eq!(got, state[..st_len]);
        let mut q = Box::new(Model::ZERO);
        load_model(&st, &mut q.view_mut(), None).unwrap();
        // a state of the wrong length is refused
        if st_len > 0 {
            let mut short = vec![0f32; st_len - 1];
            assert!(matches!(
                read_optimizer_state(&st, &mut short),
                Err(E::ShapeMismatch {
                    tensor: OPTIMIZER_STATE,
                    ..
                })
            ));
        }
    }
    // plain SGD: no entry, no state tensor
    let meta = Metadata {
        vocab: Some(VOCAB),
        run: Some(RUN),
        history: None,
    };
    let f = saved(&meta, false);
    let st = SafeTensors::parse(&f).unwrap();
    assert!(st.metadata_raw(key::OPTIMIZER).is_none());
    assert!(st.tensor(OPTIMIZER_STATE).is_none());
    // a NaN in the state is refused on saving, naming the tensor
    let mut bad = state.clone();
    bad[7] = f32::NAN;
    let run = RunState {
        optimizer: Optimizer::AdamW(AdamW::MAKEMORE),
        ..RUN
    };
    let meta = Metadata {
        vocab: None,
        run: Some(run),
        history: None,
    };
    let mut out = vec![0u8; saved_len_with_state(DIMS, false, 2 * n, &meta)];
    let e = save_with_state(&mut out, p.view(), None, &bad, &meta).unwrap_err();
    assert!(
        matches!(
            e,
            E::NonFinite {
                tensor: OPTIMIZER_STATE,
                index: 7,
                ..
            }
        ),
        "{e:?}"
    );
}
