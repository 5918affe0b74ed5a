//! Tests of `makemore_core::safetensors`: round trips, interoperability with the reference
//! `safetensors` crate, one test per error variant, and fuzzing by proptest.

use std::collections::HashMap;

use makemore_core::crc32::{crc32, Crc32};
use makemore_core::safetensors::{
    load_model, read_dims, save_model, saved_model_len, unescape_json_str, verify_checksum, write,
    written_len, Dtype, SafeTensors, SafetensorsError as E, TensorArg, CHECKSUM_KEY,
    MAX_HEADER_LEN, MAX_METADATA, MAX_TENSORS, MODEL_TENSOR_NAMES,
};
use makemore_core::{Dims, Error, Params, ParamsMut, ParamsRef};
use proptest::prelude::*;

// ------------------------------------------------------------------------------------------------
// Helpers

/// A tiny deterministic generator of arbitrary f32 bit patterns (NaN payloads included).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Random bits of a finite `f32` (any sign, subnormals and zeros included): the exponent
    /// of NaN and the infinities (all ones) loses its lowest bit. A checkpoint holds no others.
    fn f32_bits(&mut self) -> f32 {
        let b = self.next() as u32;
        let inf_or_nan = 0x7f80_0000;
        f32::from_bits(if b & inf_or_nan == inf_or_nan {
            b & !0x0080_0000
        } else {
            b
        })
    }
    fn fill(&mut self, xs: &mut [f32]) {
        for x in xs {
            *x = self.f32_bits();
        }
    }
    /// [`XorShift::fill`] with the sign cleared: a batchnorm variance.
    fn fill_variance(&mut self, xs: &mut [f32]) {
        for x in xs {
            *x = self.f32_bits().abs();
        }
    }
}

/// A file from a header text and a data buffer (the header length is the text's length).
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

/// One F32 tensor entry of a header.
fn ent(name: &str, shape: &str, begin: usize, end: usize) -> String {
    format!(r#""{name}":{{"dtype":"F32","shape":[{shape}],"data_offsets":[{begin},{end}]}}"#)
}

fn err(bytes: &[u8]) -> E {
    SafeTensors::parse(bytes).expect_err("parse should fail")
}

fn err_h(header: &str, data_len: usize) -> E {
    err(&file(header, &vec![0u8; data_len]))
}

/// Writes tensors with zero data through our writer.
fn zero_file(tensors: &[(&str, Vec<usize>)], metadata: &[(&str, &str)]) -> Vec<u8> {
    let data: Vec<Vec<f32>> = tensors
        .iter()
        .map(|(_, s)| vec![0.0; s.iter().product()])
        .collect();
    let args: Vec<TensorArg<'_>> = tensors
        .iter()
        .zip(&data)
        .map(|((n, s), d)| (*n, s.as_slice(), d.as_slice()))
        .collect();
    let mut out = vec![0u8; written_len(&args, metadata)];
    let n = write(&mut out, &args, metadata).unwrap();
    assert_eq!(n, out.len());
    out
}

/// The notebook's tensors for dims (V,T,E,H) = (27,3,10,64), with optional bnmean/bnvar and
/// per-name shape overrides / removals / extras.
fn model_tensors(
    with_bn: bool,
    overrides: &[(&'static str, Option<Vec<usize>>)],
) -> Vec<(&'static str, Vec<usize>)> {
    let (v, t, e, h) = (27, 3, 10, 64);
    let mut list: Vec<(&'static str, Vec<usize>)> = vec![
        ("C", vec![v, e]),
        ("W1", vec![t * e, h]),
        ("b1", vec![h]),
        ("W2", vec![h, v]),
        ("b2", vec![v]),
        ("bngain", vec![1, h]),
        ("bnbias", vec![1, h]),
    ];
    if with_bn {
        list.push(("bnmean", vec![1, h]));
        list.push(("bnvar", vec![1, h]));
    }
    for (name, shape) in overrides {
        let pos = list.iter().position(|(n, _)| n == name);
        match (pos, shape) {
            (Some(i), Some(s)) => list[i].1 = s.clone(),
            (Some(i), None) => {
                list.remove(i);
            }
            (None, Some(s)) => list.push((name, s.clone())),
            (None, None) => {}
        }
    }
    list
}

type Model = Params<f32, 27, 3, 10, 30, 64>;

fn random_model(seed: u64) -> Box<Model> {
    let mut p = Box::new(Model::ZERO);
    let mut rng = XorShift(seed);
    for t in p.view_mut().tensors_mut() {
        rng.fill(t);
    }
    p
}

/// The byte buffer after the header: every tensor's bytes in file order.
fn data_buffer(file: &[u8]) -> &[u8] {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    &file[8 + n..]
}

fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}

/// Loads `bytes` into a fresh exercise-1-like model (27,3,10,64).
fn load_err(bytes: &[u8]) -> E {
    let st = SafeTensors::parse(bytes).unwrap();
    let mut p = Box::new(Model::ZERO);
    load_model(&st, &mut p.view_mut(), None).expect_err("load should fail")
}

/// Re-serialises an accepted file through `write` (names and metadata unescaped) and checks the
/// result parses to the same tensors and metadata.
fn reserialise_and_compare(st: &SafeTensors<'_>) {
    let names: Vec<String> = st
        .tensors()
        .map(|t| {
            let mut buf = vec![0u8; t.name().len()];
            t.name_into(&mut buf).unwrap().to_owned()
        })
        .collect();
    let shapes: Vec<Vec<usize>> = st.tensors().map(|t| t.shape().to_vec()).collect();
    let values: Vec<Vec<f32>> = st
        .tensors()
        .map(|t| {
            let mut v = vec![0.0; t.num_elements()];
            t.read_f32_into(&mut v).unwrap();
            v
        })
        .collect();
    let meta: Vec<(String, String)> = st
        .metadata_entries()
        .map(|(k, v)| {
            let mut kb = vec![0u8; k.len()];
            let mut vb = vec![0u8; v.len()];
            (
                unescape_json_str(k, &mut kb).unwrap().to_owned(),
                unescape_json_str(v, &mut vb).unwrap().to_owned(),
            )
        })
        .collect();
    let args: Vec<TensorArg<'_>> = names
        .iter()
        .zip(&shapes)
        .zip(&values)
        .map(|((n, s), v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    let margs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = vec![0u8; written_len(&args, &margs)];
    assert_eq!(write(&mut out, &args, &margs).unwrap(), out.len());
    let st2 = SafeTensors::parse(&out).unwrap();
    assert_eq!(st2.len(), st.len());
    for (i, name) in names.iter().enumerate() {
        let t = st2.tensor(name).expect("tensor kept");
        assert_eq!(t.shape(), shapes[i].as_slice());
        assert_eq!(t.data(), st.tensor(name).unwrap().data());
    }
    for (k, v) in &meta {
        let mut buf = vec![0u8; v.len()];
        assert_eq!(st2.metadata(k, &mut buf).unwrap(), Some(v.as_str()));
    }
    assert_eq!(st2.metadata_entries().count(), meta.len());
}

// ------------------------------------------------------------------------------------------------
// Round trips

#[test]
fn round_trip_fixed_model_with_bn_and_metadata() {
    let p = random_model(0x9E37_79B9_7F4A_7C15);
    let mut rng = XorShift(12345);
    let mut mean = vec![0.0f32; 64];
    let mut var = vec![0.0f32; 64];
    rng.fill(&mut mean);
    rng.fill_variance(&mut var);
    let metadata = [
        ("format", "pt"),
        ("context", "3"),
        (
            "note",
            "quote \" backslash \\ newline \n tab \t nul \u{0} é 日本 🦀",
        ),
    ];
    let len = saved_model_len(Model::DIMS, true, &metadata);
    let mut out = vec![0u8; len];
    assert_eq!(
        save_model(&mut out, p.view(), Some((&mean, &var)), &metadata).unwrap(),
        len
    );
    let header_len = u64::from_le_bytes(out[..8].try_into().unwrap());
    assert_eq!(header_len % 8, 0, "header padded to a multiple of 8");

    let st = SafeTensors::parse(&out).unwrap();
    assert_eq!(st.header_len() as u64, header_len);
    assert_eq!(st.len(), 9);
    let names: Vec<&str> = st.tensors().map(|t| t.name()).collect();
    assert_eq!(names, MODEL_TENSOR_NAMES);
    assert_eq!(st.tensor("bngain").unwrap().shape(), &[1, 64]);
    assert_eq!(st.tensor("W1").unwrap().shape(), &[30, 64]);
    assert_eq!(read_dims(&st, Some(3)).unwrap(), Model::DIMS);
    for (k, v) in metadata {
        let mut buf = [0u8; 128];
        assert_eq!(st.metadata(k, &mut buf).unwrap(), Some(v));
    }
    let mut buf = [0u8; 8];
    assert_eq!(st.metadata("absent", &mut buf).unwrap(), None);

    let mut q = Box::new(Model::ZERO);
    let mut mean2 = vec![0.0f32; 64];
    let mut var2 = vec![0.0f32; 64];
    let had = load_model(&st, &mut q.view_mut(), Some((&mut mean2, &mut var2))).unwrap();
    assert!(had);
    for (a, b) in p.view().tensors().iter().zip(q.view().tensors()) {
        assert_eq!(bits(a), bits(b));
    }
    assert_eq!(bits(&mean), bits(&mean2));
    assert_eq!(bits(&var), bits(&var2));
}

#[test]
fn round_trip_without_bn_leaves_bn_buffers() {
    let p = random_model(7);
    let mut out = vec![0u8; saved_model_len(Model::DIMS, false, &[])];
    save_model(&mut out, p.view(), None, &[]).unwrap();
    let st = SafeTensors::parse(&out).unwrap();
    assert_eq!(st.len(), 7);
    // only the checksum save_model adds
    assert_eq!(st.metadata_entries().count(), 1);
    let mut q = Box::new(Model::ZERO);
    let mut mean = vec![5.0f32; 64];
    let mut var = vec![6.0f32; 64];
    let had = load_model(&st, &mut q.view_mut(), Some((&mut mean, &mut var))).unwrap();
    assert!(!had);
    assert!(mean.iter().all(|&x| x == 5.0) && var.iter().all(|&x| x == 6.0));
    for (a, b) in p.view().tensors().iter().zip(q.view().tensors()) {
        assert_eq!(bits(a), bits(b));
    }
    // A file with bn statistics loads without a place to put them, and says they were there.
    let mean = vec![1.0f32; 64];
    let mut out = vec![0u8; saved_model_len(Model::DIMS, true, &[])];
    save_model(&mut out, p.view(), Some((&mean, &mean)), &[]).unwrap();
    let st = SafeTensors::parse(&out).unwrap();
    assert!(load_model(&st, &mut q.view_mut(), None).unwrap());
}

#[test]
fn empty_file_and_tensor_view_api() {
    let mut out = [0u8; 16];
    assert_eq!(written_len(&[], &[]), 16);
    assert_eq!(write(&mut out, &[], &[]).unwrap(), 16);
    assert_eq!(&out[8..], b"{}      ");
    let st = SafeTensors::parse(&out).unwrap();
    assert!(st.is_empty());

    let data = [1.5f32, -2.0, 3.25];
    let scalar = [9.0f32];
    let mut out = vec![0u8; 256];
    let n = write(
        &mut out,
        &[("v", &[3], &data), ("s", &[], &scalar), ("z", &[0, 5], &[])],
        &[],
    )
    .unwrap();
    let st = SafeTensors::parse(&out[..n]).unwrap();
    let v = st.tensor("v").unwrap();
    assert_eq!(v.dtype(), Dtype::F32);
    assert_eq!(v.num_elements(), 3);
    assert_eq!(v.data_offsets(), (0, 12));
    assert_eq!(v.values().collect::<Vec<_>>(), data);
    assert_eq!(v.shape_value().to_string(), "(3,)");
    let s = st.tensor("s").unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.values().collect::<Vec<_>>(), [9.0]);
    let z = st.tensor("z").unwrap();
    assert_eq!(z.num_elements(), 0);
    assert_eq!(z.shape_value().to_string(), "(0, 5)");
    assert!(st.tensor("nope").is_none());
    assert!(!format!("{st:?}").is_empty());
}

#[test]
fn escaped_names_are_matched_and_unescaped() {
    let names = ["a\"b", "back\\slash", "ctl\u{1}\n", "é🦀", ""];
    let data = [1.0f32];
    let args: Vec<TensorArg<'_>> = names
        .iter()
        .map(|n| (*n, &[1usize][..], &data[..]))
        .collect();
    let mut out = vec![0u8; written_len(&args, &[])];
    write(&mut out, &args, &[]).unwrap();
    let n = u64::from_le_bytes(out[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&out[8..8 + n]).unwrap();
    assert!(
        header.contains(r"ctl\u0001\u000a"),
        "control characters escaped: {header}"
    );
    assert!(
        header.contains(r#""a\"b""#) && header.contains(r#""back\\slash""#),
        "{header}"
    );
    assert!(header.contains("é🦀"), "non-ASCII written raw: {header}");
    let st = SafeTensors::parse(&out).unwrap();
    for n in names {
        let t = st.tensor(n).expect(n);
        let mut buf = [0u8; 32];
        assert_eq!(t.name_into(&mut buf).unwrap(), n);
    }
    // Escapes in a hand-written header: \u escapes, surrogate pairs, every simple escape.
    let h = format!(
        "{{{},{}}}",
        ent(r"\u0043", "1", 0, 4),
        ent(r"x\ud83e\udd80\/\b\f\n\r\t\\\u00e9", "1", 4, 8)
    );
    let bytes = file(&h, &[0; 8]);
    let st = SafeTensors::parse(&bytes).unwrap();
    assert!(st.tensor("C").is_some());
    assert!(st.tensor("x🦀/\u{8}\u{c}\n\r\t\\é").is_some());
    let mut buf = [0u8; 4];
    assert_eq!(unescape_json_str(r"\u0041\u00e9", &mut buf).unwrap(), "Aé");
}

#[test]
fn header_with_whitespace_and_fields_in_any_order() {
    let h = "\n\t {\r\n \"t\" : { \"data_offsets\" : [ 0 , 8 ] , \"shape\" : [ 2 ] , \"dtype\" : \
             \"F32\" } , \"__metadata__\" : { } }   \n   ";
    let bytes = file(h, &[0; 8]);
    let st = SafeTensors::parse(&bytes).unwrap();
    assert_eq!(st.tensor("t").unwrap().shape(), &[2]);
    // Tensors listed out of offset order are sorted by offset.
    let h = format!("{{{},{}}}", ent("b", "1", 4, 8), ent("a", "1", 0, 4));
    let bytes = file(&h, &[0; 8]);
    let st = SafeTensors::parse(&bytes).unwrap();
    assert_eq!(
        st.tensors().map(|t| t.name()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 64 }, ..ProptestConfig::default() })]

    /// Random small dims through `ParamsMut::from_flat`: save, parse, read_dims, load: bit-identical.
    #[test]
    fn round_trip_random_dims(
        vocab in 1usize..=40,
        context in 1usize..=5,
        embedding in 1usize..=8,
        hidden in 1usize..=24,
        with_bn in any::<bool>(),
        seed in any::<u64>(),
        meta in proptest::collection::hash_map(any::<String>(), any::<String>(), 0..5),
    ) {
        let dims = Dims { vocab, context, embedding, hidden };
        let mut rng = XorShift(seed | 1);
        let mut flat = vec![0.0f32; dims.num_params()];
        rng.fill(&mut flat);
        let mut mean = vec![0.0f32; hidden];
        let mut var = vec![0.0f32; hidden];
        rng.fill(&mut mean);
        rng.fill_variance(&mut var);
        let meta: Vec<(&str, &str)> = meta
            .iter()
            .filter(|(k, _)| k.as_str() != "context" && k.as_str() != CHECKSUM_KEY)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let params = ParamsRef::from_flat(dims, &flat).unwrap();
        let len = saved_model_len(dims, with_bn, &meta);
        let mut out = vec![0u8; len];
        let bn = with_bn.then_some((&mean[..], &var[..]));
        prop_assert_eq!(save_model(&mut out, params, bn, &meta).unwrap(), len);

        let st = SafeTensors::parse(&out).unwrap();
        prop_assert_eq!(read_dims(&st, None).unwrap(), dims);
        let mut flat2 = vec![0.0f32; dims.num_params()];
        let mut mean2 = vec![0.0f32; hidden];
        let mut var2 = vec![0.0f32; hidden];
        let mut p2 = ParamsMut::from_flat(dims, &mut flat2).unwrap();
        let had = load_model(&st, &mut p2, Some((&mut mean2, &mut var2))).unwrap();
        prop_assert_eq!(had, with_bn);
        prop_assert_eq!(bits(&flat), bits(&flat2));
        if with_bn {
            prop_assert_eq!(bits(&mean), bits(&mean2));
            prop_assert_eq!(bits(&var), bits(&var2));
        }
        for (k, v) in &meta {
            let mut buf = vec![0u8; v.len()];
            prop_assert_eq!(st.metadata(k, &mut buf).unwrap(), Some(*v));
        }

        // The reference implementation reads it too.
        let r = safetensors::SafeTensors::deserialize(&out).unwrap();
        prop_assert_eq!(r.len(), if with_bn { 9 } else { 7 });
        let (_, rmeta) = safetensors::SafeTensors::read_metadata(&out).unwrap();
        let mut expected: HashMap<String, String> =
            meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        expected.insert(CHECKSUM_KEY.into(), format!("crc32:{:08x}", crc32(data_buffer(&out))));
        prop_assert_eq!(rmeta.metadata().as_ref().unwrap(), &expected);
    }
}

// ------------------------------------------------------------------------------------------------
// Interoperability with the reference `safetensors` crate

fn reference_view<'a>(shape: &[usize], data: &'a [u8]) -> safetensors::tensor::TensorView<'a> {
    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), data).unwrap()
}

fn le_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn interop_our_writer_read_by_reference() {
    let p = random_model(99);
    let mean = vec![0.25f32; 64];
    let var = vec![4.0f32; 64];
    let metadata = [
        ("format", "pt"),
        ("context", "3"),
        ("weird \"key\"\u{7}", "é\\"),
    ];
    let mut out = vec![0u8; saved_model_len(Model::DIMS, true, &metadata)];
    save_model(&mut out, p.view(), Some((&mean, &var)), &metadata).unwrap();

    let r = safetensors::SafeTensors::deserialize(&out).unwrap();
    let ours = p.view().tensors();
    let expected_shapes: [&[usize]; 9] = [
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
    for (i, name) in MODEL_TENSOR_NAMES.iter().enumerate() {
        let t = r.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        assert_eq!(t.shape(), expected_shapes[i]);
        let want = match i {
            7 => le_bytes(&mean),
            8 => le_bytes(&var),
            _ => le_bytes(ours[i]),
        };
        assert_eq!(t.data(), want.as_slice(), "{name}");
    }
    let (_, m) = safetensors::SafeTensors::read_metadata(&out).unwrap();
    let m = m.metadata().as_ref().unwrap();
    assert_eq!(m.len(), 4);
    for (k, v) in metadata {
        assert_eq!(m.get(k).map(String::as_str), Some(v));
    }
    // the checksum is zlib.crc32 of the byte buffer after the header
    let crc = format!("crc32:{:08x}", crc32(data_buffer(&out)));
    assert_eq!(m.get(CHECKSUM_KEY), Some(&crc));
}

#[test]
fn interop_reference_writer_read_by_us() {
    // The notebook's tensors as PyTorch's save_file would name and shape them.
    let p = random_model(4242);
    let mean: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
    let var: Vec<f32> = (0..64).map(|i| 1.0 + i as f32).collect();
    let t = p.view().tensors();
    let shapes: [Vec<usize>; 9] = [
        vec![27, 10],
        vec![30, 64],
        vec![64],
        vec![64, 27],
        vec![27],
        vec![1, 64],
        vec![1, 64],
        vec![1, 64],
        vec![1, 64],
    ];
    let datas: [&[f32]; 9] = [t[0], t[1], t[2], t[3], t[4], t[5], t[6], &mean, &var];
    let raw: Vec<Vec<u8>> = datas.iter().map(|d| le_bytes(d)).collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = MODEL_TENSOR_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, reference_view(&shapes[i], &raw[i])))
        .collect();
    let bytes = safetensors::serialize(views, &None).unwrap();
    // The reference pads its header to a multiple of 8 with spaces.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);

    let st = SafeTensors::parse(&bytes).unwrap();
    assert_eq!(st.len(), 9);
    assert_eq!(st.metadata_entries().count(), 0);
    assert_eq!(read_dims(&st, Some(3)).unwrap(), Dims::EXERCISE1);
    let mut q = Box::new(Model::ZERO);
    let mut mean2 = vec![0.0f32; 64];
    let mut var2 = vec![0.0f32; 64];
    assert!(load_model(&st, &mut q.view_mut(), Some((&mut mean2, &mut var2))).unwrap());
    for (a, b) in p.view().tensors().iter().zip(q.view().tensors()) {
        assert_eq!(bits(a), bits(b));
    }
    assert_eq!(bits(&mean), bits(&mean2));
    assert_eq!(bits(&var), bits(&var2));

    // With metadata, as save_file(..., metadata={"format": "pt"}) writes it.
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = MODEL_TENSOR_NAMES[..7]
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, reference_view(&shapes[i], &raw[i])))
        .collect();
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = safetensors::serialize(views, &meta).unwrap();
    let st = SafeTensors::parse(&bytes).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(st.metadata("format", &mut buf).unwrap(), Some("pt"));
    assert!(!load_model(&st, &mut q.view_mut(), None).unwrap());
}

// ------------------------------------------------------------------------------------------------
// One test per error variant

#[test]
fn err_too_short() {
    assert_eq!(err(&[]), E::TooShort { len: 0 });
    assert_eq!(err(&[2, 0, 0, 0, 0, 0, 0]), E::TooShort { len: 7 });
}

#[test]
fn err_header_too_large() {
    let mut b = ((MAX_HEADER_LEN + 1) as u64).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(err(&b), E::HeaderTooLarge { len, .. } if len == MAX_HEADER_LEN as u64 + 1));
    assert!(matches!(
        err(&u64::MAX.to_le_bytes()),
        E::HeaderTooLarge { .. }
    ));
    // The writer refuses to make one (a metadata value of 100 MB; hours under Miri).
    if cfg!(miri) {
        return;
    }
    let big = "x".repeat(MAX_HEADER_LEN);
    let mut out = [0u8; 8];
    assert!(matches!(
        write(&mut out, &[], &[("k", &big)]),
        Err(E::HeaderTooLarge { .. })
    ));
}

#[test]
fn err_header_out_of_bounds() {
    let mut b = 100u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}        ");
    assert_eq!(
        err(&b),
        E::HeaderOutOfBounds {
            len: 100,
            available: 10
        }
    );
    // A truncated valid file.
    let f = zero_file(&[("a", vec![2])], &[]);
    assert!(matches!(err(&f[..20]), E::HeaderOutOfBounds { .. }));
}

#[test]
fn err_header_not_utf8() {
    let mut b = 3u64.to_le_bytes().to_vec();
    b.extend_from_slice(&[b'{', 0xFF, b'}']);
    assert_eq!(err(&b), E::HeaderNotUtf8 { pos: 9 });
}

#[test]
fn err_syntax() {
    let cases: &[(&str, usize)] = &[
        ("", 8),                           // empty header
        ("{", 9),                          // unterminated object
        (r#"{"a" 1}"#, 13),                // missing colon
        (r#"{"a":{"dtype":"F32",}}"#, 28), // trailing comma in entry
        (r#"{"__metadata__":{},}"#, 27),   // trailing comma at top level
        (r#"{"a}"#, 12),                   // unterminated string
        ("{,}", 9),                        // no key
        (r#"{"a":{"shape":[1 2]}}"#, 25),  // missing comma in array
        (r#"{"a":{"shape":[01]}}"#, 23),   // leading zero
        (r#"{"a":{"shape":[1,]}}"#, 25),   // trailing comma in array
        (r#"{"a":{"shape":[x]}}"#, 23),    // not a value
        (r#"{"__metadata__":{"k":"v" "j":"w"}}"#, 33),
        ("x", 8),
    ];
    for (h, pos) in cases {
        match err_h(h, 0) {
            E::Syntax { pos: p, .. } => assert_eq!(p, *pos, "{h}"),
            e => panic!("{h}: {e:?}"),
        }
    }
}

#[test]
fn err_wrong_type() {
    let cases: &[(&str, usize)] = &[
        ("[]", 8),
        ("\"str\"", 8),
        ("true", 8),
        (r#"{"a":5}"#, 13),
        (r#"{"a":[]}"#, 13),
        (r#"{"a":null}"#, 13),
        (r#"{"a":{"dtype":7}}"#, 22),
        (r#"{"a":{"dtype":["F32"]}}"#, 22),
        (r#"{"a":{"shape":"1"}}"#, 22),
        (r#"{"a":{"shape":{}}}"#, 22),
        (r#"{"a":{"data_offsets":true}}"#, 29),
        (r#"{"a":{"shape":[true]}}"#, 23),
        (r#"{"a":{"shape":["1"]}}"#, 23),
        ("{1:2}", 9),
    ];
    for (h, pos) in cases {
        match err_h(h, 0) {
            E::WrongType { pos: p, .. } => assert_eq!(p, *pos, "{h}"),
            e => panic!("{h}: {e:?}"),
        }
    }
}

#[test]
fn err_invalid_escape() {
    assert_eq!(err_h(r#"{"\x":1}"#, 0), E::InvalidEscape { pos: 10 });
    assert_eq!(err_h(r#"{"\u12G4":1}"#, 0), E::InvalidEscape { pos: 10 });
    assert_eq!(err_h(r#"{"\u12"#, 0), E::InvalidEscape { pos: 10 });
    assert_eq!(err_h("{\"\\", 0), E::InvalidEscape { pos: 10 });
    assert_eq!(
        err_h(r#"{"\ud83e\uZZZZ":1}"#, 0),
        E::InvalidEscape { pos: 16 }
    );
    let mut buf = [0u8; 8];
    assert!(matches!(
        unescape_json_str(r"\q", &mut buf),
        Err(E::InvalidEscape { pos: 0 })
    ));
}

#[test]
fn err_lone_surrogate() {
    assert_eq!(err_h(r#"{"\ud800":1}"#, 0), E::LoneSurrogate { pos: 10 });
    assert_eq!(err_h(r#"{"\udc00":1}"#, 0), E::LoneSurrogate { pos: 10 });
    assert_eq!(
        err_h(r#"{"\ud800\u0041":1}"#, 0),
        E::LoneSurrogate { pos: 10 }
    );
    assert_eq!(
        err_h(r#"{"\ud800\ud800":1}"#, 0),
        E::LoneSurrogate { pos: 10 }
    );
    let mut buf = [0u8; 8];
    assert!(matches!(
        unescape_json_str(r"a\udfff", &mut buf),
        Err(E::LoneSurrogate { pos: 1 })
    ));
}

#[test]
fn err_control_character() {
    assert_eq!(err_h("{\"a\nb\":1}", 0), E::ControlCharacter { pos: 11 });
    assert_eq!(
        err_h("{\"__metadata__\":{\"k\":\"\t\"}}", 0),
        E::ControlCharacter { pos: 30 }
    );
    let mut buf = [0u8; 8];
    assert!(matches!(
        unescape_json_str("\u{1f}", &mut buf),
        Err(E::ControlCharacter { pos: 0 })
    ));
}

#[test]
fn err_float() {
    for h in [
        r#"{"a":{"shape":[1.5]}}"#,
        r#"{"a":{"shape":[1e3]}}"#,
        r#"{"a":{"shape":[1E3]}}"#,
        r#"{"a":{"shape":[0.0]}}"#,
    ] {
        assert_eq!(err_h(h, 0), E::Float { pos: 23 }, "{h}");
    }
}

#[test]
fn err_negative() {
    assert_eq!(err_h(r#"{"a":{"shape":[-1]}}"#, 0), E::Negative { pos: 23 });
    assert_eq!(
        err_h(r#"{"a":{"data_offsets":[0,-4]}}"#, 0),
        E::Negative { pos: 32 }
    );
}

#[test]
fn err_integer_overflow() {
    // u64::MAX + 1.
    assert_eq!(
        err_h(r#"{"a":{"shape":[18446744073709551616]}}"#, 0),
        E::IntegerOverflow { pos: 23 }
    );
    assert_eq!(
        err_h(r#"{"a":{"shape":[99999999999999999999999999]}}"#, 0),
        E::IntegerOverflow { pos: 23 }
    );
    // u64::MAX itself parses on 64-bit targets and fails later, as a size overflow; on 32-bit
    // ones (wasm32) it is already more than a usize.
    let h = format!(r#"{{{}}}"#, ent("a", "18446744073709551615,2", 0, 0));
    if usize::BITS == 64 {
        assert!(matches!(err_h(&h, 0), E::SizeOverflow { .. }));
    } else {
        assert!(matches!(err_h(&h, 0), E::IntegerOverflow { .. }));
    }
}

#[test]
fn err_nesting_too_deep() {
    assert_eq!(
        err_h(r#"{"a":{"shape":[[1]]}}"#, 0),
        E::NestingTooDeep { pos: 23 }
    );
    assert_eq!(
        err_h(r#"{"a":{"data_offsets":[0,{}]}}"#, 0),
        E::NestingTooDeep { pos: 32 }
    );
}

#[test]
fn err_trailing_characters() {
    assert_eq!(err_h("{} x", 0), E::TrailingCharacters { pos: 11 });
    assert_eq!(err_h("{}{}", 0), E::TrailingCharacters { pos: 10 });
    assert_eq!(err_h("{}\0", 0), E::TrailingCharacters { pos: 10 });
    // Spaces are fine.
    assert!(SafeTensors::parse(&file("{}   \n ", &[])).is_ok());
}

#[test]
fn err_duplicate_key() {
    let dup = |h: &str| match err_h(h, 8) {
        E::DuplicateKey { key, .. } => key.as_str().to_owned(),
        e => panic!("{h}: {e:?}"),
    };
    assert_eq!(
        dup(&format!(
            "{{{},{}}}",
            ent("a", "1", 0, 4),
            ent("a", "1", 4, 8)
        )),
        "a"
    );
    // Compared after unescaping.
    assert_eq!(
        dup(&format!(
            "{{{},{}}}",
            ent("a", "1", 0, 4),
            ent(r"\u0061", "1", 4, 8)
        )),
        r"\u0061"
    );
    assert_eq!(
        dup(r#"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#),
        "dtype"
    );
    assert_eq!(dup(r#"{"a":{"shape":[1],"shape":[1]}}"#), "shape");
    assert_eq!(
        dup(r#"{"a":{"data_offsets":[0,4],"data_offsets":[0,4]}}"#),
        "data_offsets"
    );
    assert_eq!(dup(r#"{"__metadata__":{"k":"1","k":"2"}}"#), "k");
    assert_eq!(
        dup(r#"{"__metadata__":{},"__metadata__":{}}"#),
        "__metadata__"
    );
    assert_eq!(
        dup(r#"{"__metadata__":{},"\u005f_metadata__":{}}"#),
        r"\u005f_metadata__"
    );
}

#[test]
fn err_unknown_field() {
    match err_h(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#,
        4,
    ) {
        E::UnknownField { pos, tensor, field } => {
            assert_eq!((pos, tensor.as_str(), field.as_str()), (61, "w", "extra"));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn err_missing_field() {
    let cases = [
        (r#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, "dtype"),
        (r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, "shape"),
        (r#"{"w":{"dtype":"F32","shape":[1]}}"#, "data_offsets"),
        (r#"{"w":{}}"#, "dtype"),
    ];
    for (h, f) in cases {
        match err_h(h, 4) {
            E::MissingField { tensor, field } => {
                assert_eq!((tensor.as_str(), field), ("w", f), "{h}")
            }
            e => panic!("{h}: {e:?}"),
        }
    }
}

#[test]
fn err_too_many_dims() {
    let h = format!("{{{}}}", ent("w", "1,1,1,1,1", 0, 4));
    assert!(matches!(err_h(&h, 4), E::TooManyDims { max: 4, tensor } if tensor.as_str() == "w"));
    // Four is fine.
    let h = format!("{{{}}}", ent("w", "1,1,1,1", 0, 4));
    assert!(SafeTensors::parse(&file(&h, &[0; 4])).is_ok());
    // The writer refuses five.
    let mut out = [0u8; 256];
    assert!(matches!(
        write(&mut out, &[("w", &[1, 1, 1, 1, 1], &[0.0])], &[]),
        Err(E::TooManyDims { .. })
    ));
}

#[test]
fn err_data_offsets_len() {
    for (offs, got) in [("0", 1), ("0,4,4", 3), ("", 0)] {
        let h = format!(r#"{{"w":{{"dtype":"F32","shape":[1],"data_offsets":[{offs}]}}}}"#);
        assert!(
            matches!(err_h(&h, 4), E::DataOffsetsLen { got: g, .. } if g == got),
            "{h}"
        );
    }
}

#[test]
fn err_unsupported_dtype() {
    for (name, d) in [
        ("F16", Dtype::F16),
        ("BF16", Dtype::BF16),
        ("F64", Dtype::F64),
        ("I64", Dtype::I64),
    ] {
        let h = format!(r#"{{"w":{{"dtype":"{name}","shape":[2],"data_offsets":[0,4]}}}}"#);
        match err_h(&h, 4) {
            E::UnsupportedDtype { tensor, dtype } => {
                assert_eq!((tensor.as_str(), dtype), ("w", d));
                let msg = err_h(&h, 4).to_string();
                assert!(msg.contains(name) && msg.contains("\"w\""), "{msg}");
            }
            e => panic!("{e:?}"),
        }
    }
    // As the reference crate writes an F16 tensor.
    let v =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![2], &[0u8; 4]).unwrap();
    let bytes = safetensors::serialize([("half", v)], &None).unwrap();
    assert!(matches!(
        err(&bytes),
        E::UnsupportedDtype {
            dtype: Dtype::F16,
            ..
        }
    ));
}

#[test]
fn err_unknown_dtype() {
    let h = r#"{"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#;
    match err_h(h, 4) {
        E::UnknownDtype { tensor, dtype } => {
            assert_eq!((tensor.as_str(), dtype.as_str()), ("w", "F17"))
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        err_h(
            r#"{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#,
            4
        ),
        E::UnknownDtype { .. }
    ));
    // An escaped "F32" is F32.
    let h = r#"{"w":{"dtype":"\u0046\u00332","shape":[1],"data_offsets":[0,4]}}"#;
    assert!(SafeTensors::parse(&file(h, &[0; 4])).is_ok());
}

#[test]
fn err_too_many_tensors() {
    let names: Vec<String> = (0..=MAX_TENSORS).map(|i| format!("t{i}")).collect();
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| ent(n, "1", 4 * i, 4 * i + 4))
        .collect();
    let h = format!("{{{}}}", entries.join(","));
    assert_eq!(
        err_h(&h, 4 * (MAX_TENSORS + 1)),
        E::TooManyTensors { max: MAX_TENSORS }
    );
    // Exactly MAX_TENSORS is fine.
    let h = format!("{{{}}}", entries[..MAX_TENSORS].join(","));
    assert_eq!(
        SafeTensors::parse(&file(&h, &[0; 4 * MAX_TENSORS]))
            .unwrap()
            .len(),
        MAX_TENSORS
    );
    // The writer refuses too.
    let data = [0.0f32];
    let args: Vec<TensorArg<'_>> = names
        .iter()
        .map(|n| (n.as_str(), &[1usize][..], &data[..]))
        .collect();
    let mut out = vec![0u8; 4096];
    assert_eq!(
        write(&mut out, &args, &[]),
        Err(E::TooManyTensors { max: MAX_TENSORS })
    );
}

#[test]
fn err_too_many_metadata_entries() {
    let kv: Vec<(String, String)> = (0..=MAX_METADATA)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let body: Vec<String> = kv.iter().map(|(k, v)| format!(r#""{k}":"{v}""#)).collect();
    let h = format!(r#"{{"__metadata__":{{{}}}}}"#, body.join(","));
    assert_eq!(
        err_h(&h, 0),
        E::TooManyMetadataEntries { max: MAX_METADATA }
    );
    let h = format!(
        r#"{{"__metadata__":{{{}}}}}"#,
        body[..MAX_METADATA].join(",")
    );
    assert!(SafeTensors::parse(&file(&h, &[])).is_ok());
    let args: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = vec![0u8; 4096];
    assert_eq!(
        write(&mut out, &[], &args),
        Err(E::TooManyMetadataEntries { max: MAX_METADATA })
    );
}

#[test]
fn err_metadata_not_object() {
    for v in [r#""pt""#, "[]", "null", "1", "true"] {
        let h = format!(r#"{{"__metadata__":{v}}}"#);
        assert_eq!(err_h(&h, 0), E::MetadataNotObject { pos: 24 }, "{h}");
    }
}

#[test]
fn err_metadata_not_string() {
    for v in ["1", "null", "{}", "[\"a\"]", "true"] {
        let h = format!(r#"{{"__metadata__":{{"k":{v}}}}}"#);
        match err_h(&h, 0) {
            E::MetadataNotString { pos, key } => assert_eq!((pos, key.as_str()), (29, "k"), "{h}"),
            e => panic!("{h}: {e:?}"),
        }
    }
}

#[test]
fn err_offsets_reversed() {
    let h = format!("{{{}}}", ent("w", "1", 8, 4));
    assert!(matches!(
        err_h(&h, 8),
        E::OffsetsReversed {
            begin: 8,
            end: 4,
            ..
        }
    ));
}

#[test]
fn err_size_overflow() {
    let big = 1usize << (usize::BITS - 2);
    let h = format!("{{{}}}", ent("w", &format!("{big},4"), 0, 4));
    assert!(matches!(err_h(&h, 4), E::SizeOverflow { tensor } if tensor.as_str() == "w"));
    let h = format!("{{{}}}", ent("w", &format!("{big}"), 0, 4));
    assert!(matches!(err_h(&h, 4), E::SizeOverflow { .. }));
    let mut out = [0u8; 64];
    assert!(matches!(
        write(&mut out, &[("w", &[usize::MAX, 2], &[])], &[]),
        Err(E::SizeOverflow { .. })
    ));
}

#[test]
fn err_size_mismatch() {
    let h = format!("{{{}}}", ent("w", "2", 0, 4));
    match err_h(&h, 4) {
        E::SizeMismatch {
            tensor,
            shape,
            expected,
            got,
        } => {
            assert_eq!(
                (tensor.as_str(), shape.as_slice(), expected, got),
                ("w", &[2][..], 8, 4)
            );
        }
        e => panic!("{e:?}"),
    }
    let h = format!("{{{}}}", ent("w", "", 0, 8));
    assert!(matches!(
        err_h(&h, 8),
        E::SizeMismatch {
            expected: 4,
            got: 8,
            ..
        }
    ));
}

#[test]
fn err_offset_out_of_range() {
    let h = format!("{{{}}}", ent("w", "2", 0, 8));
    assert_eq!(
        err_h(&h, 4),
        E::OffsetOutOfRange {
            tensor: makemore_core::safetensors::NameBuf::new("w"),
            end: 8,
            buffer_len: 4
        }
    );
    // A valid file with its last bytes cut off.
    let f = zero_file(&[("a", vec![4])], &[]);
    assert!(matches!(err(&f[..f.len() - 1]), E::OffsetOutOfRange { .. }));
}

#[test]
fn err_overlap() {
    let h = format!("{{{},{}}}", ent("a", "2", 0, 8), ent("b", "2", 4, 12));
    assert!(
        matches!(err_h(&h, 12), E::Overlap { tensor, begin: 4, expected: 8 } if tensor.as_str() == "b")
    );
    // Two tensors on the same bytes.
    let h = format!("{{{},{}}}", ent("a", "1", 0, 4), ent("b", "1", 0, 4));
    assert!(matches!(err_h(&h, 4), E::Overlap { .. }));
}

#[test]
fn err_hole() {
    let h = format!("{{{},{}}}", ent("a", "1", 0, 4), ent("b", "1", 8, 12));
    assert!(
        matches!(err_h(&h, 12), E::Hole { tensor, begin: 8, expected: 4 } if tensor.as_str() == "b")
    );
    // The first tensor not at 0.
    let h = format!("{{{}}}", ent("a", "1", 4, 8));
    assert!(matches!(
        err_h(&h, 8),
        E::Hole {
            begin: 4,
            expected: 0,
            ..
        }
    ));
}

#[test]
fn err_trailing_bytes() {
    let h = format!("{{{}}}", ent("a", "1", 0, 4));
    assert_eq!(
        err_h(&h, 8),
        E::TrailingBytes {
            used: 4,
            buffer_len: 8
        }
    );
    // A valid file with a byte appended; an empty header with data.
    let mut f = zero_file(&[("a", vec![4])], &[]);
    f.push(0);
    assert!(matches!(err(&f), E::TrailingBytes { .. }));
    assert_eq!(
        err_h("{}", 1),
        E::TrailingBytes {
            used: 0,
            buffer_len: 1
        }
    );
}

#[test]
fn err_buffer_too_small() {
    let data = [1.0f32, 2.0];
    let args: [TensorArg<'_>; 1] = [("w", &[2], &data)];
    let needed = written_len(&args, &[("k", "v")]);
    let mut out = vec![0u8; needed - 1];
    assert_eq!(
        write(&mut out, &args, &[("k", "v")]),
        Err(E::BufferTooSmall { needed })
    );
    let p = random_model(1);
    let mut out = vec![0u8; 100];
    assert_eq!(
        save_model(&mut out, p.view(), None, &[]),
        Err(E::BufferTooSmall {
            needed: saved_model_len(Model::DIMS, false, &[])
        })
    );
    // Unescaping into a short buffer.
    let f = zero_file(&[("name\"long", vec![1])], &[("key", "é value")]);
    let st = SafeTensors::parse(&f).unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(
        st.metadata("key", &mut buf),
        Err(E::BufferTooSmall { needed: 8 })
    );
    assert_eq!(
        st.tensors().next().unwrap().name_into(&mut buf),
        Err(E::BufferTooSmall { needed: 9 })
    );
    assert_eq!(
        unescape_json_str(r"\u00e9\u00e9", &mut buf),
        Err(E::BufferTooSmall { needed: 4 })
    );
}

#[test]
fn err_output_len_mismatch() {
    let f = zero_file(&[("w", vec![2, 3])], &[]);
    let st = SafeTensors::parse(&f).unwrap();
    let mut out = [7.0f32; 5];
    assert_eq!(
        st.tensor("w").unwrap().read_f32_into(&mut out),
        Err(E::OutputLenMismatch {
            expected: 6,
            got: 5
        })
    );
    assert!(out.iter().all(|&x| x == 7.0));
}

#[test]
fn err_data_len_mismatch() {
    let mut out = [0u8; 256];
    assert!(matches!(
        write(&mut out, &[("w", &[2, 3], &[0.0; 5])], &[]),
        Err(E::DataLenMismatch { tensor, expected: 6, got: 5 }) if tensor.as_str() == "w"
    ));
}

#[test]
fn err_duplicate_name() {
    let mut out = [0u8; 256];
    assert!(matches!(
        write(&mut out, &[("w", &[1], &[0.0]), ("w", &[1], &[0.0])], &[]),
        Err(E::DuplicateName { name }) if name.as_str() == "w"
    ));
    assert!(matches!(
        write(&mut out, &[], &[("k", "1"), ("k", "2")]),
        Err(E::DuplicateName { name }) if name.as_str() == "k"
    ));
}

#[test]
fn err_reserved_name() {
    let mut out = [0u8; 256];
    assert_eq!(
        write(&mut out, &[("__metadata__", &[1], &[0.0])], &[]),
        Err(E::ReservedName)
    );
}

#[test]
fn err_missing_tensor() {
    for name in ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"] {
        let f = zero_file(&model_tensors(false, &[(name, None)]), &[]);
        assert_eq!(load_err(&f), E::MissingTensor { name }, "{name}");
        let st = SafeTensors::parse(&f).unwrap();
        assert_eq!(
            read_dims(&st, None),
            Err(E::MissingTensor { name }),
            "{name}"
        );
    }
}

#[test]
fn err_unexpected_tensor() {
    let f = zero_file(&model_tensors(true, &[("extra", Some(vec![1]))]), &[]);
    assert!(matches!(load_err(&f), E::UnexpectedTensor { name } if name.as_str() == "extra"));
    let st = SafeTensors::parse(&f).unwrap();
    assert!(matches!(
        read_dims(&st, None),
        Err(E::UnexpectedTensor { .. })
    ));
    let msg = load_err(&f).to_string();
    assert!(msg.contains("extra"), "{msg}");
}

#[test]
fn err_unexpected_rank() {
    for (name, shape) in [("C", vec![27, 10, 1]), ("W1", vec![1920]), ("C", vec![])] {
        let f = zero_file(&model_tensors(false, &[(name, Some(shape.clone()))]), &[]);
        let st = SafeTensors::parse(&f).unwrap();
        match read_dims(&st, None) {
            Err(E::UnexpectedRank {
                tensor,
                expected: 2,
                got,
            }) => {
                assert_eq!((tensor, got.as_slice()), (name, shape.as_slice()))
            }
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn err_shape_mismatch() {
    // Against the parameters' dims in load_model.
    let f = zero_file(&model_tensors(false, &[("W1", Some(vec![30, 65]))]), &[]);
    match load_err(&f) {
        E::ShapeMismatch {
            tensor,
            expected,
            got,
        } => {
            assert_eq!(
                (tensor, expected.as_slice(), got.as_slice()),
                ("W1", &[30, 64][..], &[30, 65][..])
            );
            let msg = load_err(&f).to_string();
            assert!(
                msg.contains("W1") && msg.contains("(30, 64)") && msg.contains("(30, 65)"),
                "{msg}"
            );
        }
        e => panic!("{e:?}"),
    }
    // Against each other in read_dims.
    for (name, shape) in [
        ("b1", vec![63]),
        ("W2", vec![64, 26]),
        ("b2", vec![1, 27]),
        ("bngain", vec![64, 1]),
        ("bnbias", vec![2, 64]),
        ("bnmean", vec![1, 1, 64]),
    ] {
        let f = zero_file(&model_tensors(true, &[(name, Some(shape.clone()))]), &[]);
        let st = SafeTensors::parse(&f).unwrap();
        assert!(
            matches!(read_dims(&st, None), Err(E::ShapeMismatch { tensor, .. }) if tensor == name),
            "{name}"
        );
        assert!(matches!(load_err(&f), E::ShapeMismatch { tensor, .. } if tensor == name));
    }
    // bngain etc. as (H) are accepted.
    let f = zero_file(
        &model_tensors(
            true,
            &[
                ("bngain", Some(vec![64])),
                ("bnbias", Some(vec![64])),
                ("bnmean", Some(vec![64])),
                ("bnvar", Some(vec![64])),
            ],
        ),
        &[],
    );
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(read_dims(&st, None).unwrap(), Model::DIMS);
    let mut p = Box::new(Model::ZERO);
    assert!(load_model(&st, &mut p.view_mut(), None).unwrap());
}

#[test]
fn err_context_not_divisible() {
    let f = zero_file(&model_tensors(false, &[("W1", Some(vec![25, 64]))]), &[]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(
        read_dims(&st, None),
        Err(E::ContextNotDivisible {
            embcat: 25,
            embedding: 10
        })
    );
}

#[test]
fn err_invalid_context_metadata() {
    for v in ["three", "", "-3", "3.0", " 3", "99999999999999999999999999"] {
        let f = zero_file(&model_tensors(false, &[]), &[("context", v)]);
        let st = SafeTensors::parse(&f).unwrap();
        assert!(
            matches!(
                read_dims(&st, None),
                Err(E::InvalidMetadata { key: "context", .. })
            ),
            "{v:?}"
        );
        assert!(matches!(
            load_err(&f),
            E::InvalidMetadata { key: "context", .. }
        ));
    }
    let p = random_model(3);
    let mut out = vec![0u8; 1 << 16];
    assert!(matches!(
        save_model(&mut out, p.view(), None, &[("context", "x")]),
        Err(E::InvalidMetadata { key: "context", .. })
    ));
    // An escaped digit is a digit.
    let h = r#"{"__metadata__":{"context":"\u0033"}}"#;
    let bytes = file(h, &[]);
    let st = SafeTensors::parse(&bytes).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(st.metadata("context", &mut buf).unwrap(), Some("3"));
}

#[test]
fn err_context_mismatch() {
    let f = zero_file(&model_tensors(false, &[]), &[("context", "4")]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(
        read_dims(&st, None),
        Err(E::ContextMismatch {
            from: "metadata",
            expected: 3,
            got: 4
        })
    );
    assert_eq!(
        load_err(&f),
        E::ContextMismatch {
            from: "metadata",
            expected: 3,
            got: 4
        }
    );
    let f = zero_file(&model_tensors(false, &[]), &[("context", "3")]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(read_dims(&st, Some(3)).unwrap(), Model::DIMS);
    assert_eq!(
        read_dims(&st, Some(5)),
        Err(E::ContextMismatch {
            from: "argument",
            expected: 3,
            got: 5
        })
    );
    let p = random_model(3);
    let mut out = vec![0u8; 1 << 16];
    assert_eq!(
        save_model(&mut out, p.view(), None, &[("context", "2")]),
        Err(E::ContextMismatch {
            from: "metadata",
            expected: 3,
            got: 2
        })
    );
}

#[test]
fn err_incomplete_batchnorm() {
    let f = zero_file(&model_tensors(true, &[("bnvar", None)]), &[]);
    assert_eq!(
        load_err(&f),
        E::IncompleteBatchnorm {
            present: "bnmean",
            missing: "bnvar"
        }
    );
    let f = zero_file(&model_tensors(true, &[("bnmean", None)]), &[]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(
        read_dims(&st, None),
        Err(E::IncompleteBatchnorm {
            present: "bnvar",
            missing: "bnmean"
        })
    );
}

#[test]
fn err_model() {
    // E = 0, V > 256: invalid dims.
    for over in [("C", vec![27, 0]), ("C", vec![300, 10])] {
        let f = zero_file(
            &model_tensors(false, &[(over.0, Some(over.1.clone()))]),
            &[],
        );
        let st = SafeTensors::parse(&f).unwrap();
        assert_eq!(
            read_dims(&st, None),
            Err(E::Model(Error::InvalidDims)),
            "{over:?}"
        );
    }
    let f = zero_file(&model_tensors(false, &[("W1", Some(vec![30, 0]))]), &[]);
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(read_dims(&st, None), Err(E::Model(Error::InvalidDims)));
    // bn buffers of the wrong length.
    let p = random_model(5);
    let short = vec![0.0f32; 63];
    let ok = vec![0.0f32; 64];
    let mut out = vec![0u8; 1 << 16];
    assert!(matches!(
        save_model(&mut out, p.view(), Some((&short, &ok)), &[]),
        Err(E::Model(Error::LengthMismatch {
            what: "bnmean",
            expected: 64,
            got: 63
        }))
    ));
    let n = save_model(&mut out, p.view(), Some((&ok, &ok)), &[]).unwrap();
    let st = SafeTensors::parse(&out[..n]).unwrap();
    let mut q = Box::new(Model::ZERO);
    let mut m = vec![0.0f32; 64];
    let mut v = vec![0.0f32; 65];
    assert!(matches!(
        load_model(&st, &mut q.view_mut(), Some((&mut m, &mut v))),
        Err(E::Model(Error::LengthMismatch { what: "bnvar", .. }))
    ));
    // Nothing was copied.
    assert!(q
        .view()
        .tensors()
        .iter()
        .all(|t| t.iter().all(|&x| x == 0.0)));
    assert_eq!(E::from(Error::InvalidDims), E::Model(Error::InvalidDims));
}

// ------------------------------------------------------------------------------------------------
// The checksum

#[test]
fn crc32_matches_zlib() {
    // python3 -c "import zlib; print([hex(zlib.crc32(b)) for b in (b'', b'123456789',
    //   b'The quick brown fox jumps over the lazy dog')])"
    // -> ['0x0', '0xcbf43926', '0x414fa339']
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let fox = b"The quick brown fox jumps over the lazy dog";
    assert_eq!(crc32(fox), 0x414F_A339);
    // fed in pieces: the same
    let mut c = Crc32::default();
    for piece in fox.chunks(5) {
        c.update(piece);
    }
    assert_eq!(c.finish(), 0x414F_A339);
}

/// A saved random model (with bn) and its checksum text.
fn saved_with_checksum() -> (Vec<u8>, String) {
    let p = random_model(31);
    let bn = vec![0.5f32; 64];
    let mut out = vec![0u8; saved_model_len(Model::DIMS, true, &[("format", "x")])];
    save_model(&mut out, p.view(), Some((&bn, &bn)), &[("format", "x")]).unwrap();
    let crc = format!("crc32:{:08x}", crc32(data_buffer(&out)));
    (out, crc)
}

#[test]
fn checksum_written_verified_and_every_flipped_data_byte_refused() {
    let (out, crc) = saved_with_checksum();
    let st = SafeTensors::parse(&out).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(
        st.metadata(CHECKSUM_KEY, &mut buf).unwrap(),
        Some(crc.as_str())
    );
    assert_eq!(
        verify_checksum(&st).unwrap(),
        Some(crc32(data_buffer(&out)))
    );
    let header_end = out.len() - data_buffer(&out).len();
    // every 97th byte of the data (every 4000th under Miri), flipped by 0x01 and by 0x80
    let stride = if cfg!(miri) { 4000 } else { 97 };
    for i in (header_end..out.len()).step_by(stride) {
        for flip in [0x01u8, 0x80] {
            let mut bad = out.clone();
            bad[i] ^= flip;
            let st = SafeTensors::parse(&bad).expect("a flipped data byte still parses");
            let mut q = Box::new(Model::ZERO);
            let e = load_model(&st, &mut q.view_mut(), None).expect_err("flipped byte accepted");
            assert!(matches!(e, E::ChecksumMismatch { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains("corrupt") && msg.contains(&crc), "{msg}");
            // nothing was copied
            assert!(q
                .view()
                .tensors()
                .iter()
                .all(|t| t.iter().all(|&x| x == 0.0)));
        }
    }
}

#[test]
fn checksum_metadata_malformed_or_reserved() {
    let (out, crc) = saved_with_checksum();
    for bad in [
        "crc32:0000000",
        "crc32:0000000g",
        "CRC32:00000000",
        "md5:00000000",
        "",
    ] {
        let header_end = out.len() - data_buffer(&out).len();
        let header = std::str::from_utf8(&out[8..header_end]).unwrap();
        let new_header = header.replace(&crc, bad);
        let mut f = (new_header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(new_header.as_bytes());
        f.extend_from_slice(data_buffer(&out));
        let st = SafeTensors::parse(&f).unwrap();
        assert!(
            matches!(
                verify_checksum(&st),
                Err(E::InvalidMetadata {
                    key: "checksum",
                    ..
                })
            ),
            "{bad:?}"
        );
        let mut q = Box::new(Model::ZERO);
        assert!(matches!(
            load_model(&st, &mut q.view_mut(), None),
            Err(E::InvalidMetadata {
                key: "checksum",
                ..
            })
        ));
    }
    // a file without the entry (PyTorch's) loads: nothing to verify
    let p = random_model(3);
    let views: Vec<(&str, Vec<usize>, Vec<u8>)> = MODEL_TENSOR_NAMES[..7]
        .iter()
        .zip(p.view().tensors())
        .zip(model_tensors(false, &[]))
        .map(|((n, t), (_, shape))| (*n, shape, le_bytes(t)))
        .collect();
    let f = safetensors::serialize(
        views.iter().map(|(n, s, d)| (*n, reference_view(s, d))),
        &None,
    )
    .unwrap();
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(verify_checksum(&st), Ok(None));
    let mut q = Box::new(Model::ZERO);
    load_model(&st, &mut q.view_mut(), None).unwrap();
    // save_model writes the key itself
    let mut buf = vec![0u8; 1 << 16];
    assert_eq!(
        save_model(
            &mut buf,
            p.view(),
            None,
            &[(CHECKSUM_KEY, "crc32:00000000")]
        ),
        Err(E::ReservedMetadataKey { key: CHECKSUM_KEY })
    );
    // ... and takes one of the MAX_METADATA entries
    let keys: Vec<String> = (0..MAX_METADATA).map(|i| format!("k{i}")).collect();
    let full: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    assert_eq!(saved_model_len(Model::DIMS, false, &full), usize::MAX);
    assert_eq!(
        save_model(&mut buf, p.view(), None, &full),
        Err(E::TooManyMetadataEntries { max: MAX_METADATA })
    );
    let n = save_model(&mut buf, p.view(), None, &full[1..]).unwrap();
    assert_eq!(n, saved_model_len(Model::DIMS, false, &full[1..]));
}

#[test]
fn every_error_displays() {
    let errors = [
        err(&[]),
        err(&u64::MAX.to_le_bytes()),
        err_h("{\"\\x\":1}", 0),
        err_h(r#"{"a":{"shape":[1.5]}}"#, 0),
        E::SizeMismatch {
            tensor: makemore_core::safetensors::NameBuf::new(
                "a very long tensor name that will be truncated",
            ),
            shape: makemore_core::safetensors::Shape::new(&[2, 3]).unwrap(),
            expected: 24,
            got: 4,
        },
        E::ReservedName,
        E::Model(Error::InvalidDims),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(!msg.is_empty());
        let _: &dyn std::error::Error = &e;
    }
    let long = makemore_core::safetensors::NameBuf::new("ééééééééééééééééé"); // 34 bytes
    assert!(long.is_truncated());
    assert_eq!(long.as_str().len(), 32);
    assert!(long.to_string().ends_with("..."));
}

// ------------------------------------------------------------------------------------------------
// Fuzzing

fn valid_sample() -> Vec<u8> {
    let a = [1.0f32, -2.0, 3.0, 4.5, 0.0, f32::NAN];
    let b = [7.0f32];
    let args: [TensorArg<'_>; 3] = [
        ("alpha", &[2, 3], &a),
        ("b\"\\é", &[1], &b),
        ("empty", &[0], &[]),
    ];
    let meta = [("format", "pt"), ("k\u{1}", "v\\\"🦀")];
    let mut out = vec![0u8; written_len(&args, &meta)];
    write(&mut out, &args, &meta).unwrap();
    out
}

/// Checks parse never panics; if it accepts, that the reference crate accepts the same tensors,
/// that reading every tensor works, and that re-serialising gives the same tensors.
fn check_bytes(bytes: &[u8]) {
    let Ok(st) = SafeTensors::parse(bytes) else {
        return;
    };
    let r = safetensors::SafeTensors::deserialize(bytes).expect("reference accepts what we accept");
    assert_eq!(r.len(), st.len());
    for t in st.tensors() {
        let mut buf = vec![0u8; t.name().len()];
        let name = t.name_into(&mut buf).unwrap();
        let rt = r.tensor(name).unwrap();
        assert_eq!(rt.shape(), t.shape());
        assert_eq!(rt.data(), t.data());
        let mut v = vec![0.0; t.num_elements()];
        t.read_f32_into(&mut v).unwrap();
    }
    reserialise_and_compare(&st);
    let _ = format!("{st:?}");
}

/// JSON-ish fragments to build adversarial headers from.
fn fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\"",
        "\\",
        "\\u",
        "d800",
        "dc00",
        "0041",
        "\"a\"",
        "\"b\"",
        "\"__metadata__\"",
        "\"dtype\"",
        "\"F32\"",
        "\"F16\"",
        "\"shape\"",
        "\"data_offsets\"",
        "0",
        "1",
        "4",
        "8",
        "-",
        ".",
        "e",
        "18446744073709551616",
        "null",
        "true",
        "é",
        "\n",
        "\u{1}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 2000 }, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        header_len in any::<prop::sample::Index>(),
    ) {
        check_bytes(&bytes);
        // With a consistent header length, so the JSON parser sees the bytes.
        let n = header_len.index(bytes.len() + 1);
        check_bytes(&[&(n as u64).to_le_bytes()[..], &bytes].concat());
    }

    #[test]
    fn fuzz_framed_fragments(
        frags in proptest::collection::vec(fragment(), 0..40),
        data_len in 0usize..24,
    ) {
        let h: String = frags.concat();
        check_bytes(&file(&h, &vec![0x3F; data_len]));
    }

    #[test]
    fn fuzz_mutated_valid_file(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        sets in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut f = valid_sample();
        let original = f.clone();
        for (i, bit) in flips {
            let i = i.index(f.len());
            f[i] ^= 1 << bit;
        }
        for (i, v) in sets {
            let i = i.index(f.len());
            f[i] = v;
        }
        if do_cut {
            f.truncate(cut.index(f.len() + 1));
        }
        check_bytes(&f);
        if f == original {
            prop_assert!(SafeTensors::parse(&f).is_ok());
        }
    }

    #[test]
    fn fuzz_structured_entries(
        entries in proptest::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "\\u0061", "c\\n", "__metadata__"]),
                prop::sample::select(vec!["F32", "F16", "BF16", "X"]),
                proptest::collection::vec(0usize..4, 0..6),
                0usize..40,
                0usize..40,
            ),
            0..5,
        ),
        data_len in 0usize..48,
    ) {
        let body: Vec<String> = entries
            .iter()
            .map(|(n, d, s, b, e)| {
                let s: Vec<String> = s.iter().map(|x| x.to_string()).collect();
                format!(
                    r#""{n}":{{"dtype":"{d}","shape":[{}],"data_offsets":[{b},{e}]}}"#,
                    s.join(",")
                )
            })
            .collect();
        let h = format!("{{{}}}", body.join(","));
        check_bytes(&file(&h, &vec![0x40; data_len]));
    }
}
