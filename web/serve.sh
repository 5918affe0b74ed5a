#!/usr/bin/env bash
# Builds the web page (makemore.wasm and the static files) into target/web/site/ and serves it on
# http://127.0.0.1:PORT/ (default 8000). `--build-only` builds and stops. Runs from any directory.
#   web/serve.sh [--build-only] [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."

port=8000 build_only=0
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    ''|*[!0-9]*) echo "usage: web/serve.sh [--build-only] [PORT]" >&2; exit 2 ;;
    *) port=$arg ;;
  esac
done

target=${CARGO_TARGET_DIR:-target}
site=$target/web/site
limit=307200 # bytes: the size budget of makemore.wasm (300 KB; web/e2e/e2e.mjs fails above it)

# SIMD128 for the wasm target only: host builds sharing target/ keep their flags (and their cache).
# RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS, if set, take precedence over the target's flags in cargo,
# so the feature is appended to them (with --target they do not reach build scripts).
simd="-C target-feature=+simd128"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$simd"
if [ -n "${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
  CARGO_ENCODED_RUSTFLAGS="$CARGO_ENCODED_RUSTFLAGS"$'\x1f-C\x1ftarget-feature=+simd128'
  export CARGO_ENCODED_RUSTFLAGS
elif [ -n "${RUSTFLAGS:-}" ]; then
  export RUSTFLAGS="$RUSTFLAGS $simd"
fi
cargo build -p makemore-web --profile web --target wasm32-unknown-unknown

wasm=$target/wasm32-unknown-unknown/web/makemore_web.wasm
rm -rf "$site"
mkdir -p "$site"
cp web/index.html web/*.js web/*.css "$site/"
# binaryen's wasm-opt: names and custom sections stripped, and about a third smaller.
if ! command -v wasm-opt >/dev/null; then
  echo "web/serve.sh: wasm-opt not found: install binaryen (Debian: apt-get install binaryen; or npm i -g binaryen)" >&2
  exit 1
fi
wasm-opt -Oz --strip-debug --strip-producers --enable-simd --enable-bulk-memory --enable-sign-ext \
  --enable-nontrapping-float-to-int --enable-mutable-globals "$wasm" -o "$site/makemore.wasm"
# The word list is shared data, never committed: copied if data/names.txt resolves (the page
# otherwise asks for a file).
if [ -r data/names.txt ]; then
  cp -L data/names.txt "$site/names.txt"
else
  echo "warning: data/names.txt does not resolve (it links to ../../shared/data/names.txt): the page will ask for a word list" >&2
fi

bytes=$(stat -c %s "$site/makemore.wasm")
echo "makemore.wasm: $bytes bytes ($(gzip -9 -c "$site/makemore.wasm" | wc -c) gzipped; budget $limit)"
if [ "$bytes" -gt "$limit" ]; then
  # Said loudly; a failure in the end-to-end test (docs/web.md says where the bytes go).
  echo "WARNING: makemore.wasm is $bytes bytes, over the budget of $limit bytes (see docs/web.md)" >&2
fi
echo "site: $site"

[ "$build_only" -eq 1 ] && exit 0
echo "serving on http://127.0.0.1:$port/ (Ctrl-C stops)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site"
