//! `MAKEMORE_EXACT`, the exact kernels' choice, and the calibration's cost. One test in its own
//! binary: it sets the process's environment, which no other thread reads meanwhile, and times
//! the first `Kernels::new` of the process.

use makemore_core::simd::{Impl, Isa, Kernels};
use std::time::{Duration, Instant};

#[test]
fn makemore_exact_forces_the_choice_and_auto_calibrates_once_in_bounded_time() {
    let before = std::env::var_os(Impl::ENV_VAR);
    std::env::remove_var(Impl::ENV_VAR);
    assert_eq!(Impl::from_env(), Ok(None), "unset");
    let isa = Isa::best();

    // auto: the first Kernels of a vector path calibrates (a few hundred microseconds of
    // kernel calls; the bound leaves room for a loaded machine), the next reuse its choice
    let start = Instant::now();
    let first = Kernels::new(isa).unwrap();
    let took = start.elapsed();
    if isa != Isa::Scalar && !cfg!(miri) {
        assert!(
            took < Duration::from_millis(50),
            "the calibration took {took:?}"
        );
    }
    let again = Kernels::new(isa).unwrap();
    assert_eq!(first.exact_choices(), again.exact_choices());
    assert_eq!(Kernels::best().exact_choices(), first.exact_choices());

    for (value, want) in [
        ("", None),
        ("auto", None),
        ("vector", Some(Impl::Vector)),
        ("scalar", Some(Impl::Scalar)),
    ] {
        std::env::set_var(Impl::ENV_VAR, value);
        assert_eq!(Impl::from_env(), Ok(want), "MAKEMORE_EXACT={value:?}");
        let k = Kernels::new(isa).unwrap();
        for (name, got) in k.exact_choices() {
            let want = match want {
                _ if isa == Isa::Scalar => Impl::Scalar,
                Some(imp) => imp,
                None => {
                    first
                        .exact_choices()
                        .into_iter()
                        .find(|c| c.0 == name)
                        .unwrap()
                        .1
                }
            };
            assert_eq!(got, want, "{name} with MAKEMORE_EXACT={value:?}");
        }
    }
    for bad in ["Scalar", "simd", " auto", "vector,scalar"] {
        std::env::set_var(Impl::ENV_VAR, bad);
        let e = Impl::from_env().expect_err(bad);
        assert_eq!(
            e.to_string(),
            format!(
                "MAKEMORE_EXACT=\"{bad}\": unknown choice for the exact kernels; use auto, \
                 scalar or vector, or unset it"
            )
        );
        // the core goes on with the calibrated choice; the CLI refuses the value first
        assert_eq!(
            Kernels::new(isa).unwrap().exact_choices(),
            first.exact_choices()
        );
    }
    match before {
        Some(v) => std::env::set_var(Impl::ENV_VAR, v),
        None => std::env::remove_var(Impl::ENV_VAR),
    }
}
