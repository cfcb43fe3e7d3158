"""Run the benchmark suite and append its figures to benchmarks/RESULTS.md.

    python benchmarks/run.py --sizes 10k,100k,1M [--workloads build-jsonl,build-hub] [--replace]

Workloads are cached in benchmarks/.cache (git-ignored). Uses ../shared/data's HH-RLHF slice
when present, else mixer's example chats. Every figure and its baselines come from the same run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from mixer import bench

HERE = Path(__file__).resolve().parent
HH = HERE.parent.parent / "shared" / "data" / "hh_rlhf_harmless_base"
LEGEND = """Methods:
- augment: `mixer` = `system_prompt` (p 0.8) + `tools` (p 0.6, 1-6 tools, relevance guard on), in memory;
  `mixer-noguard` the same with `guard = false`; `python` the same augmentation (guard as word-set
  overlap) as a plain loop over dicts; `datasets-map-N` that loop as `datasets.map(batched=True, num_proc=N)`.
- dedup: `mixer` = the exact-dedup keys of every row (`dedup.chunk_keys`: key text, normalization,
  hash), in memory, one call in a fresh process; `mixer-again` the second call in that process (what every
  chunk after a build's first sees: the worker threads' memory is warm); `python` = the same keys by their definition string by string (NFKC where a
  compatibility character occurs, lower case, whitespace runs as one; the key texts built by Polars).
- tokens: `mixer` = `mixer.tokens.count` on every row (distinct strings encoded once);
  `tiktoken-loop` the bare encoder on one core over the same distinct texts; `tiktoken-distinct`
  tiktoken's `encode_ordinary_batch` over those texts; `tiktoken-all` that call over every occurrence.
- io-floor: pyarrow reads and writes the workload batch by batch (zstd), nothing else.
- build: three sources cut from the workload (one augmented), exact dedup, canonical Parquet out;
  `mixer` in memory (`pipeline.build(...).write(...)`), `mixer-stream` chunk by chunk (`mixer build --stream`).
- build-jsonl: the workload as OpenAI-messages JSON Lines (the shape people have), one augmented
  source, canonical Parquet out: `mixer` in memory, `mixer-stream`, `mixer-trl`, `mixer-openai` and
  `mixer-prompt` (in memory, written as TRL Parquet, OpenAI JSONL and RL prompts with the tools
  block folded in), `mixer-per-record` (the
  reader without its batch path), `floor` = Polars `read_ndjson` + tiktoken over the distinct
  texts on every core + a Parquet write, and `datasets` = what a user writes instead:
  `load_dataset("json")` + the same augmentation and token counts as `map(num_proc=2)` +
  `interleave_datasets` + `to_parquet` (no dedup, no accounting).
- build-hub: the same rows as a `datasets` `save_to_disk` folder (made by `datasets` itself), read
  by mixer as a source path.
- build-hh: the rows without a system prompt as HH-RLHF JSON Lines (`chosen` and `rejected`
  transcripts, the shape of the harmlessness data itself), the same methods as build-jsonl but the
  trainer formats; the floor splits the transcripts into turns with one Polars regex, and the
  `datasets` pipeline with `re.split`.
"""


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,100k,1M", help="comma-separated row counts, e.g. 10k,100k,1M")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-baselines", action="store_true", help="mixer only (faster)")
    parser.add_argument("--workloads", default=",".join(bench.WORKLOADS),
                        help=f"comma-separated subset of {','.join(bench.WORKLOADS)}")
    parser.add_argument("--append", action="store_true", default=True,
                        help="add the run as a section at the end of --out (the default)")
    parser.add_argument("--replace", dest="append", action="store_false",
                        help="rewrite --out with this run alone (a full suite run; earlier sections are lost)")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = bench.suite(sizes, HERE / ".cache", HH if HH.exists() else None, baselines=not args.no_baselines,
                          workloads=tuple(w for w in args.workloads.split(",") if w))
    command = "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.append:
        section = (f"\n## {args.workloads} (run {started}, same machine)\n\nCommand: `{command.strip()}`\n\n"
                   + bench.table(results) + "\n")
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(section)
        print(section)
        return
    text = (f"# Benchmark results\n\nRun {started} on {bench.machine()}.\n\nCommand: `{command.strip()}`\n\n"
            f"Workload: {'HH-RLHF harmless-base slice' if HH.exists() else 'example chats'}, scaled with "
            "distinct variants. Each measurement ran in a fresh process; peak RSS is that process's.\n\n"
            + LEGEND + "\n" + bench.table(results) + "\n")
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
