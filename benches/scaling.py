#!/usr/bin/env python3
"""Prints the large-model table from criterion's results of
`cargo bench -p benches --bench scaling` (target/criterion/scaling hH nN/*/new/).

Per size: the step's median time and GFLOP/s on one thread (`in_turn_ISA`) and on two
(`rayon2_ISA`), the tuned sgemm's GFLOP/s on the same six products (`sgemm`), the step's
fraction of the sgemm figure, and the 2-thread speed-up. GFLOP/s counts the six products'
FLOPs (2 per multiply-add) for all three, as the bench's `Throughput` does. `--peak GFLOPS`
(the single-core FMA peak, e.g. from the `peak` bench) adds each column's fraction of it.

    python3 benches/scaling.py [--peak 92]
"""
import argparse
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def read(d: pathlib.Path):
    """(median ns, FLOPs) of one benchmark, or None if it did not run."""
    d = d / "new"
    if not (d / "estimates.json").exists():
        return None
    median = json.loads((d / "estimates.json").read_text())["median"]["point_estimate"]
    flop = json.loads((d / "benchmark.json").read_text())["throughput"]["Elements"]
    return median, flop


def fmt_time(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.0f} µs"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peak", type=float, help="single-core FMA peak in GFLOP/s")
    args = ap.parse_args()
    rows = []
    for g in ROOT.glob("scaling h* n*"):
        m = re.fullmatch(r"scaling h(\d+) n(\d+)", g.name)
        if not m:
            continue
        runs = {p.name: read(p) for p in g.iterdir() if p.is_dir() and p.name != "report"}
        one = {k: v for k, v in runs.items() if k.startswith("in_turn_") and v}
        two = {k: v for k, v in runs.items() if k.startswith("rayon2_") and v}
        for name, r1 in sorted(one.items()):
            isa = name.removeprefix("in_turn_")
            rows.append((int(m[1]), int(m[2]), isa, r1, two.get(f"rayon2_{isa}"),
                         runs.get("sgemm")))
    # H sweep first (by batch, then H), as the bench lists them
    rows.sort(key=lambda r: (r[1] != 1024, r[1], r[0]))
    head = ["H", "batch", "path", "step 1 thread", "GFLOP/s", "step 2 threads", "GFLOP/s",
            "sgemm GFLOP/s", "step / sgemm", "2-thread speed-up"]
    if args.peak:
        head += ["step / peak", "sgemm / peak"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for h, n, isa, r1, r2, rg in rows:
        g1 = r1[1] / r1[0]
        cells = [str(h), str(n), isa, fmt_time(r1[0]), f"{g1:.1f}"]
        cells += [fmt_time(r2[0]), f"{r2[1] / r2[0]:.1f}"] if r2 else ["—", "—"]
        gg = rg[1] / rg[0] if rg else None
        cells += [f"{gg:.1f}", f"{g1 / gg:.0%}"] if gg else ["—", "—"]
        cells += [f"{r1[0] / r2[0]:.2f}x"] if r2 else ["—"]
        if args.peak:
            cells += [f"{g1 / args.peak:.0%}", f"{gg / args.peak:.0%}" if gg else "—"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
