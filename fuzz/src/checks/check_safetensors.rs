//! Fuzz target `safetensors`: the core's safetensors reader on arbitrary bytes.
//!
//! Shared, as a plain function, by the fuzz target and by the stable replay test
//! (`core/tests/fuzz_replay.rs` includes this file), so it uses only `makemore_core`, the
//! reference `safetensors` crate and std.

use makemore_core::safetensors::{
    load_model, read_dims, save_model, saved_model_len, unescape_json_str, verify_checksum, write,
    written_len, SafeTensors, TensorArg, CHECKSUM_KEY, MAX_METADATA, MAX_TENSORS,
};
use makemore_core::ParamsMut;

/// Never panics for any `bytes`; what it accepts is exactly what it validates:
/// - the tensors tile the byte buffer after the header in offset order, each of
///   `num_elements * 4` bytes, and the capacities hold;
/// - the reference implementation accepts the same file with the same tensors;
/// - written again by our writer it parses to the same tensors and metadata, and writing that
///   again gives the same bytes (a fixed point);
/// - as a model: `read_dims` and `load_model` either refuse it with an error or load it, and a
///   loaded model saved by `save_model` loads back bit for bit.
pub fn check(bytes: &[u8]) {
    let st = match SafeTensors::parse(bytes) {
        Ok(st) => st,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let _ = format!("{st:?}");
    check_layout(bytes, &st);
    check_reference_agrees(bytes, &st);
    let first = rewrite(&st);
    let st2 = SafeTensors::parse(&first).expect("our writer's output parses");
    assert_same_content(&st, &st2);
    assert_eq!(rewrite(&st2), first, "writing is not a fixed point");
    check_model(&st);
}

/// The validated invariants, checked independently of the parser.
fn check_layout(bytes: &[u8], st: &SafeTensors<'_>) {
    let data_start = 8 + st.header_len();
    assert!(data_start <= bytes.len());
    assert!(st.len() <= MAX_TENSORS && st.len() == st.tensors().count());
    assert!(st.metadata_entries().count() <= MAX_METADATA);
    let mut expected = 0usize;
    for t in st.tensors() {
        let (begin, end) = t.data_offsets();
        assert_eq!(begin, expected, "tensors do not tile the buffer");
        let n = t.shape().iter().product::<usize>();
        assert_eq!(end - begin, n * 4);
        assert_eq!(t.num_elements(), n);
        assert_eq!(t.data(), &bytes[data_start + begin..data_start + end]);
        let mut v = vec![0f32; n];
        t.read_f32_into(&mut v).expect("read_f32_into");
        assert!(v
            .iter()
            .zip(t.data().chunks_exact(4))
            .all(|(x, b)| x.to_le_bytes() == b));
        expected = end;
    }
    assert_eq!(
        data_start + expected,
        bytes.len(),
        "bytes after the last tensor"
    );
}

/// The reference `safetensors` crate accepts what we accept, with the same tensors.
fn check_reference_agrees(bytes: &[u8], st: &SafeTensors<'_>) {
    let r = safetensors::SafeTensors::deserialize(bytes)
        .unwrap_or_else(|e| panic!("the reference refuses what we accept: {e:?}"));
    assert_eq!(r.len(), st.len());
    for t in st.tensors() {
        let name = unescape(t.name());
        let rt = r.tensor(&name).expect("the reference has the tensor");
        assert_eq!(rt.dtype(), safetensors::Dtype::F32);
        assert_eq!(rt.shape(), t.shape());
        assert_eq!(rt.data(), t.data());
    }
}

fn unescape(raw: &str) -> String {
    let mut buf = vec![0u8; raw.len()];
    unescape_json_str(raw, &mut buf)
        .expect("a parsed name unescapes")
        .to_owned()
}

/// Writes the parsed tensors and metadata again with our writer.
fn rewrite(st: &SafeTensors<'_>) -> Vec<u8> {
    let names: Vec<String> = st.tensors().map(|t| unescape(t.name())).collect();
    let shapes: Vec<Vec<usize>> = st.tensors().map(|t| t.shape().to_vec()).collect();
    let values: Vec<Vec<f32>> = st.tensors().map(|t| t.values().collect()).collect();
    let meta: Vec<(String, String)> = st
        .metadata_entries()
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect();
    let args: Vec<TensorArg<'_>> = names
        .iter()
        .zip(&shapes)
        .zip(&values)
        .map(|((n, s), v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    let margs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = vec![0u8; written_len(&args, &margs)];
    let n = write(&mut out, &args, &margs).expect("what parsed can be written");
    assert_eq!(n, out.len());
    out
}

fn assert_same_content(a: &SafeTensors<'_>, b: &SafeTensors<'_>) {
    assert_eq!(a.len(), b.len());
    for t in a.tensors() {
        let name = unescape(t.name());
        let u = b.tensor(&name).expect("tensor kept");
        assert_eq!(u.shape(), t.shape());
        assert_eq!(u.data(), t.data());
    }
    let ma: Vec<(String, String)> = a
        .metadata_entries()
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect();
    let mb: Vec<(String, String)> = b
        .metadata_entries()
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect();
    assert_eq!(ma, mb);
}

/// The model layer on top: refuses with an error or loads; what loads round-trips.
fn check_model(st: &SafeTensors<'_>) {
    let _ = verify_checksum(st);
    let dims = match read_dims(st, None) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // The file holds every parameter, so this allocation is bounded by its size.
    let mut flat = vec![0f32; dims.num_params()];
    let mut mean = vec![0f32; dims.hidden];
    let mut var = vec![0f32; dims.hidden];
    let mut p = ParamsMut::from_flat(dims, &mut flat).expect("read_dims validated the dims");
    let has_bn = match load_model(st, &mut p, Some((&mut mean, &mut var))) {
        Ok(b) => b,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let meta: Vec<(String, String)> = st
        .metadata_entries()
        .map(|(k, v)| (unescape(k), unescape(v)))
        .filter(|(k, _)| k != CHECKSUM_KEY)
        .take(MAX_METADATA - 1)
        .collect();
    let margs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bn = has_bn.then_some((mean.as_slice(), var.as_slice()));
    let mut out = vec![0u8; saved_model_len(dims, has_bn, &margs)];
    let n = save_model(&mut out, p.as_ref(), bn, &margs).expect("a loaded model saves");
    assert_eq!(n, out.len());
    let st2 = SafeTensors::parse(&out).expect("save_model's output parses");
    assert_eq!(read_dims(&st2, None), Ok(dims));
    assert!(verify_checksum(&st2).expect("own checksum").is_some());
    let mut flat2 = vec![0f32; dims.num_params()];
    let mut mean2 = vec![0f32; dims.hidden];
    let mut var2 = vec![0f32; dims.hidden];
    let mut p2 = ParamsMut::from_flat(dims, &mut flat2).expect("dims");
    let had = load_model(&st2, &mut p2, Some((&mut mean2, &mut var2))).expect("reload");
    assert_eq!(had, has_bn);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&flat), bits(&flat2));
    assert_eq!(bits(&mean), bits(&mean2));
    assert_eq!(bits(&var), bits(&var2));
}
