#!/usr/bin/env python3
"""Prints the README's kernel table from criterion's results of
`cargo bench -p benches --bench kernels` (target/criterion/*/{scalar,avx2,avx512}/new/).

Each cell is the median time and the throughput (GFLOP/s for products, which count 2 per
multiply-add; G elements/s for the rest), as set by `Throughput::Elements` in the bench.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
PATHS = ["scalar", "avx2", "avx512"]
STEP_ORDER = [
    "embed_gather", "linear_forward hprebn", "bias_backward hprebn", "batchnorm_center",
    "batchnorm_scale_shift_tanh", "linear_forward logits", "cross_entropy_sum",
    "cross_entropy_backward", "matmul_tn dW2", "bias_backward db2", "transpose W2",
    "linear_tanh_backward dh", "batchnorm_backward_sums", "batchnorm_backward_apply",
    "matmul_tn dW1", "bias_backward db1", "matmul_nt dembcat", "embed_scatter_add", "sgd",
    "exp", "tanh", "train_step", "train_step warm", "evaluate val split",
]
PRODUCTS = ("linear_forward", "matmul", "linear_tanh_backward", "train_step")


def cell(group: pathlib.Path, isa: str) -> str:
    d = group / isa / "new"
    if not d.exists():
        return "—"
    median_ns = json.loads((d / "estimates.json").read_text())["median"]["point_estimate"]
    elems = json.loads((d / "benchmark.json").read_text())["throughput"]["Elements"]
    rate = elems / median_ns  # per ns = G per s
    unit = "GFLOP/s" if group.name.startswith(PRODUCTS) else "Gelem/s"
    t = f"{median_ns / 1000:.2f} µs" if median_ns >= 1000 else f"{median_ns:.0f} ns"
    if median_ns >= 1e6:
        t = f"{median_ns / 1e6:.2f} ms"
        rate, unit = elems / median_ns * 1e3, "M rows/s"
    return f"{t} · {rate:.2f} {unit}"


def main() -> None:
    found = sorted(p.name for p in ROOT.iterdir() if (p / "scalar").exists())
    # default: the step's order, then any other group
    order = sys.argv[1:] or [g for g in STEP_ORDER if g in found] + [
        g for g in found if g not in STEP_ORDER
    ]
    print("| kernel | " + " | ".join(PATHS) + " |")
    print("|---|" + "---|" * len(PATHS))
    for name in order:
        group = ROOT / name
        print(f"| {name} | " + " | ".join(cell(group, isa) for isa in PATHS) + " |")


if __name__ == "__main__":
    main()
