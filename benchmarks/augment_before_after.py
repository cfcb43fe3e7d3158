"""Augmentation throughput before and after a change, side by side in one run.

    python benchmarks/augment_before_after.py --before 3158e00 --sizes 100k,1M --repeats 3

The ``before`` revision's ``src`` is exported with ``git archive`` and put first on
``PYTHONPATH``; ``after`` is this checkout. Each measurement is the ``augment`` workload of
``benchmarks/run.py`` (``system_prompt`` + ``tools``, with and without the relevance guard),
in a fresh process; before and after alternate so machine load hits both alike. The best of
``--repeats`` is reported (the machine is shared), with the spread.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import polars as pl

from mixer import bench

HERE = Path(__file__).resolve().parent
HH = HERE.parent.parent / "shared" / "data" / "hh_rlhf_harmless_base"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare against, e.g. main")
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--path", type=Path, help="a canonical Parquet file to augment instead of the generated "
                                                   "workloads (--sizes is then ignored)")
    args = parser.parse_args()
    from run import parse_size  # benchmarks/run.py

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.before, "src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        versions = {f"before ({args.before})": {"PYTHONPATH": str(Path(tmp) / "src")}, "after": {}}
        rows = []
        paths = [args.path] if args.path else [bench.workload(n, HERE / ".cache", HH if HH.exists() else None)
                                               for n in sizes]
        for path in paths:
            n = pl.scan_parquet(path).select(pl.len()).collect().item()
            for method in ("mixer", "mixer-noguard"):
                times: dict[str, list[float]] = {v: [] for v in versions}
                for _ in range(args.repeats):
                    for version, env in versions.items():
                        times[version].append(bench.run_one("augment", method, path, env=env)["seconds"])
                for version, secs in times.items():
                    best = min(secs)
                    rows.append(f"| {n:,} | {method} | {version} | {best:.2f} | {max(secs):.2f} | {n / best:,.0f} |")
                    print(rows[-1], flush=True)
    print("\n| rows | method | code | best s | worst s | rows/s (best) |\n|---:|---|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
