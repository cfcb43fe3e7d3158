"""Build time of two revisions of mixer side by side: in memory and streaming, same workload.

    python benchmarks/engine_compare.py --before 394ae82 --sizes 100k,1M [--workload jsonl]

Checks ``--before`` out into a temporary git worktree and runs ``mixer build`` (in memory, then
``--stream``) of the build benchmark's recipe (three sources cut from the HH-scaled workload,
one augmented, exact dedup, canonical Parquet; or with ``--workload jsonl`` the build-jsonl recipe
over OpenAI JSON Lines) with that tree's code and with this checkout's,
alternating, each in a fresh process; prints wall seconds and peak RSS and the ratio after /
before. The printed table is what goes into RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mixer import bench

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HH = REPO.parent / "shared" / "data" / "hh_rlhf_harmless_base"


def run_build(src: Path, recipe: Path, out: Path, stream: bool, extra: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``mixer build`` in a fresh process with ``src`` first on the path."""
    shutil.rmtree(out, ignore_errors=True)
    args = ["build", str(recipe), "--out", str(out), "-q", *extra] + (["--stream"] if stream else [])
    cmd = [sys.executable, "-c", _CHILD, *args]
    env = {**os.environ, "PYTHONPATH": str(src), "MIXER_CACHE": str(out.parent / "no-cache")}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peaks = [line for line in done.stderr.splitlines() if line.startswith("PEAK ")]
    if done.returncode != 0 or not peaks:
        raise SystemExit(f"build failed with {src}:\n{done.stdout}\n{done.stderr}")
    return seconds, int(peaks[-1].split()[1]) / 1024


# the build in this process, then its own peak RSS (KB) on stderr
_CHILD = """import resource, sys
from mixer.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workload", choices=("build", "jsonl"), default="build",
                        help="build: the build benchmark's recipe over canonical Parquet; jsonl: the build-jsonl "
                        "recipe over OpenAI JSON Lines (one source, system prompts and tools added)")
    parser.add_argument("--args", default="--no-cache",
                        help="build arguments for both revisions (default --no-cache: the cache folder is "
                        "shared, so a second build would otherwise reuse the first one's preparation)")
    parser.add_argument("--after-args", default="", help="extra build arguments for this checkout, e.g. to "
                        "leave out work the old revision did not do: '--no-cache --set output.report=false'")
    args = parser.parse_args()
    cache = HERE / ".cache"
    with tempfile.TemporaryDirectory(prefix="mixer-engine-") as tmp:
        work = Path(tmp)
        old = work / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old), args.before], check=True)
        try:
            trees = {"before": old / "src", "after": REPO / "src"}
            print("| rows | executor | before s | after s | after/before | before peak MB | after peak MB |")
            print("|---:|---|---:|---:|---:|---:|---:|")
            for size in args.sizes.split(","):
                rows = int(float(size.lower().rstrip("km")) * {"k": 1e3, "m": 1e6}.get(size.lower()[-1], 1))
                data = bench.workload(rows, cache, HH if HH.is_dir() else None)
                folder = work / f"w{rows}"
                folder.mkdir()
                if args.workload == "jsonl":
                    lines = bench.jsonl_workload(data, cache)
                    recipe = bench.jsonl_recipe(lines, sum(1 for _ in lines.open("rb")), folder)
                else:
                    recipe = bench._build_recipe(data, folder)
                for stream in (False, True):
                    got: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
                    for _ in range(args.repeat):
                        for label in ("before", "after"):  # alternate, so drift hits both
                            extra = shlex.split(args.args) + (shlex.split(args.after_args) if label == "after" else [])
                            got[label].append(run_build(trees[label], recipe, work / "out", stream, extra))
                    b = min(s for s, _ in got["before"])
                    a = min(s for s, _ in got["after"])
                    print(f"| {rows:,} | {'stream' if stream else 'memory'} | {b:.2f} | {a:.2f} | {a / b:.3f} | "
                          f"{max(m for _, m in got['before']):,.0f} | {max(m for _, m in got['after']):,.0f} |",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)


if __name__ == "__main__":
    main()
