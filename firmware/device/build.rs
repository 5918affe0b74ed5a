//! Links each binary with its own memory layout: `link/<board>-<ram>.x` is copied to
//! `$OUT_DIR/<bin>/memory.x` (the name cortex-m-rt's `link.x` includes), and only that binary
//! gets that directory on its linker search path. No `memory.x` lives in the crate root: the
//! linker would find it first, whatever build.rs copies.

use std::env;
use std::fs;
use std::path::PathBuf;

/// (binary, linker script under `link/`)
const LAYOUTS: [(&str, &str); 4] = [
    ("ex4-128k", "mps2-an386-128k.x"),
    ("ex1-64k", "mps2-an386-64k.x"),
    ("ex4-lean-64k", "mps2-an386-64k.x"),
    ("ex4-m0-sample", "microbit-16k.x"),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for (bin, script) in LAYOUTS {
        let dir = out.join(bin);
        fs::create_dir_all(&dir).expect("create OUT_DIR/<bin>");
        let src = PathBuf::from("link").join(script);
        fs::copy(&src, dir.join("memory.x")).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        println!("cargo:rerun-if-changed={}", src.display());
        println!("cargo:rustc-link-arg-bin={bin}=-L{}", dir.display());
    }
    // cortex-m-rt's link.x (it INCLUDEs memory.x) for every binary
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // the checkpoints the binaries embed (include_bytes! tracks the files themselves)
    println!("cargo:rerun-if-env-changed=MAKEMORE_CHECKPOINT_EX4");
    println!("cargo:rerun-if-env-changed=MAKEMORE_CHECKPOINT_EX1");
    println!("cargo:rerun-if-changed=build.rs");
}
