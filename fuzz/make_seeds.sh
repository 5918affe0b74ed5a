#!/usr/bin/env bash
# Regenerates the committed seed corpora in seeds/<target>/ (small, deterministic inputs that
# reach deep into each target). Needs python3 and the release `makemore` binary.
set -euo pipefail
cd "$(dirname "$0")"
(cd .. && cargo build --release -p cli -q)
bin=../target/release/makemore
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf seeds && mkdir -p seeds/{safetensors,dataset,model,checkpoint,simd}

python3 - "$tmp" <<'PY'
import json, random, struct, sys
tmp = sys.argv[1]
rng = random.Random(7)
syl = ["an", "na", "el", "li", "ma", "ri", "ka", "jo", "se", "ta", "ve", "ny", "ol", "bu"]
names = sorted({"".join(rng.choice(syl) for _ in range(rng.randint(1, 3))) for _ in range(60)})
open(f"{tmp}/words.txt", "w").write("\n".join(names) + "\n")

def st(tensors, meta=None):
    """A safetensors file: tensors = [(name, shape, floats)]."""
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, shape, xs in tensors:
        raw = struct.pack(f"<{len(xs)}f", *xs)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

def model(v, t, e, h, bn, meta=None, flat_bn=False):
    r = random.Random(v * 1000 + h)
    vals = lambda n: [r.uniform(-1, 1) for _ in range(n)]
    bnshape = [h] if flat_bn else [1, h]
    ts = [("C", [v, e], vals(v * e)), ("W1", [t * e, h], vals(t * e * h)), ("b1", [h], vals(h)),
          ("W2", [h, v], vals(h * v)), ("b2", [v], vals(v)), ("bngain", bnshape, vals(h)),
          ("bnbias", bnshape, vals(h))]
    if bn:
        ts += [("bnmean", bnshape, vals(h)), ("bnvar", bnshape, [abs(x) for x in vals(h)])]
    return st(ts, meta)

for d in ("safetensors", "checkpoint"):
    open(f"seeds/{d}/torch_layout.safetensors", "wb").write(model(5, 2, 2, 3, True, flat_bn=True))
    open(f"seeds/{d}/no_bn_with_vocab.safetensors", "wb").write(
        model(5, 2, 2, 3, False, {"vocab": ".abcd", "context": "2", "step": "3", "seed": "1"}))
open("seeds/safetensors/escapes.safetensors", "wb").write(st(
    [("a\\\"\u00e9\U0001F980", [2, 1], [1.0, -0.0]), ("scalar", [], [float("nan")]), ("empty", [0, 3], [])],
    {"k\u0001": "v\\\"", "format": "pt"}))
open("seeds/safetensors/empty.safetensors", "wb").write(struct.pack("<Q", 8) + b"{}      ")

open("seeds/dataset/names.txt", "w").write("\n".join(names) + "\n")
open("seeds/dataset/crlf_bom.txt", "wb").write(b"\xef\xbb\xbf" + "\r\n".join(names[:12]).encode() + b"\r\n")
open("seeds/dataset/blank_dups_unicode.txt", "wb").write(
    "\x05zo\u00e9\n\n  \nanna\nanna\n \u00c9mile \nbo\r\r\n\u65e5\u672c\n".encode())
open("seeds/dataset/invalid_utf8.txt", "wb").write(b"\x02ann\nz\xc3o\n")
open("seeds/dataset/dot.txt", "wb").write(b"\x0bann\nj.r.\n")

r = random.Random(11)
for n in (64, 256, 1024):
    open(f"seeds/model/random_{n}.bin", "wb").write(bytes(r.randrange(256) for _ in range(n)))
open("seeds/model/zeros_512.bin", "wb").write(bytes(512))
open("seeds/model/ones_512.bin", "wb").write(bytes([0xff]) * 512)
# small finite values, valid ids: dims byte picks, then floats tagged as specials 0..127
open("seeds/model/finite_1024.bin", "wb").write(bytes([3, 1, 1, 2, 1] + [2, 4] * 510))
# simd: one seed per kernel group (the first byte picks it), random shapes and values
r = random.Random(11)
for kern in range(10):
    head = [kern, r.randrange(256), r.randrange(256), r.randrange(256)]
    open(f"seeds/simd/kernel{kern}.bin", "wb").write(bytes(head + [r.randrange(256) for _ in range(600)]))
PY

# Checkpoints the way `makemore train` writes them (mid-run without bnmean/bnvar, and final).
$bin train --input "$tmp/words.txt" --out "$tmp/out" --steps 4 --hidden 4 --embedding 2 \
  --context 2 --batch-size 4 --samples 0 >/dev/null
cp "$tmp/out/model.safetensors" seeds/safetensors/makemore_final.safetensors
cp "$tmp/out/model.safetensors" seeds/checkpoint/makemore_final.safetensors
ls -l seeds/*
