"""Shared test helpers: paths to the real data slices, and small builders for recipes and files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on Hub retries in tests
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
HH = SHARED / "hh_rlhf_harmless_base"
TOOL_SPECS = SHARED / "tool_specs"
EXAMPLES = REPO / "src" / "mixer" / "examples"

needs_shared = pytest.mark.skipif(
    not (SHARED / "hh_rlhf_harmless_base" / "test.jsonl.gz").exists(),
    reason="../shared/data (real HH-RLHF and tool-spec slices) is not beside this checkout",
)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def chat(user: str, assistant: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], **extra}


def chats(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    """``n`` distinct chats of varying length, so token budgets are not trivially row budgets."""
    return [chat(f"{prefix} question {i} " + "word " * (i % 17), f"answer {i} " + "reply " * (i % 23)) for i in range(n)]


def assert_same_read(batch: Any, one_by_one: Any) -> None:
    """Two ``read_source`` results (frame, report) agree on rows and on every count a user sees."""
    (frame_a, report_a), (frame_b, report_b) = batch, one_by_one
    assert frame_a.schema == frame_b.schema
    assert frame_a.to_dicts() == frame_b.to_dicts()
    for key in ("rows_read", "rejected", "repairs", "rejects", "format", "formats"):
        assert getattr(report_a, key) == getattr(report_b, key), key


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def without_run(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest minus its ``run`` section (timings and executor): the part that may differ between
    two builds of the same recipe."""
    return {k: v for k, v in manifest.items() if k != "run"}


def output_files(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder, the manifest without its ``run`` section; ``report.html``
    (a view that shows the run's timings) left out."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != "report.html"}
    for name in [n for n in files if n == "manifest.json" or n.endswith("/manifest.json")]:
        manifest = without_run(json.loads(files[name]))
        for stage in (manifest.get("mixtures") or {}).values():  # a staged index hashes each stage's file
            stage.pop("manifest_sha256", None)
        files[name] = json.dumps(manifest, indent=2).encode()
    return files
