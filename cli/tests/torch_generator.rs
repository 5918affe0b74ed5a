//! `cli::torchrandom` against real PyTorch: replays `tests/golden/torch_generator.txt` (written
//! by `scripts/torch_golden.py` with torch 2.15; its header has the command and the format) and
//! compares every value bit for bit, for both normal kernels.

use std::collections::{BTreeMap, HashMap};

use cli::torchrandom::{normal_fill_16, notebook_init, NormalKernel, TorchGenerator};

const GOLDEN: &str = include_str!("golden/torch_generator.txt");

/// Records and mismatching records of one (kernel, class), e.g. ("avx2", "randn 16..").
#[derive(Default, Debug)]
struct Tally {
    records: usize,
    failures: Vec<String>,
}

fn hex32(s: &str) -> u32 {
    u32::from_str_radix(s, 16).expect("8 hex digits")
}

fn hex64(s: &str) -> u64 {
    u64::from_str_radix(s, 16).expect("16 hex digits")
}

fn num<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("a number")
}

fn fnv1a(values: &[f32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The size class a randn of `n` elements exercises.
fn randn_class(n: usize) -> &'static str {
    match n {
        0..=15 => "randn <16 (double path)",
        _ if n.is_multiple_of(16) => "randn 16k",
        _ => "randn 16k+r (recomputed tail)",
    }
}

/// Replays the golden file; `force` replaces the kernel every `kernel` record names.
fn replay(force: Option<NormalKernel>) -> BTreeMap<(String, &'static str), Tally> {
    let mut tallies: BTreeMap<(String, &'static str), Tally> = BTreeMap::new();
    let mut kernel_name = String::new();
    let mut kernel = NormalKernel::Avx2;
    let mut gens: HashMap<String, TorchGenerator> = HashMap::new();
    let mut probs: HashMap<String, Vec<f32>> = HashMap::new();
    let mut init: HashMap<(String, String), Vec<f32>> = HashMap::new();
    for (lineno, line) in GOLDEN.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() || f[0].starts_with('#') {
            continue;
        }
        let mut check = |class: &'static str, ok: bool, what: String| {
            let t = tallies.entry((kernel_name.clone(), class)).or_default();
            t.records += 1;
            if !ok {
                t.failures.push(format!("line {}: {what}", lineno + 1));
            }
        };
        match f[0] {
            "kernel" => {
                kernel_name = f[1].to_string();
                kernel = force.unwrap_or(match f[1] {
                    "avx2" => NormalKernel::Avx2,
                    "generic" => NormalKernel::Generic,
                    other => panic!("unknown kernel {other}"),
                });
            }
            "gen" => {
                gens.insert(
                    f[1].to_string(),
                    TorchGenerator::manual_seed(num(f[2]), kernel),
                );
            }
            "probs" => {
                probs.insert(
                    f[1].to_string(),
                    f[3..].iter().map(|s| f32::from_bits(hex32(s))).collect(),
                );
            }
            "fill16" => {
                let bits: Vec<u32> = f[1..].iter().map(|s| hex32(s)).collect();
                let mut d = [0f32; 16];
                for (x, &b) in d.iter_mut().zip(&bits[..16]) {
                    *x = f32::from_bits(b);
                }
                normal_fill_16(&mut d, kernel);
                let got: Vec<u32> = d.iter().map(|x| x.to_bits()).collect();
                check(
                    "Box-Muller tails (chosen uniforms)",
                    got == bits[16..],
                    format!("uniforms {:08x?}", &bits[..16]),
                );
            }
            "tensor" => {
                let got = &init[&(f[1].to_string(), f[2].to_string())];
                let want: Vec<u32> = f[4..].iter().map(|s| hex32(s)).collect();
                let got: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
                let first = got.iter().zip(&want).position(|(a, b)| a != b);
                check(
                    "notebook_init tensors",
                    got == want,
                    format!("{} {}: first difference at {first:?}", f[1], f[2]),
                );
            }
            kind => {
                let g = gens.get_mut(f[1]).expect("gen before use");
                match kind {
                    "random" => {
                        let n: usize = num(f[2]);
                        let got: Vec<u32> = (0..n).map(|_| g.random()).collect();
                        let want: Vec<u32> = f[3..].iter().map(|s| hex32(s)).collect();
                        check("random", got == want, "random()".into());
                    }
                    "random64" => {
                        let n: usize = num(f[2]);
                        let got: Vec<u64> = (0..n).map(|_| g.random64()).collect();
                        let want: Vec<u64> = f[3..].iter().map(|s| hex64(s)).collect();
                        check("random64", got == want, "random64()".into());
                    }
                    "rand_f32" => {
                        let n: usize = num(f[2]);
                        let got: Vec<u32> = (0..n).map(|_| g.uniform_f32().to_bits()).collect();
                        let want: Vec<u32> = f[3..].iter().map(|s| hex32(s)).collect();
                        check("rand f32", got == want, "rand f32".into());
                    }
                    "rand_f64" => {
                        let n: usize = num(f[2]);
                        let got: Vec<u64> = (0..n).map(|_| g.uniform_f64().to_bits()).collect();
                        let want: Vec<u64> = f[3..].iter().map(|s| hex64(s)).collect();
                        check("rand f64", got == want, "rand f64".into());
                    }
                    "randn" => {
                        let n: usize = num(f[2]);
                        let mut out = vec![f32::NAN; n];
                        g.randn_f32(&mut out);
                        let got: Vec<u32> = out.iter().map(|x| x.to_bits()).collect();
                        let want: Vec<u32> = f[3..].iter().map(|s| hex32(s)).collect();
                        let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                        check(
                            randn_class(n),
                            got == want,
                            format!("randn {n}: {diff} values differ"),
                        );
                    }
                    "randn_fnv" => {
                        let n: usize = num(f[2]);
                        let mut out = vec![f32::NAN; n];
                        g.randn_f32(&mut out);
                        let ok = fnv1a(&out) == hex64(f[3])
                            && out[0].to_bits() == hex32(f[4])
                            && out[n - 1].to_bits() == hex32(f[5]);
                        check("randn >= 10^5 (FNV-1a)", ok, format!("randn {n}"));
                    }
                    "randint" => {
                        let (low, high): (i64, i64) = (num(f[2]), num(f[3]));
                        let n: usize = num(f[4]);
                        let got: Vec<i64> = (0..n).map(|_| g.randint(low, high)).collect();
                        let want: Vec<i64> = f[5..].iter().map(|s| num(s)).collect();
                        let class = match (high - low) as u64 {
                            r if r < 1 << 28 => "randint range < 2^28 (random)",
                            r if r < 1 << 32 => "randint range in [2^28, 2^32) (random64)",
                            _ => "randint range >= 2^32 (random64)",
                        };
                        check(class, got == want, format!("randint({low}, {high})"));
                    }
                    "multinomial" => {
                        let got = g.multinomial1(&probs[f[2]]);
                        let want: usize = num(f[3]);
                        check(
                            "multinomial",
                            got == want,
                            format!("row {}: drew {got}, torch {want}", f[2]),
                        );
                    }
                    "notebook_init" => {
                        let (v, e, t, h): (usize, usize, usize, usize) =
                            (num(f[2]), num(f[3]), num(f[4]), num(f[5]));
                        let sizes = [v * e, t * e * h, h, h * v, v, h, h];
                        let mut bufs: Vec<Vec<f32>> =
                            sizes.iter().map(|&n| vec![f32::NAN; n]).collect();
                        let [c, w1, b1, w2, b2, bngain, bnbias] = &mut bufs[..] else {
                            unreachable!()
                        };
                        notebook_init(g, [c, w1, b1, w2, b2, bngain, bnbias], t * e);
                        let names = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"];
                        for (name, buf) in names.iter().zip(bufs) {
                            init.insert((f[1].to_string(), name.to_string()), buf);
                        }
                    }
                    other => panic!("line {}: unknown record {other}", lineno + 1),
                }
            }
        }
    }
    tallies
}

/// Asserts that each listed class has records in both kernels' sections and that none differs;
/// prints every failing record before failing.
fn assert_classes(classes: &[&str]) {
    let tallies = replay(None);
    let mut failures = Vec::new();
    for kernel in ["avx2", "generic"] {
        for &class in classes {
            match tallies.get(&(kernel.to_string(), class)) {
                None => failures.push(format!("{kernel}: no {class} records in the golden file")),
                Some(t) => {
                    println!("{kernel:8} {class:42} {} records", t.records);
                    failures.extend(t.failures.iter().map(|f| format!("{kernel}: {class}: {f}")));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mt19937_draws_match_torch() {
    assert_classes(&["random", "random64"]);
}

#[test]
fn uniforms_match_torch() {
    assert_classes(&["rand f32", "rand f64"]);
}

#[test]
fn randn_double_path_and_cached_normal_match_torch() {
    assert_classes(&["randn <16 (double path)"]);
}

#[test]
fn randn_box_muller_kernels_match_torch() {
    assert_classes(&[
        "randn 16k",
        "randn 16k+r (recomputed tail)",
        "randn >= 10^5 (FNV-1a)",
        "Box-Muller tails (chosen uniforms)",
    ]);
}

#[test]
fn randint_matches_torch() {
    assert_classes(&[
        "randint range < 2^28 (random)",
        "randint range in [2^28, 2^32) (random64)",
        "randint range >= 2^32 (random64)",
    ]);
}

#[test]
fn multinomial_matches_torch() {
    assert_classes(&["multinomial"]);
}

#[test]
fn notebook_init_matches_torch() {
    assert_classes(&["notebook_init tensors"]);
}

/// The golden file tells the kernels apart: replayed with the other kernel, the float path of
/// each section differs (so the kernel tests above cannot pass with the wrong kernel).
#[test]
fn each_kernel_section_fails_with_the_other_kernel() {
    for (force, section) in [
        (NormalKernel::Generic, "avx2"),
        (NormalKernel::Avx2, "generic"),
    ] {
        let tallies = replay(Some(force));
        let t = &tallies[&(section.to_string(), "randn 16k")];
        assert!(
            !t.failures.is_empty(),
            "the {section} randn records also match the {force:?} kernel"
        );
        let small = &tallies[&(section.to_string(), "randn <16 (double path)")];
        assert!(small.failures.is_empty(), "the double path has no kernel");
    }
}

#[test]
fn discard_equals_drawing() {
    for n in [
        0u64, 1, 2, 622, 623, 624, 625, 1247, 1248, 1249, 5000, 100_003,
    ] {
        let mut drawn = TorchGenerator::manual_seed(2147483647, NormalKernel::Avx2);
        for _ in 0..n {
            drawn.random();
        }
        let mut skipped = TorchGenerator::manual_seed(2147483647, NormalKernel::Avx2);
        skipped.discard(n);
        let a: Vec<u32> = (0..1500).map(|_| drawn.random()).collect();
        let b: Vec<u32> = (0..1500).map(|_| skipped.random()).collect();
        assert_eq!(a, b, "discard({n})");
    }
}

#[test]
fn randint_range_never_panics_and_matches_randint() {
    use std::num::NonZeroU64;
    let mut a = TorchGenerator::manual_seed(5, NormalKernel::Generic);
    let mut b = a.clone();
    let range = NonZeroU64::new(u64::MAX).unwrap();
    let x = a.randint_range(i64::MIN, range);
    assert_eq!(
        x,
        (b.random64() % u64::MAX).wrapping_add(i64::MIN as u64) as i64
    );
    assert_eq!(a.randint(-3, 4), b.randint(-3, 4));
}
