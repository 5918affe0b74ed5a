//! The web session, natively: the same calls the page's worker makes, checked against the CLI's
//! library (the browser test, `web/e2e/e2e.mjs`, then checks the wasm against the `makemore`
//! binary).

use std::path::Path;

use cli::checkpoint::Checkpoint;
use cli::dataset::Dataset;
use cli::eval::calibrate_and_evaluate;
use makemore_core::rng::TRAIN_SEED;
use makemore_core::simd::{Isa, Kernels};
use makemore_web::json::Json;
use makemore_web::Session;

fn names() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: these tests need makemore's names.txt (put shared/ beside the repository)",
            path.display()
        )
    })
}

fn field<'a>(v: &'a Json, key: &str) -> &'a Json {
    match v {
        Json::Obj(fields) => &fields.iter().find(|(k, _)| *k == key).expect(key).1,
        _ => panic!("not an object: {v}"),
    }
}

fn f64_of(v: &Json) -> f64 {
    match v {
        Json::F64(x) => *x,
        _ => panic!("not an f64: {v}"),
    }
}

#[test]
fn a_run_saves_a_checkpoint_the_cli_evaluates_to_the_same_losses() {
    let mut s = Session::default();
    let info = s.load_words(&names()).unwrap();
    assert_eq!(field(&info, "words"), &Json::Int(32033));
    s.init(TRAIN_SEED, Isa::Scalar, 1500, 0.1, 1000).unwrap();
    let progress = s.train(1000).unwrap();
    assert_eq!(field(&progress, "done"), &Json::Bool(false));
    let progress = s.train(1000).unwrap();
    assert_eq!(field(&progress, "step"), &Json::Int(1500));
    assert_eq!(field(&progress, "done"), &Json::Bool(true));
    // the decay step: lr / 10 from step 1000
    assert_eq!(field(&progress, "lr"), &Json::F32(0.01));
    match field(&progress, "windows") {
        Json::Arr(w) if w.len() == 1 => assert!(f64_of(&w[0]) < 3.0, "{}", w[0]),
        w => panic!("one complete window expected: {w}"),
    }
    let losses = s.evaluate().unwrap();
    let bytes = s.save().unwrap();

    // the CLI's reading and evaluation of the saved file
    let ck = Checkpoint::from_bytes(&bytes, "web.safetensors".as_ref()).unwrap();
    assert_eq!(ck.run.as_ref().map(|r| r.step), Some(1500));
    assert!(ck.bn.is_some(), "the saved model is calibrated");
    let ds = Dataset::from_words(
        cli::data::parse_words(&names(), "names.txt".as_ref()).unwrap(),
        3,
    )
    .unwrap();
    let splits = [&ds.train, &ds.val, &ds.test].map(|e| (&e.x[..], &e.y[..]));
    let (bnmean, bnvar, cli_losses) =
        calibrate_and_evaluate(&Kernels::scalar(), ck.params_ref(), &splits, 0).unwrap();
    assert_eq!(Some((bnmean, bnvar)), ck.bn);
    for (i, name) in ["train", "val", "test"].into_iter().enumerate() {
        assert_eq!(f64_of(field(&losses, name)), cli_losses[i], "{name}");
    }

    // a loaded checkpoint samples as the trained model does
    let names_before = s.sample(20, 7, 1.0, 0).unwrap().to_string();
    let mut t = Session::default();
    t.load_words(&names()).unwrap();
    t.load_checkpoint(&bytes, Isa::Scalar).unwrap();
    assert_eq!(t.sample(20, 7, 1.0, 0).unwrap().to_string(), names_before);
    assert!(names_before.contains("\"from\":\"new\"") || names_before.contains("in train"));
}

#[test]
fn a_loaded_checkpoint_trains_on_as_the_run_does() {
    let mut s = Session::default();
    s.load_words(&names()).unwrap();
    s.init(TRAIN_SEED, Isa::Scalar, 3000, 0.1, 2500).unwrap();
    s.train(1500).unwrap();
    let bytes = s.save().unwrap();
    let mut t = Session::default();
    t.load_words(&names()).unwrap();
    let info = t.load_checkpoint(&bytes, Isa::Scalar).unwrap();
    let run = field(&info, "run");
    assert_eq!(field(run, "step"), &Json::Int(1500));
    assert_eq!(field(run, "steps"), &Json::Int(3000));
    assert_eq!(field(run, "decay_step"), &Json::Int(2500));
    let (a, b) = (s.train(1500).unwrap(), t.train(1500).unwrap());
    assert_eq!(field(&a, "loss"), field(&b, "loss"));
    assert_eq!(field(&b, "done"), &Json::Bool(true));
    // the loaded run's windows start at the next whole window, as loss.csv's rows do
    assert_eq!(field(&b, "windows_from"), &Json::Int(2000));
    let (sw, tw) = (s.model.as_ref().unwrap(), t.model.as_ref().unwrap());
    assert_eq!((sw.windows.len(), tw.windows.len()), (3, 1));
    assert_eq!(sw.windows[2].to_bits(), tw.windows[0].to_bits());
    assert_eq!(s.model.unwrap().params, t.model.unwrap().params);
}

#[test]
fn the_gradient_check_passes_on_every_row() {
    let mut s = Session::default();
    s.load_words(&names()).unwrap();
    let g = s.gradcheck(TRAIN_SEED, 4).unwrap();
    match field(&g, "rows") {
        Json::Arr(rows) => assert_eq!(rows.len(), 26),
        r => panic!("{r}"),
    }
    assert_eq!(field(&g, "all_ok"), &Json::Bool(true), "{g}");
}

#[test]
fn calls_out_of_order_or_on_bad_input_are_errors() {
    let mut s = Session::default();
    let msg = |r: anyhow::Result<Json>| format!("{:#}", r.unwrap_err());
    assert!(msg(s.train(10)).contains("no word list"));
    assert!(msg(s.load_words(b"ab\0c\n")).contains("U+0000"));
    s.load_words(&names()).unwrap();
    assert!(msg(s.train(10)).contains("no model"));
    assert!(msg(s.init(1, Isa::Scalar, 10, f32::NAN, 5)).contains("learning rate"));
    s.init(1, Isa::Scalar, 10, 0.1, 5).unwrap();
    assert!(msg(s.sample(3, 1, 1.0, 0)).contains("not calibrated"));
    assert!(msg(s.load_checkpoint(b"not a checkpoint", Isa::Scalar))
        .contains("not a valid makemore checkpoint"));
    // a failed load leaves the model as it was
    s.train(10).unwrap();
}
