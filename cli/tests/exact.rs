//! The exact kernels' choice through the binary: `makemore train` prints it and writes it to
//! `metrics.json`; `MAKEMORE_EXACT` forces it, and a value that is not `auto`, `scalar` or
//! `vector` is refused with the variable, the value and the choices.

#[allow(dead_code)]
mod common;

use common::{metrics, names_path};
use makemore_core::simd::{ExactKernel, Isa};

fn train(out: &std::path::Path, isa: &str, exact: Option<&str>) -> common::Run {
    let names = names_path();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"));
    cmd.args(["train", "--input"])
        .arg(&names)
        .args(["--steps", "2", "--samples", "0", "--isa", isa, "--out"])
        .arg(out)
        .env_remove("RUST_BACKTRACE")
        .env_remove("MAKEMORE_ISA");
    match exact {
        Some(v) => cmd.env("MAKEMORE_EXACT", v),
        None => cmd.env_remove("MAKEMORE_EXACT"),
    };
    let o = cmd.output().expect("cannot start the makemore binary");
    common::Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The printed line and `metrics.json`'s `exact_kernels`, each kernel with `want` (or either
/// implementation when `None`).
fn check_reported(run: &common::Run, out: &std::path::Path, want: Option<&str>) {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("exact kernels: "))
        .unwrap_or_else(|| panic!("no exact kernels line\n{}", run.dump()));
    let m = metrics(out);
    let exact = m["exact_kernels"]
        .as_object()
        .unwrap_or_else(|| panic!("metrics.json has no exact_kernels: {m}"));
    assert_eq!(exact.len(), ExactKernel::ALL.len(), "{m}");
    for k in ExactKernel::ALL {
        let imp = exact[k.name()].as_str().unwrap();
        match want {
            Some(w) => assert_eq!(imp, w, "{}: {m}", k.name()),
            None => assert!(imp == "vector" || imp == "scalar", "{}: {m}", k.name()),
        }
        assert!(
            line.contains(&format!("{} {imp}", k.name())),
            "{line} vs {m}"
        );
    }
}

#[test]
fn the_exact_kernels_choice_is_printed_written_and_forced_by_makemore_exact() {
    let dir = tempfile::tempdir().unwrap();
    let vector_isa = Isa::best();
    for (i, (isa, exact, want)) in [
        ("scalar", None, Some("scalar")),
        (vector_isa.name(), None, None),
        (vector_isa.name(), Some("auto"), None),
        (vector_isa.name(), Some("vector"), Some("vector")),
        (vector_isa.name(), Some("scalar"), Some("scalar")),
    ]
    .into_iter()
    .enumerate()
    {
        // on a scalar-only machine every choice is scalar
        let want = if vector_isa == Isa::Scalar {
            Some("scalar")
        } else {
            want
        };
        let out = dir.path().join(format!("out{i}"));
        let run = train(&out, isa, exact).ok();
        check_reported(&run, &out, want);
    }
}

#[test]
fn a_bad_makemore_exact_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["simd", "Scalar", " vector"] {
        let out = dir.path().join("out");
        let err = train(&out, "auto", Some(bad)).failed();
        assert!(
            err.contains(&format!(
                "MAKEMORE_EXACT=\"{bad}\": unknown choice for the exact kernels; use auto, \
                 scalar or vector, or unset it"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.join("metrics.json").exists());
    }
}
