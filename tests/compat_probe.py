"""Run inside a venv with an old ``datasets`` (by tests/test_compat.py): build, load, rebuild, load.

Usage: python compat_probe.py SOURCE.jsonl OUT_ROOT -> prints one JSON object on the last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets

from mixer import pipeline

FORMATS = ("trl", "prompt", "openai", "llama-factory", "canonical")


def main(source: str, root: str) -> None:
    report: dict = {"datasets": datasets.__version__, "formats": {}}
    cache = Path(root) / "hf-cache"
    for fmt in FORMATS:
        out, _ = pipeline.convert(Path(source), Path(root) / fmt, fmt, force=True)
        first = datasets.load_dataset(str(out), cache_dir=str(cache))["train"]
        rows = [dict(r) for r in first]
        # rebuild smaller into the same folder and load again: never the old rows
        small = Path(root) / "small.jsonl"
        small.write_text("".join(Path(source).read_text().splitlines(keepends=True)[:5]))
        pipeline.convert(small, out, fmt, force=True)
        again = datasets.load_dataset(str(out), cache_dir=str(cache))["train"]
        pipeline.convert(Path(source), out, fmt, force=True)  # leave the full build for the caller
        report["formats"][fmt] = {"rows": len(rows), "rebuilt_rows": again.num_rows,
                                  "features": json.dumps(first.features.to_dict()), "first": json.dumps(rows[-1], default=str)}
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
