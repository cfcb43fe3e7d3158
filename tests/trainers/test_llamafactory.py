"""LLaMA-Factory loads mixer's `llama-factory` output through the written `dataset_info.json`.

LLaMA-Factory 0.9.5 pins datasets<=4.0.0 (mixer needs datasets>=5), so it lives in its own
environment: the build runs here, the loading runs there (``llamafactory_load.py``, LLaMA-Factory's
own parser, loader, sharegpt converter and tool formatters). The environment is found at
``$MIXER_LLAMAFACTORY_PYTHON`` or ``.venv-lf/bin/python`` beside the checkout; how to make it is in
the README (section "Trainers").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, needs_shared
from trainer_helpers import build_hh, rows_written

LF_PYTHON = Path(os.environ.get("MIXER_LLAMAFACTORY_PYTHON", REPO / ".venv-lf" / "bin" / "python"))
NAME = "harmlessness-diversified"  # the recipe's name: the dataset's key in dataset_info.json

pytestmark = [
    pytest.mark.trainers, needs_shared,
    pytest.mark.skipif(not LF_PYTHON.exists(), reason=f"no LLaMA-Factory environment at {LF_PYTHON} "
                       "(set MIXER_LLAMAFACTORY_PYTHON; README, section Trainers, says how to make one)"),
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows as mixer wrote them, rows as LLaMA-Factory aligned them), paired.

    The train split is cut into several shards: ``dataset_info.json`` names their folder, and
    LLaMA-Factory must read every one (naming one file trained it on that shard alone). It lists
    the folder in the file system's order, so rows are paired by content, not by position.
    """
    out = build_hh(tmp_path_factory.mktemp("lf"), "llama-factory", 60_000, "output.shard_rows=150")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    shards = [out / f["path"] for f in manifest["outputs"] if f["split"] == "train"]
    assert len(shards) >= 3
    written = [json.loads(line) for f in shards for line in f.read_text(encoding="utf-8").splitlines()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run([str(LF_PYTHON), str(Path(__file__).with_name("llamafactory_load.py")), str(out), NAME],
                         capture_output=True, text=True, env=env, cwd=out, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    aligned = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]  # its log goes to stdout
    assert len(written) == rows_written(out)
    assert len(aligned) == len(written)  # no shard left out, no row skipped as "abnormal" by its converter
    key = lambda turns, system: (system, tuple(turns))  # noqa: E731
    by_key = {key([t["value"] for t in row["conversations"]], row["system"]): row for row in written}
    assert len(by_key) == len(written)  # every row told apart by its content
    paired = [by_key.pop(key([t["content"] for t in got["_prompt"] + got["_response"]], got["_system"]))
              for got in aligned]
    assert not by_key
    return paired, aligned


def test_llamafactory_loads_every_row_with_its_system_prompt_and_tools(loaded: Any) -> None:
    written, aligned = loaded
    assert len(aligned) == len(written) > 50
    assert sum(bool(r["system"]) for r in written) > 10 and sum(bool(r["tools"]) for r in written) > 10
    for row, got in zip(written, aligned, strict=True):
        assert got["_system"] == row["system"]
        turns = [t["content"] for t in got["_prompt"] + got["_response"]]
        assert turns == [t["value"] for t in row["conversations"]]
        assert got["_response"][0]["role"] == "assistant"
        names = [spec["name"] for spec in json.loads(row["tools"])] if row["tools"] else []
        rendered = got["tools_rendered"]["qwen"]  # the tools text of LLaMA-Factory's qwen template
        assert isinstance(rendered, str) and all(f'"name": "{n}"' in rendered for n in names), rendered


def test_llamafactory_default_tool_format_renders_every_rows_tools(loaded: Any) -> None:
    written, aligned = loaded
    if not any('"analyze_ab_test"' in r["tools"] for r in written):
        pytest.skip("no row of this build carries the tool with a numeric enum")
    failed = [(row["tools"][:80], got["tools_rendered"]["default"]) for row, got in zip(written, aligned)
              if not isinstance(got["tools_rendered"]["default"], str)]
    assert not failed, f"{len(failed)} rows' tools break LLaMA-Factory's default tool format: {failed[0]}"
