#!/usr/bin/env python3
"""The notebook's cells run in PyTorch, to hold `makemore --rng torch` against.

Writes cli/tests/golden/torch_notebook.txt and cli/tests/golden/torch_notebook.safetensors:
  - the gradient-check cell (n_emb=10, n_hidden=64): the parameter count and the float32 loss
    of the first batch (the notebook prints 4137 and tensor(3.5571));
  - the Exercise-4 loop (n_emb=10, n_hidden=200, batch 32, lr 0.1 then 0.01 from step 100000,
    manual backward as in the notebook, dC by index_add_): the loss of each of the first 1000
    steps, the loss printed every 10000 steps, and after --steps steps the batchnorm
    calibration on Xtr and the train/val/test losses;
  - the nine tensors after that run (safetensors, as the notebook would save them) and the 20
    names of the notebook's sampling cell (generator seeded 2147483647 + 10).
The initialisation is the seed notebook's cell for both models: C, W1 * (5/3) / 30**0.5, b1
(unscaled), W2 * 0.1, b2 * 0.1, bngain * 0.1 + 1.0, bnbias * 0.1, all from one generator seeded
2147483647, which then draws every batch.

Run by hand, not by CI (it needs torch, numpy and safetensors; 2026-12-03: torch 2.15.0 from
PyPI on x86_64, capability AVX512, one thread):
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy safetensors
    /tmp/torchenv/bin/python scripts/notebook_reference.py --input ../shared/data/names.txt
"""
import argparse
import random
import struct
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from torch_golden import notebook_cell  # the seed notebook's init cell, beside this script


def hexf(x):
    return struct.pack(">f", float(x)).hex()


def notebook_step(parameters, Xb, Yb, lr):
    """One step of the notebook's Exercise-4 loop on the batch (Xb, Yb), eager, under no_grad:
    forward, the hand-written backward, `p.data += -lr * grad` on the seven parameters (dC by
    index_add_). Returns the loss."""
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    n = Xb.shape[0]
    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ W1 + b1
    bnmean = hprebn.mean(0, keepdim=True)
    bnvar = hprebn.var(0, keepdim=True, unbiased=True)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = (hprebn - bnmean) * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Yb)
    dlogits = F.softmax(logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    dh = dlogits @ W2.T
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(0)
    dhpreact = (1.0 - h ** 2) * dh
    dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
    dembcat = dhprebn @ W1.T
    dW1 = embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(emb.shape)
    dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[-1]))
    grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]
    for p, grad in zip(parameters, grads):
        p.data += -lr * grad
    return loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default="../shared/data/names.txt")
    ap.add_argument("--steps", type=int, default=200000)
    ap.add_argument("--out", default="cli/tests/golden/torch_notebook")
    args = ap.parse_args()
    torch.set_num_threads(1)

    names = open(args.input, "r").read().splitlines()
    characters = sorted(list(set("".join(names))))
    stoi = {s: i + 1 for i, s in enumerate(characters)}
    stoi["."] = 0
    itos = {i: s for s, i in stoi.items()}
    vocab_size = len(itos)
    block_size = 3

    def build_dataset(names):
        X, Y = [], []
        for name in names:
            context = [0] * block_size
            for ch in name + ".":
                ix = stoi[ch]
                X.append(context)
                Y.append(ix)
                context = context[1:] + [ix]
        return torch.tensor(X), torch.tensor(Y, dtype=torch.long)

    random.seed(42)
    random.shuffle(names)
    n1 = int(0.8 * len(names))
    n2 = int(0.9 * len(names))
    Xtr, Ytr = build_dataset(names[:n1])
    Xdev, Ydev = build_dataset(names[n1:n2])
    Xte, Yte = build_dataset(names[n2:])

    def init(n_emb, n_hidden):
        g = torch.Generator().manual_seed(2147483647)
        return g, [t for _, t in notebook_cell(g, vocab_size, n_emb, block_size, n_hidden)]

    lines = [f"# written by scripts/notebook_reference.py (torch {torch.__version__}, "
             f"capability {torch.backends.cpu.get_cpu_capability()}); f32 values as big-endian hex bits"]

    # the gradient-check cell
    g, params = init(10, 64)
    C, W1, b1, W2, b2, bngain, bnbias = params
    n = 32
    ix = torch.randint(0, Xtr.shape[0], (n,), generator=g)
    Xb, Yb = Xtr[ix], Ytr[ix]
    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ W1 + b1
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff ** 2
    bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum ** -1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), Yb].mean()
    lines.append(f"gradcheck_parameters {sum(p.nelement() for p in params)}")
    lines.append(f"gradcheck_batch {' '.join(str(int(i)) for i in ix)}")
    lines.append(f"gradcheck_loss {hexf(loss.item())}  # {loss.item():.4f}")
    print(f"gradcheck cell: {sum(p.nelement() for p in params)} parameters, loss {loss.item():.4f}")

    # the Exercise-4 loop
    g, parameters = init(10, 200)
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    batch_size = n = 32
    first, printed = [], []
    t0 = time.time()
    with torch.no_grad():
        for i in range(args.steps):
            ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
            Xb, Yb = Xtr[ix], Ytr[ix]
            loss = notebook_step(parameters, Xb, Yb, 0.1 if i < 100000 else 0.01)
            if i < 1000:
                first.append(loss.item())
            if i % 10000 == 0:
                print(f"{i:7d}/{args.steps:7d}: {loss.item():.4f}", flush=True)
                printed.append((i, loss.item()))
    seconds = time.time() - t0
    lines.append(f"train_losses {len(first)} {' '.join(hexf(x) for x in first)}")
    lines.append("train_printed " + " ".join(f"{i}:{hexf(x)}" for i, x in printed))

    with torch.no_grad():
        emb = C[Xtr]
        embcat = emb.view(emb.shape[0], -1)
        hpreact = embcat @ W1 + b1
        bnmean = hpreact.mean(0, keepdim=True)
        bnvar = hpreact.var(0, keepdim=True, unbiased=True)

        def split_loss(x, y):
            emb = C[x]
            embcat = emb.view(emb.shape[0], -1)
            hpreact = embcat @ W1 + b1
            hpreact = bngain * (hpreact - bnmean) * (bnvar + 1e-5) ** -0.5 + bnbias
            h = torch.tanh(hpreact)
            logits = h @ W2 + b2
            return F.cross_entropy(logits, y).item()

        losses = [split_loss(Xtr, Ytr), split_loss(Xdev, Ydev), split_loss(Xte, Yte)]
    print(f"{args.steps} steps in {seconds:.1f} s; train {losses[0]:.4f} val {losses[1]:.4f} test {losses[2]:.4f}")
    lines.append(f"final_steps {args.steps}")
    lines.append(f"final_losses {' '.join(repr(x) for x in losses)}")
    lines.append(f"seconds {seconds:.1f}")

    tensors = dict(zip(["C", "W1", "b1", "W2", "b2", "bngain", "bnbias", "bnmean", "bnvar"],
                       [C, W1, b1, W2, b2, bngain, bnbias, bnmean, bnvar]))
    save_file({k: v.contiguous() for k, v in tensors.items()}, args.out + ".safetensors")

    # the sampling cell
    g = torch.Generator().manual_seed(2147483647 + 10)
    sampled = []
    with torch.no_grad():
        for _ in range(20):
            out = []
            context = [0] * block_size
            while True:
                emb = C[torch.tensor([context])]
                embcat = emb.view(emb.shape[0], -1)
                hpreact = embcat @ W1 + b1
                hpreact = bngain * (hpreact - bnmean) * (bnvar + 1e-5) ** -0.5 + bnbias
                h = torch.tanh(hpreact)
                logits = h @ W2 + b2
                probs = F.softmax(logits, dim=1)
                ix = torch.multinomial(probs, num_samples=1, generator=g).item()
                context = context[1:] + [ix]
                out.append(ix)
                if ix == 0:
                    break
            sampled.append("".join(itos[i] for i in out))
    print("\n".join(sampled))
    lines.append(f"names {' '.join(s.rstrip('.') for s in sampled)}")
    with open(args.out + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
