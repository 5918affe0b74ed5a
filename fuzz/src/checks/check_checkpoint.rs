//! Fuzz target `checkpoint`: the CLI's checkpoint decoder (safetensors, then the metadata:
//! vocabulary, config, training state) on arbitrary bytes.
//!
//! Shared, as a plain function, by the fuzz target and by the stable replay test
//! (`cli/tests/fuzz_replay.rs` includes this file), so it uses only the `cli` library and std.

use std::path::Path;

use cli::checkpoint::Checkpoint;

/// Never panics for any `bytes`: a clear error naming the file, or a checkpoint that encodes
/// and decodes back to the same parameters, statistics, vocabulary and training state.
pub fn check(bytes: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let ck = match Checkpoint::from_bytes(bytes, path) {
        Ok(ck) => ck,
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(msg.contains("fuzz.safetensors"), "{msg}");
            return;
        }
    };
    let again = Checkpoint::from_bytes(&ck.to_bytes().expect("a loaded checkpoint encodes"), path)
        .expect("an encoded checkpoint decodes");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(again.dims, ck.dims);
    assert_eq!(bits(&again.params), bits(&ck.params));
    assert_eq!(again.vocab, ck.vocab);
    match (&again.bn, &ck.bn) {
        (Some((m1, v1)), Some((m2, v2))) => {
            assert_eq!(bits(m1), bits(m2));
            assert_eq!(bits(v1), bits(v2));
        }
        (None, None) => {}
        _ => panic!("bnmean/bnvar lost or invented"),
    }
    match (&again.run, &ck.run) {
        (Some(a), Some(b)) => {
            assert_eq!(
                (a.step, a.seed, a.steps, a.batch_size),
                (b.step, b.seed, b.steps, b.batch_size)
            );
            assert_eq!(a.lr_decay_step, b.lr_decay_step);
            assert!(a.lr.to_bits() == b.lr.to_bits() || (a.lr.is_nan() && b.lr.is_nan()));
        }
        (None, None) => {}
        _ => panic!("training state lost or invented"),
    }
}
