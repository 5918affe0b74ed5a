//! `Isa::from_env`, the one reading of `MAKEMORE_ISA`. One test in its own binary: it sets the
//! process's environment, which no other thread reads meanwhile.

use makemore_core::simd::Isa;

#[test]
fn makemore_isa_is_read_once_here() {
    let before = std::env::var_os(Isa::ENV_VAR);
    std::env::remove_var(Isa::ENV_VAR);
    assert_eq!(Isa::from_env(), Ok(None), "unset");
    for (value, want) in [
        ("", None),
        ("auto", None),
        ("scalar", Some(Isa::Scalar)),
        ("avx2", Some(Isa::Avx2)),
        ("avx512", Some(Isa::Avx512)),
        ("neon", Some(Isa::Neon)),
        ("simd128", Some(Isa::Simd128)),
    ] {
        std::env::set_var(Isa::ENV_VAR, value);
        assert_eq!(Isa::from_env(), Ok(want), "MAKEMORE_ISA={value:?}");
    }
    for bad in ["sse", "AVX2", " avx2", "auto,avx2"] {
        std::env::set_var(Isa::ENV_VAR, bad);
        let e = Isa::from_env().expect_err(bad);
        // the message names the variable, the value and the choices
        let msg = e.to_string();
        assert_eq!(
            msg,
            format!(
                "MAKEMORE_ISA={bad:?}: unknown instruction set; use auto, scalar, avx2, avx512, \
                 neon or simd128, or unset it"
            )
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = std::ffi::OsStr::from_bytes(b"avx\xff");
        std::env::set_var(Isa::ENV_VAR, bytes);
        assert_eq!(Isa::from_env().unwrap_err().value, bytes);
    }
    match before {
        Some(v) => std::env::set_var(Isa::ENV_VAR, v),
        None => std::env::remove_var(Isa::ENV_VAR),
    }
}
