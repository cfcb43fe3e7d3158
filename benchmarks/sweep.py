"""A mixture sweep against the same mixtures built one by one, cold: the cost of re-mixing.

    python benchmarks/sweep.py --rows 100k --variants 20

Input: the benchmark workload (HH-RLHF slice scaled with distinct variants) written as OpenAI
messages JSON Lines, the shape people have, split into two sources; the harmless one is
augmented (system prompts and tools). The sweep is a Dirichlet swarm of ``--variants`` weight
vectors. Measured in the same run, each in a fresh process:

- ``sweep``: ``mixer sweep`` with an empty cache (the first variant prepares, the rest re-mix);
- ``cold``: ``mixer build --no-cache --set sources.NAME.weight=W ...`` for every variant (its overrides).

Reports both totals, their ratio, the cache's size on disk against the input's, and checks
that each cold build wrote the same files as its sweep variant. Appends to RESULTS-sweep.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from mixer import bench

HERE = Path(__file__).resolve().parent
HH = HERE.parent.parent / "shared" / "data" / "hh_rlhf_harmless_base"


def jsonl_inputs(rows: int, cache: Path) -> tuple[Path, Path]:
    """The workload as two OpenAI-messages JSONL files (harmless: first half, other: second)."""
    a, b = cache / f"sweep-harmless-{rows}.jsonl", cache / f"sweep-other-{rows}.jsonl"
    if a.exists() and b.exists():
        return a, b
    frame = pl.read_parquet(bench.workload(rows, cache, HH if HH.exists() else None))
    for path, part in ((a, frame.head(rows // 2)), (b, frame.tail(rows - rows // 2))):
        with path.open("w", encoding="utf-8") as fh:
            for row in part.select("system", "messages").iter_rows(named=True):
                messages = ([{"role": "system", "content": row["system"]}] if row["system"] else []) + [
                    {"role": m["role"], "content": m["content"]} for m in row["messages"]]
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return a, b


def recipe(folder: Path, harmless: Path, other: Path, total: int, variants: int) -> Path:
    path = folder / "sweep.toml"
    path.write_text(f"""
name = "sweep-bench"
seed = 1
unit = "tokens"
total = {total}
[sources.harmless]
path = "{harmless}"
weight = 0.5
max_epochs = 4
[[sources.harmless.transforms]]
type = "system_prompt"
p = 0.8
[[sources.harmless.transforms]]
type = "tools"
p = 0.6
count = [1, 6]
[sources.other]
path = "{other}"
weight = 0.5
max_epochs = 4
[output]
report = false
[sweep]
base = false
[sweep.swarm]
variants = {variants}
min_weight = 0.05
""", encoding="utf-8")
    return path


def timed(args: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def files(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "report.html":
            blob = p.read_bytes()
            if p.name == "manifest.json":
                m = json.loads(blob)
                m.pop("run", None)
                blob = json.dumps(m, sort_keys=True).encode()
            out[str(p.relative_to(folder))] = hashlib.sha256(blob).hexdigest()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100k")
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--work", type=Path, default=HERE / ".cache" / "sweep-run")
    args = parser.parse_args()
    rows = int(float(args.rows.rstrip("kKmM")) * {"k": 1_000, "m": 1_000_000}.get(args.rows[-1].lower(), 1))
    cache = HERE / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    harmless, other = jsonl_inputs(rows, cache)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    # a total every variant can meet: a fifth of the content tokens is well inside max_epochs
    total = rows * 40
    path = recipe(args.work, harmless, other, total, args.variants)
    mixer = str(Path(sys.executable).with_name("mixer"))
    store = args.work / "cache"
    sweep_s = timed([mixer, "sweep", str(path), "--out", str(args.work / "sweep"), "--cache-dir", str(store), "-q"])
    cache_bytes = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    variants = json.loads((args.work / "sweep" / "manifest.json").read_text())["mixtures"]
    names = [r["name"] for r in csv.DictReader((args.work / "sweep" / "ratios.csv").open())]
    cold_s = 0.0
    same = 0
    for name in names:
        out = args.work / "cold" / name
        sets = [a for k, v in variants[name]["overrides"].items() for a in ("--set", f"{k}={v!r}")]
        cold_s += timed([mixer, "build", str(path), "--out", str(out), "--no-cache", "-q", *sets])
        same += files(out) == files(args.work / "sweep" / name)
    input_bytes = harmless.stat().st_size + other.stat().st_size
    line = (f"| {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {rows:,} | {len(names)} | "
            f"{sweep_s:.1f} s | {cold_s:.1f} s | {cold_s / sweep_s:.1f}x | {cache_bytes / 2**20:.0f} MB | "
            f"{input_bytes / 2**20:.0f} MB | {same}/{len(names)} |")
    results = HERE / "RESULTS-sweep.md"
    if not results.exists():
        results.write_text(
            "# Sweep benchmark\n\n`python benchmarks/sweep.py --rows N --variants V` (see its docstring). "
            f"Machine: {bench.machine()}.\n\n"
            "| run | input rows | variants | sweep | cold builds | ratio | cache on disk | input JSONL | "
            "cold == sweep files |\n|---|---|---|---|---|---|---|---|---|\n", encoding="utf-8")
    with results.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
