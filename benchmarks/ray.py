"""Ray vs local streaming on the same recipe, in the same run; appends to benchmarks/RESULTS.md.

    python benchmarks/ray.py --rows 1M

The recipe is the suite's ``build`` workload (three sources cut from the scaled HH slice, one
augmented, exact dedup, canonical Parquet out). Each engine builds in a fresh process; Ray starts
a local runtime with this machine's cores, and its start-up is reported apart from the build.
The two outputs must have the same files (sha256), or the run fails. Also measured: the bytes per
row of the key tables the driver gathers (what limits a cluster build, see docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from mixer import bench

HERE = Path(__file__).resolve().parent
HH = HERE.parent.parent / "shared" / "data" / "hh_rlhf_harmless_base"

_MEASURE = """
import json, resource, sys, time
from pathlib import Path
from mixer import pipeline
recipe, out, engine, chunk_rows = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
built = pipeline.build_all(recipe, out=out, executor=engine, chunk_rows=chunk_rows)
seconds = time.perf_counter() - start
manifest = next(iter(built.mixtures.values())).manifest
print(json.dumps({"seconds": seconds, "run": manifest["run"], "outputs": manifest["outputs"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(recipe: Path, out: Path, engine: str, chunk_rows: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(recipe), str(out), engine, str(chunk_rows)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} build failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def key_bytes_per_row(path: Path) -> dict[str, float]:
    """Bytes per row of the key tables a build holds on the driver, measured on the workload's ids:
    dedup keys (read -> dedup), selection keys (prepare -> select) and the order plan (order -> gather)."""
    ids = pl.read_parquet(path, columns=["id"]).get_column("id")
    n = len(ids)
    u32 = pl.Series([1] * n, dtype=pl.UInt32)
    dedup = pl.DataFrame({"id": ids, "source": pl.Series(["harmless"] * n), "_prio": u32, "_chunk": u32,
                          "_row": u32, "_key": pl.Series([1] * n, dtype=pl.UInt64),
                          "_sig": pl.Series([1] * n, dtype=pl.Int64)})
    select = pl.DataFrame({"id": ids, "n_tokens": u32, "n_rendered": u32, "n_content": u32, "n_assistant": u32,
                           "_chunk": u32})
    plan = pl.DataFrame({"id": ids, "_prio": u32, "_chunk": u32, "_pos": pl.Series(range(n), dtype=pl.Int64),
                         "_shard": pl.Series([0] * n, dtype=pl.Int64)})
    return {name: frame.estimated_size() / n for name, frame in
            (("dedup keys", dedup), ("selection keys", select), ("order plan", plan))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1M", help="workload rows, e.g. 100k, 1M")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    rows = int(float(args.rows.lower().rstrip("km")) * {"k": 1_000, "m": 1_000_000}.get(args.rows.lower()[-1], 1))
    path = bench.workload(rows, HERE / ".cache", HH if HH.exists() else None)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="mixer-bench-ray-") as tmp:
        recipe = bench._build_recipe(path, Path(tmp))
        runs = {engine: measure(recipe, Path(tmp) / engine, engine, args.chunk_rows) for engine in ("stream", "ray")}
    same = [(f["path"], f["sha256"]) for f in runs["stream"]["outputs"]] == \
           [(f["path"], f["sha256"]) for f in runs["ray"]["outputs"]]
    if not same:
        raise SystemExit("the Ray build's files differ from the streaming build's")
    cluster = runs["ray"]["run"]["cluster"]
    startup = cluster["startup_seconds"]
    stream_s, ray_s = runs["stream"]["seconds"], runs["ray"]["seconds"]
    lines = [f"\n## Ray vs local streaming, {rows:,} rows\n",
             f"Run {started} on {bench.machine()}; ray {_version('ray')}.\n",
             f"Command: `python benchmarks/ray.py --rows {args.rows} --chunk-rows {args.chunk_rows}`\n",
             "Workload: the suite's `build` recipe (three sources, one augmented, exact dedup, canonical Parquet). "
             f"Each engine in a fresh process, chunks of {args.chunk_rows:,} rows; Ray on a local runtime of "
             f"{cluster['cpus']} CPUs it started itself. Same files (sha256) from both: {'yes' if same else 'NO'}. "
             "Peak RSS is the driver's (Ray's workers are separate processes).\n",
             "| engine | seconds | rows/s (input) | peak RSS MB | vs stream |", "|---|---:|---:|---:|---:|",
             f"| stream | {stream_s:.1f} | {rows / stream_s:,.0f} | {runs['stream']['peak_rss_mb']:,.0f} | 1.00x |",
             f"| ray, build after start-up | {ray_s - startup:.1f} | {rows / (ray_s - startup):,.0f} | "
             f"{runs['ray']['peak_rss_mb']:,.0f} | {(ray_s - startup) / stream_s:.2f}x |",
             f"| ray start-up (ray.init) | {startup:.1f} | | | |",
             f"| ray, total | {ray_s:.1f} | {rows / ray_s:,.0f} | | {ray_s / stream_s:.2f}x |", "",
             "Per stage (rows out, seconds; Ray's start-up precedes the first stage):", "",
             "| stage | rows | stream s | stream rows/s | ray s | ray rows/s |", "|---|---:|---:|---:|---:|---:|"]
    ray_phases = {p["phase"]: p for p in runs["ray"]["run"]["phases"]}
    for p in runs["stream"]["run"]["phases"]:
        r = ray_phases[p["phase"]]
        lines.append(f"| {p['phase']} | {p['rows']:,} | {p['seconds']:.2f} | {_rate(p)} | {r['seconds']:.2f} | "
                     f"{_rate(r)} |")
    keys = key_bytes_per_row(path)
    lines += ["", "Key tables held on the driver, bytes per row (Polars estimated size, measured on the workload's "
              "ids): " + ", ".join(f"{name} {b:.0f}" for name, b in keys.items()) + ".", ""]
    text = "\n".join(lines)
    with args.out.open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    print(text)
    measured = {"rows": rows, "chunk_rows": args.chunk_rows, "cpus": cluster["cpus"], "key_bytes_per_row": keys,
                "input_bytes_per_row": path.stat().st_size / rows, "date": started,
                **{k: {"seconds": v["seconds"], "phases": v["run"]["phases"]} for k, v in runs.items()},
                "ray_startup_seconds": startup}
    (HERE / f"ray-{args.rows}.json").write_text(json.dumps(measured, indent=1) + "\n")  # read by benchmarks/scale.py


def _rate(phase: dict) -> str:
    return f"{phase['rows'] / phase['seconds']:,.0f}" if phase["seconds"] else ""


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    main()
