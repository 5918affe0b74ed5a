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
    order = sys.argv[1:] or sorted(p.name for p in ROOT.iterdir() if (p / "scalar").exists())
    print("| kernel | " + " | ".join(PATHS) + " |")
    print("|---|" + "---|" * len(PATHS))
    for name in order:
        group = ROOT / name
        print(f"| {name} | " + " | ".join(cell(group, isa) for isa in PATHS) + " |")


if __name__ == "__main__":
    main()
