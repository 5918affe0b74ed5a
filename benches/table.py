#!/usr/bin/env python3
"""Prints the README's kernel table from criterion's results of
`cargo bench -p benches --bench kernels` (target/criterion/*/{scalar,avx2,avx512}/new/).

Each cell is the median time and the throughput (GFLOP/s for products, which count 2 per
multiply-add; G elements/s for the rest), as set by `Throughput::Elements` in the bench.

The `peak` row is each path's single-core FMA throughput (`Kernels::fma_peak`). Each product
(linear_forward, matmul_*, linear_tanh_backward) and the step also show their fraction of their
own path's peak; after `train_step warm` a row gives the step's floor, its FLOPs (read from the
bench) at that path's peak, and the ratio of the median to the floor. A path without a `peak`
result says so in those cells. The scalar peak is one lane (a multiply then an add without
hardware FMA); the compiler packs some scalar loops into SSE2 vectors, so a scalar product can
show more than 100%.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
PATHS = ["scalar", "avx2", "avx512"]
STEP_ORDER = [
    "peak",
    "embed_gather", "linear_forward hprebn", "bias_backward hprebn", "batchnorm_center",
    "batchnorm_scale_shift_tanh", "linear_forward logits", "cross_entropy_sum",
    "cross_entropy_backward", "matmul_tn dW2", "bias_backward db2", "transpose W2",
    "linear_tanh_backward dh", "batchnorm_backward_sums", "batchnorm_backward_apply",
    "matmul_tn dW1", "bias_backward db1", "matmul_nt dembcat", "embed_scatter_add", "sgd",
    "exp", "tanh", "train_step", "train_step warm", "evaluate val split",
]
PRODUCTS = ("linear_forward", "matmul", "linear_tanh_backward", "train_step")
# Groups whose throughput is FLOP/s.
FLOP_GROUPS = PRODUCTS + ("peak",)
# The group whose floor (FLOPs / peak) gets its own row.
FLOOR_OF = "train_step warm"
NO_PEAK = "no peak result"


def result(group: pathlib.Path, isa: str):
    """(median ns, elements per iteration) of one path, or None if it was not run."""
    d = group / isa / "new"
    if not d.exists():
        return None
    median_ns = json.loads((d / "estimates.json").read_text())["median"]["point_estimate"]
    elems = json.loads((d / "benchmark.json").read_text())["throughput"]["Elements"]
    return median_ns, elems


def peak_flop_per_ns(isa: str):
    """The path's peak in FLOP per ns (= GFLOP/s), or None without a `peak` result."""
    r = result(ROOT / "peak", isa)
    return None if r is None else r[1] / r[0]


def time(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def cell(group: pathlib.Path, isa: str) -> str:
    r = result(group, isa)
    if r is None:
        return "—"
    median_ns, elems = r
    rate = elems / median_ns  # per ns = G per s
    flops = group.name.startswith(FLOP_GROUPS)
    unit = "GFLOP/s" if flops else "Gelem/s"
    if median_ns >= 1e6 and not flops:
        rate, unit = elems / median_ns * 1e3, "M rows/s"
    text = f"{time(median_ns)} · {rate:.2f} {unit}"
    if group.name.startswith(PRODUCTS):
        peak = peak_flop_per_ns(isa)
        text += f" · {NO_PEAK}" if peak is None else f" · {100 * rate / peak:.0f}% of peak"
    return text


def floor_cell(group: pathlib.Path, isa: str) -> str:
    """The step's FLOPs at the path's peak, and the measured median over that floor."""
    r = result(group, isa)
    if r is None:
        return "—"
    median_ns, flop = r
    peak = peak_flop_per_ns(isa)
    if peak is None:
        return NO_PEAK
    floor_ns = flop / peak
    return f"{time(floor_ns)} · median / floor {median_ns / floor_ns:.2f}"


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
        if name == FLOOR_OF:
            print(f"| {name}: floor = FLOPs / peak | "
                  + " | ".join(floor_cell(group, isa) for isa in PATHS) + " |")


if __name__ == "__main__":
    main()
