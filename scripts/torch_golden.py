#!/usr/bin/env python3
"""Golden values of PyTorch's CPU generator for cli/src/torchrandom.rs.

Run with torch 2.15.0+cu132 (x86_64 wheel, numpy installed), from the repository root:

    /work/torchenv/bin/python scripts/torch_golden.py > cli/tests/golden/torch_generator.txt

CI does not run this script (CI has no torch); the file it wrote is committed and
cli/tests/torch_generator.rs replays it bit for bit. The script runs itself twice: once as
installed (x86 wheels: the AVX2 normal kernel, also where torch reports AVX512) for the `avx2`
section, once with ATEN_CPU_CAPABILITY=default (torch's scalar kernels, as ARM and generic
builds run them) for the `generic` section.

Format: one record a line, `#` lines are comments. The file is a program: the test applies each
record in order to the named generator and compares every value.
  kernel avx2|generic                  kernel of the generators made after it
  gen NAME SEED                        NAME = torch.Generator().manual_seed(SEED)
  random NAME N v...                   N outputs of random() (8 hex digits)
  random64 NAME N v...                 N outputs of random64() (16 hex digits)
  rand_f32 NAME N v...                 torch.rand(N) float32 (bits, 8 hex digits)
  rand_f64 NAME N v...                 torch.rand(N, dtype=float64) (bits, 16 hex digits)
  randn NAME N v...                    torch.randn(N) float32 (bits)
  randn_fnv NAME N HASH FIRST LAST     the same, as FNV-1a 64 of the little-endian bits
  randint NAME LOW HIGH N v...         torch.randint(LOW, HIGH, (N,)) (decimal)
  probs ID N v...                      a float32 probability row (bits)
  multinomial NAME ID K                torch.multinomial(row ID, 1) drew category K
  fill16 d... o...                     torch's Box-Muller of 16 chosen uniforms d (bits): o
                                       (drawn through a generator whose state was set so
                                       that its next draws are those uniforms)
  notebook_init NAME V E T H           the seed notebook's init cell with generator NAME
  tensor NAME TENSOR N v...            its tensor TENSOR after the cell's expressions (bits)
"""

import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch

SEED = 2147483647
N_TRAIN = 182625  # Xtr.shape[0] in the seed notebook
BATCH = 32


def hex32(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def f32_bits(t):
    return ["%08x" % v for v in t.contiguous().view(torch.int32).numpy().astype(np.uint32)]


def f64_bits(t):
    return ["%016x" % v for v in t.contiguous().view(torch.int64).numpy().astype(np.uint64)]


def fnv1a(t):
    h = 0xCBF29CE484222325
    for b in t.contiguous().numpy().astype("<f4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def line(*fields):
    print(" ".join(str(f) for f in fields))


class Gen:
    """A named torch generator whose every draw is printed as a record."""

    def __init__(self, name, seed):
        self.name = name
        self.g = torch.Generator().manual_seed(seed)
        line("gen", name, seed)

    def random64(self, n):
        # torch exposes no raw 32-bit draw: random_() over the full int64 range is random64().
        t = torch.empty(n, dtype=torch.int64).random_(-(2**63), None, generator=self.g)
        return [int(v) & 0xFFFFFFFFFFFFFFFF for v in t.tolist()]

    def random(self, n):
        assert n % 2 == 0
        out = []
        for v in self.random64(n // 2):
            out += [v >> 32, v & 0xFFFFFFFF]
        line("random", self.name, n, *("%08x" % v for v in out))
        return out

    def random64_line(self, n):
        line("random64", self.name, n, *("%016x" % v for v in self.random64(n)))

    def rand_f32(self, n):
        line("rand_f32", self.name, n, *f32_bits(torch.rand(n, generator=self.g)))

    def rand_f64(self, n):
        t = torch.rand(n, generator=self.g, dtype=torch.float64)
        line("rand_f64", self.name, n, *f64_bits(t))

    def randn(self, n):
        t = torch.randn(n, generator=self.g)
        line("randn", self.name, n, *f32_bits(t))
        return t

    def randn_fnv(self, n):
        t = torch.randn(n, generator=self.g)
        line("randn_fnv", self.name, n, fnv1a(t), hex32(t[0]), hex32(t[-1]))

    def randint(self, low, high, n):
        t = torch.randint(low, high, (n,), generator=self.g)
        line("randint", self.name, low, high, n, *t.tolist())


def untemper(y):
    """The mt19937 state word whose tempered output is y."""
    y ^= y >> 18
    y ^= (y << 15) & 0xEFC60000
    t = y
    for _ in range(4):
        t = y ^ ((t << 7) & 0x9D2C5680)
    y = t & 0xFFFFFFFF
    t = y
    for _ in range(2):
        t = y ^ (t >> 11)
    return t


def draws_of(outputs):
    """A generator whose next len(outputs) <= 623 random() draws are `outputs`."""
    g = torch.Generator()
    raw = bytearray(g.get_state().numpy().tobytes())
    words = [untemper(v) for v in outputs] + [0] * (624 - len(outputs))
    # CPUGeneratorImplStateLegacy: seed u64, left i32, seeded i32, next u64, state u64[624], ...
    raw[8:24] = struct.pack("<iiQ", 624, 1, 0)
    raw[24 : 24 + 624 * 8] = struct.pack("<624Q", *words)
    g.set_state(torch.frombuffer(raw, dtype=torch.uint8).clone())
    return g


def tails():
    """Box-Muller on chosen uniforms: both ends of [0, 1), the exponent steps and the SQRTHF
    switch of the log's argument 1 - d, and the octant edges of the angle 2 pi d."""
    one = 1 << 24
    near = lambda k: [k + i for i in range(-3, 4) if 0 <= k + i < one]
    d1 = list(range(64)) + list(range(one - 64, one))
    for m in range(1, 24):
        d1 += near(one - (one >> m)) + near(one - round(0.70710678 * (one >> m)))
    d2 = list(range(32)) + list(range(one - 32, one))
    for n in range(9):
        d2 += near(n * (one >> 3))
    rng = np.random.RandomState(16)
    d1 = sorted(set(d1))
    d2 = sorted(set(d2))
    d1 += list(rng.randint(0, one, size=-len(d1) % 8))
    assert len(d2) <= len(d1)
    d2 += list(rng.randint(0, one, size=len(d1) - len(d2)))
    d2 = [d2[i] for i in rng.permutation(len(d2))]
    blocks = [d1[i : i + 8] + d2[i : i + 8] for i in range(0, len(d1), 8)]
    for start in range(0, len(blocks), 38):
        chunk = blocks[start : start + 38]
        # Random top bytes: the f32 uniform keeps only the low 24 bits.
        outputs = [int(k) | (int(rng.randint(0, 256)) << 24) for b in chunk for k in b]
        t = torch.randn(16 * len(chunk), generator=draws_of(outputs))
        for i, b in enumerate(chunk):
            d = torch.tensor([k / one for k in b], dtype=torch.float32)
            line("fill16", *f32_bits(d), *f32_bits(t[16 * i : 16 * i + 16]))


def notebook_cell(g, vocab_size, n_emb, block_size, n_hidden):
    """The seed notebook's init cell, verbatim but for the generator's name."""
    C = torch.randn((vocab_size, n_emb), generator=g)
    W1 = torch.randn((n_emb * block_size, n_hidden), generator=g) * (5 / 3) / ((n_emb * block_size) ** 0.5)
    b1 = torch.randn(n_hidden, generator=g)
    W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
    b2 = torch.randn(vocab_size, generator=g) * 0.1
    bngain = torch.randn((1, n_hidden), generator=g) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g) * 0.1
    return [("C", C), ("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2), ("bngain", bngain), ("bnbias", bnbias)]


def section(kernel):
    line("kernel", kernel)
    # mt19937 and its two raw draws; seed 2**32 + 5 seeds like 5 (torch keeps seed & 0xffffffff).
    for i, seed in enumerate([SEED, 0, 42, 2**32 + 5]):
        g = Gen("raw%d" % i, seed)
        out = g.random(1000)
        if seed < 2**32:
            # numpy's RandomState seeds mt19937 with the same init_genrand.
            want = np.random.RandomState(seed).randint(0, 2**32, size=1000, dtype=np.uint32)
            assert out == [int(v) for v in want], "random() disagrees with numpy's mt19937"
        g.random64_line(500)
    # Uniforms.
    g = Gen("uniform", SEED)
    g.rand_f32(1000)
    g.rand_f64(500)
    g.rand_f32(17)
    # randn: the double path (< 16, the cached normal across calls) and every size class of
    # the float path (multiples of 16, the recomputed tail, the tail overlapping one block).
    g = Gen("small", SEED)
    for n in [1, 2, 7, 15, 1, 3]:
        g.randn(n)
    g.randn(16)
    g.randn(1)  # the cache survives a float-path call
    g = Gen("normal", SEED)
    for n in [16, 17, 27, 31, 32, 64, 100, 270, 1920, 6000, 5]:
        g.randn(n)
    g.randn_fnv(100003)
    g.randn_fnv(1 << 20)
    g = Gen("normal42", 42)
    for n in [16, 17, 33, 1000]:
        g.randn(n)
    # randint: the notebook's batch, a range from 2**28 on (random64), one from 2**32 on.
    g = Gen("randint", SEED)
    g.randint(0, N_TRAIN, BATCH)
    g.randint(0, N_TRAIN, BATCH)
    g.randint(-100, 100, 20)
    g.randint(0, 2**28 - 1, 20)
    g.randint(0, 2**28, 20)
    g.randint(0, 2**30 + 3, 20)
    g.randint(-5, 2**33 + 7, 20)
    g.randint(0, N_TRAIN, BATCH)
    # multinomial(probs, 1): rows of 27 probabilities, drawn in turn as a sampling loop does.
    rows = []
    rg = torch.Generator().manual_seed(7)
    for i in range(3):
        rows.append(torch.softmax(torch.randn(1, 27, generator=rg) * (i + 1), dim=1))
    peaked = torch.full((1, 27), 0.01 / 26)
    peaked[0, 13] = 0.99
    rows.append(peaked)
    zeros = torch.softmax(torch.randn(1, 27, generator=rg), dim=1)
    zeros[0, ::3] = 0.0
    rows.append(zeros)
    one = torch.zeros(1, 27)
    one[0, 26] = 1.0
    rows.append(one)
    rows.append(torch.full((1, 27), 1.0 / 27))
    for i, r in enumerate(rows):
        line("probs", "p%d" % i, 27, *f32_bits(r[0]))
    for name, seed in [("sample", SEED + 10), ("sample2", 3)]:
        g = Gen(name, seed)
        for k in range(300):
            i = (k * 5 + k // 7) % len(rows)
            ix = torch.multinomial(rows[i], num_samples=1, generator=g.g).item()
            line("multinomial", name, "p%d" % i, ix)
    tails()
    # The seed notebook's init cell (Exercise 1: H=64, Exercise 4: H=200), then three batches;
    # the same draws once more as raw randn calls.
    for h in [64, 200]:
        g = Gen("init%d" % h, SEED)
        line("notebook_init", g.name, 27, 10, 3, h)
        for tname, t in notebook_cell(g.g, 27, 10, 3, h):
            line("tensor", g.name, tname, t.numel(), *f32_bits(t.flatten()))
        for _ in range(3):
            g.randint(0, N_TRAIN, BATCH)
        g = Gen("raw_init%d" % h, SEED)
        for n in [27 * 10, 30 * h, h, h * 27, 27, h, h]:
            g.randn(n)
        for _ in range(3):
            g.randint(0, N_TRAIN, BATCH)


def division_check():
    """Is `W1 * (5/3) / 30**0.5` a true f32 division? (printed as a comment)"""
    g = torch.Generator().manual_seed(SEED)
    raw = torch.randn(1 << 16, generator=g)
    got = (raw * (5 / 3) / (30**0.5)).numpy()
    x = raw.numpy() * np.float32(5 / 3)
    div = x / np.float32(30**0.5)
    recip = x * np.float32(1 / 30**0.5)
    assert 30**0.5 == math.sqrt(30)
    assert np.array_equal(got.view(np.uint32), div.view(np.uint32)), "not a true division"
    n_recip = int(np.sum(got.view(np.uint32) != recip.view(np.uint32)))
    line("# `* (5/3) / 30**0.5` is f32(x * f32(5/3)) / f32(sqrt(30)), a true division: it matches")
    line("# torch on all %d values; a multiply by f32(1/sqrt(30)) differs on %d of them." % (len(got), n_recip))


def main():
    if len(sys.argv) > 1:
        section(sys.argv[1])
        return
    line("# PyTorch CPU generator golden values: written by scripts/torch_golden.py with torch",
         torch.__version__)
    line("# Command: /work/torchenv/bin/python scripts/torch_golden.py > cli/tests/golden/torch_generator.txt")
    line("# The avx2 section ran with capability", torch.backends.cpu.get_cpu_capability(),
         "(x86 wheels run the AVX2 normal kernel there); the generic section with ATEN_CPU_CAPABILITY=default.")
    division_check()
    sys.stdout.flush()
    for kernel, env in [("avx2", {}), ("generic", {"ATEN_CPU_CAPABILITY": "default"})]:
        child_env = dict(os.environ)
        child_env.pop("ATEN_CPU_CAPABILITY", None)
        child_env.update(env)
        code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
        cap = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert (cap == "DEFAULT") == (kernel == "generic"), "capability %s for %s" % (cap, kernel)
        subprocess.run([sys.executable, __file__, kernel], env=child_env, check=True)


if __name__ == "__main__":
    main()
