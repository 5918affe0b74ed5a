// A cargo runner for wasm32-wasip1: runs a .wasm (a test binary, an example) under Node's WASI
// (node >= 20), with the arguments cargo passes, the process's environment and the host's file
// system at the same paths, and exits with the module's exit code (134 for a trap: a Rust panic
// is `panic=abort` on WASI, so a failing test ends the binary, and its message shows only with
// `-- --nocapture` or RUST_TEST_NOCAPTURE=1).
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $PWD/scripts/wasi-run.mjs" \
//   CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128 -C link-arg=-zstack-size=134217728" \
//   MAKEMORE_ISA=simd128 cargo test -p makemore-core --release --target wasm32-wasip1
//
// from the repository's root (cargo runs a test in its package's directory, so the script's
// path must be absolute). `--no-warnings` silences Node's "WASI is an experimental feature"
// line; Node 20 needs no other flag.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv, env, exit } from 'node:process';

const [wasmPath, ...args] = argv.slice(2);
if (!wasmPath) {
  console.error('usage: node scripts/wasi-run.mjs FILE.wasm [ARGS...]');
  exit(2);
}
// The host's whole file system, at the same paths: the tests find their files from
// env!("CARGO_MANIFEST_DIR"), an absolute path. WASI preview1 has no working directory: the
// module's starts at "/" (wasi-libc's), so a relative path is relative to "/", not to the
// directory cargo runs the test in (a "." preopen beside "/" would make wasi-libc resolve the
// absolute paths against it instead: ENOENT). proptest, which looks for its regression files
// from a relative path, says so on stderr and runs without them.
const wasi = new WASI({
  version: 'preview1',
  args: [wasmPath, ...args],
  env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
// Every WASI function wrapped in a plain JS function: Node 20 calls its WASI functions from wasm
// through V8's "fast API calls", which crash it (SIGSEGV, exit 139, after the module has run to
// completion) once the module has grown its memory far enough (nodejs/node#46777, #53087);
// safetensors.rs' 100 MB header test does. A JS wrapper makes every call a regular one.
const imports = wasi.getImportObject();
const fns = imports.wasi_snapshot_preview1;
for (const name of Object.keys(fns)) {
  const f = fns[name];
  fns[name] = (...a) => f(...a);
}
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, imports);
let code;
try {
  code = wasi.start(instance);
} catch (e) {
  // a trap (a panic under panic=abort is `unreachable`) or another runtime error
  console.error(`wasi-run: ${wasmPath}: ${e && e.stack ? e.stack : e}`);
  code = 134;
}
exit(code ?? 0);
