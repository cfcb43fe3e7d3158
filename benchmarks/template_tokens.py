"""What counting with a chat template costs against mixer's tiktoken estimate, same rows, same run.

    python benchmarks/template_tokens.py --rows 20000 --template ../shared/data/chat_templates/qwen2.5-instruct.jinja

Rows: the HH-scaled benchmark workload, augmented with system prompts and 1-6 tools (as the
build benchmark's augmented source). Times ``tokens.counts`` (the estimate: distinct strings
encoded once, ChatML framing) and ``template_tokens.counts`` (every row rendered with the
template by transformers, then encoded) on the same frame, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from mixer import bench, formats, template_tokens, tokens, transforms

HERE = Path(__file__).resolve().parent
HH = HERE.parent.parent / "shared" / "data" / "hh_rlhf_harmless_base"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--template", default=str(HERE.parent.parent / "shared" / "data" / "chat_templates"
                                                  / "qwen2.5-instruct.jinja"))
    parser.add_argument("--tokenizer", default="cl100k_base")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    frame = pl.read_parquet(bench.workload(args.rows, HERE / ".cache", HH if HH.is_dir() else None))
    prepared = transforms.prepare(({"type": "system_prompt", "p": 0.8}, {"type": "tools", "p": 0.6, "count": [1, 6]}),
                                  seed=0, source="bench")
    augmented, _ = prepared.apply(frame)
    enc = tokens.encoding(args.tokenizer)
    renderer = template_tokens.load(args.template, args.tokenizer)
    fmt = formats.FORMATS["trl"]
    estimate = best(lambda: tokens.counts(augmented, enc, frame), args.repeat)
    exact = best(lambda: template_tokens.counts(augmented, renderer, fmt, frame), args.repeat)
    n = augmented.height
    print("| rows | tokenizer | estimate s | template s | template rows/s | template / estimate |")
    print("|---:|---|---:|---:|---:|---:|")
    print(f"| {n:,} | {args.tokenizer} | {estimate:.2f} | {exact:.2f} | {n / exact:,.0f} | {exact / estimate:.1f}x |")


if __name__ == "__main__":
    main()
