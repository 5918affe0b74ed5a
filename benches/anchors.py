#!/usr/bin/env python3
"""The anchors of issue 17, in one run: the notebook's Exercise-4 loop (E=10, H=200, T=3,
batch 32, V=27, SGD lr 0.1, the notebook's hand-written backward, as in
scripts/notebook_reference.py) in PyTorch eager and in JAX with the whole step (batch draw,
forward, backward, update) compiled by `jax.jit`, both on one thread; and `makemore train
--steps N --samples 0 --threads 1` with `--isa avx2` and with the default (best) path, reading
steps/s from its metrics.json. Each is timed over N steps after a warm-up, REPEATS times; the
table gives the median µs/step (min-max) and how many times faster than JAX and PyTorch the
makemore runs are.

Not run by CI (it needs torch and jax). Set up a Python environment once:
    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch "jax[cpu]"
then, from the repository, after `cargo build --release -p cli`:
    /tmp/torchenv/bin/python benches/anchors.py --input ../shared/data/names.txt \
        --makemore target/release/makemore --steps 20000
"""
import os

# one thread for XLA and for PyTorch's intra-op pool; must be set before jax and torch load
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_golden import notebook_cell  # noqa: E402  the seed notebook's init cell
from notebook_reference import notebook_step  # noqa: E402  the notebook's step, eager

N_EMB, N_HIDDEN, BLOCK, BATCH, LR = 10, 200, 3, 32, 0.1


def dataset(path):
    """The notebook's Xtr, Ytr (int64 numpy arrays) and vocabulary size."""
    names = open(path, "r").read().splitlines()
    chars = sorted(set("".join(names)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    random.seed(42)
    random.shuffle(names)
    X, Y = [], []
    for name in names[: int(0.8 * len(names))]:
        context = [0] * BLOCK
        for ch in name + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return np.array(X, dtype=np.int64), np.array(Y, dtype=np.int64), len(stoi)


def init(vocab):
    """The notebook's parameters (its init cell, scripts/torch_golden.py's copy) as float32
    numpy arrays."""
    g = torch.Generator().manual_seed(2147483647)
    cell = notebook_cell(g, vocab, N_EMB, BLOCK, N_HIDDEN)
    return [t.numpy().astype(np.float32) for _, t in cell]


def torch_loop(Xtr, Ytr, params, steps):
    """(seconds, last loss) of `steps` steps of the notebook's Exercise-4 loop, eager."""
    Xtr, Ytr = torch.from_numpy(Xtr), torch.from_numpy(Ytr)
    parameters = [torch.from_numpy(p.copy()) for p in params]
    g = torch.Generator().manual_seed(2147483647)
    n = BATCH
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            ix = torch.randint(0, Xtr.shape[0], (n,), generator=g)
            Xb, Yb = Xtr[ix], Ytr[ix]
            loss = notebook_step(parameters, Xb, Yb, LR)
    last = loss.item()
    return time.perf_counter() - t0, last


def jax_step_fn(Xtr, Ytr):
    """The notebook's step, batch draw included, as one function for `jax.jit`."""
    rows = Xtr.shape[0]

    def step(params, key):
        C, W1, b1, W2, b2, bngain, bnbias = params
        key, sub = jax.random.split(key)
        ix = jax.random.randint(sub, (BATCH,), 0, rows)
        Xb, Yb = Xtr[ix], Ytr[ix]
        n = BATCH
        emb = C[Xb]
        embcat = emb.reshape(n, -1)
        hprebn = embcat @ W1 + b1
        bnmean = hprebn.mean(0, keepdims=True)
        bnvar = hprebn.var(0, keepdims=True, ddof=1)
        bnvar_inv = (bnvar + 1e-5) ** -0.5
        bnraw = (hprebn - bnmean) * bnvar_inv
        hpreact = bngain * bnraw + bnbias
        h = jnp.tanh(hpreact)
        logits = h @ W2 + b2
        logprobs = jax.nn.log_softmax(logits, axis=1)
        loss = -logprobs[jnp.arange(n), Yb].mean()
        dlogits = jax.nn.softmax(logits, axis=1)
        dlogits = dlogits.at[jnp.arange(n), Yb].add(-1.0) / n
        dh = dlogits @ W2.T
        dW2 = h.T @ dlogits
        db2 = dlogits.sum(0)
        dhpreact = (1.0 - h**2) * dh
        dbngain = (bnraw * dhpreact).sum(0, keepdims=True)
        dbnbias = dhpreact.sum(0, keepdims=True)
        dhprebn = bngain * bnvar_inv / n * (
            n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0)
        )
        dembcat = dhprebn @ W1.T
        dW1 = embcat.T @ dhprebn
        db1 = dhprebn.sum(0)
        demb = dembcat.reshape(emb.shape)
        dC = jnp.zeros_like(C).at[Xb.reshape(-1)].add(demb.reshape(-1, N_EMB))
        grads = (dC, dW1, db1, dW2, db2, dbngain, dbnbias)
        return tuple(p - LR * g for p, g in zip(params, grads)), key, loss

    return jax.jit(step, donate_argnums=(0,))


def jax_loop(step, params, steps):
    """(seconds, last loss) of `steps` calls of the compiled step (the first call compiles:
    warm up first)."""
    params = tuple(jnp.asarray(p) for p in params)
    key = jax.random.PRNGKey(2147483647)
    t0 = time.perf_counter()
    for _ in range(steps):
        params, key, loss = step(params, key)
    loss.block_until_ready()
    return time.perf_counter() - t0, float(loss)


def makemore_run(binary, input_path, steps, isa):
    """µs/step of one `makemore train` run (its metrics.json's steps_per_second)."""
    with tempfile.TemporaryDirectory(prefix="anchors-") as out:
        cmd = [binary, "train", "--input", input_path, "--steps", str(steps), "--samples", "0",
               "--threads", "1", "--out", out]
        if isa:
            cmd += ["--isa", isa]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        m = json.load(open(os.path.join(out, "metrics.json")))
        return 1e6 / m["steps_per_second"], m["isa"]


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default="data/names.txt")
    ap.add_argument("--makemore", default="target/release/makemore", help="the binary")
    ap.add_argument("--steps", type=int, default=20000, help="timed steps per repeat")
    ap.add_argument("--warmup", type=int, default=1000, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)

    Xtr, Ytr, vocab = dataset(args.input)
    params = init(vocab)
    us = {}

    # both loops must train (the loss starts near ln 27 = 3.3): a broken step fails here
    _, last = torch_loop(Xtr, Ytr, params, args.warmup)
    assert last < 3.0, f"PyTorch: loss {last} after {args.warmup} steps"
    us["PyTorch eager"] = [torch_loop(Xtr, Ytr, params, args.steps)[0] / args.steps * 1e6
                           for _ in range(args.repeats)]
    step = jax_step_fn(jnp.asarray(Xtr, dtype=jnp.int32), jnp.asarray(Ytr, dtype=jnp.int32))
    _, last = jax_loop(step, params, args.warmup)
    assert last < 3.0, f"JAX: loss {last} after {args.warmup} steps"
    us["JAX jit"] = [jax_loop(step, params, args.steps)[0] / args.steps * 1e6
                     for _ in range(args.repeats)]
    for isa in ["avx2", None]:
        runs = [makemore_run(args.makemore, args.input, args.steps, isa)
                for _ in range(args.repeats)]
        us[f"makemore --isa {runs[0][1]}" + ("" if isa else " (default)")] = [r[0] for r in runs]

    print(f"{cpu_model()}; torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}), jax {jax.__version__}; one thread; "
          f"{args.steps} steps x {args.repeats} repeats after {args.warmup} warm-up steps\n")
    med = {k: statistics.median(v) for k, v in us.items()}
    print("| run | µs/step (median) | min-max | vs JAX | vs PyTorch |")
    print("|---|---|---|---|---|")
    for k, v in us.items():
        print(f"| {k} | {med[k]:.1f} | {min(v):.1f}-{max(v):.1f} | "
              f"{med['JAX jit'] / med[k]:.2f}x | {med['PyTorch eager'] / med[k]:.1f}x |")


if __name__ == "__main__":
    main()
