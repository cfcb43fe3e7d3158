"""LLaMA-Factory loads mixer's `llama-factory` output through the written `dataset_info.json`.

LLaMA-Factory 0.9.5 pins datasets<=4.0.0 (mixer needs datasets>=5), so it lives in its own
environment: the build runs here, the loading runs there (``llamafactory_load.py``, LLaMA-Factory's
own parser, loader, sharegpt converter and tool formatters). The environment is found at
``$MIXER_LLAMAFACTORY_PYTHON`` or ``.venv-lf/bin/python`` beside the checkout; how to make it is in
the README (section "Trainers").
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from click.testing import CliRunner

from conftest import REPO, SHARED, needs_shared
from mixer.cli import main
from mixer.formats.llama_factory import _function_json, tool_problem
from mixer.sources.adapters import tool_spec
from trainer_helpers import build_hh, rows_written

BFCL = SHARED / "tool_specs" / "bfcl_tools.jsonl.gz"  # real function docs: 47 have an enum of numbers

LF_PYTHON = Path(os.environ.get("MIXER_LLAMAFACTORY_PYTHON", REPO / ".venv-lf" / "bin" / "python"))
NAME = "harmlessness-diversified"  # the recipe's name: the dataset's key in dataset_info.json

pytestmark = [
    pytest.mark.trainers, needs_shared,
    pytest.mark.skipif(not LF_PYTHON.exists(), reason=f"no LLaMA-Factory environment at {LF_PYTHON} "
                       "(set MIXER_LLAMAFACTORY_PYTHON; README, section Trainers, says how to make one)"),
]


def lf_run(*args: str, cwd: Path) -> list[str]:
    """The stdout lines of ``llamafactory_load.py ARGS`` run in the LLaMA-Factory environment."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run([str(LF_PYTHON), str(Path(__file__).with_name("llamafactory_load.py")), *args],
                         capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.splitlines()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict]:
    """(rows as mixer wrote them, rows as LLaMA-Factory aligned them), paired, and the manifest.

    The train split is cut into several shards: ``dataset_info.json`` names their folder, and
    LLaMA-Factory must read every one (naming one file trained it on that shard alone). It lists
    the folder in the file system's order, so rows are paired by content, not by position.
    The tools come from the built-in catalog and the real BFCL specs, some of which LLaMA-Factory's
    default tool format cannot render.
    """
    tmp = tmp_path_factory.mktemp("lf")
    catalog = tmp / "bfcl.jsonl"
    imported = CliRunner().invoke(main, ["pools", "import", str(BFCL), "--from", "bfcl", "-o", str(catalog)])
    assert imported.exit_code == 0, imported.output
    out = build_hh(tmp, "llama-factory", 60_000, "output.shard_rows=150",
                   f'sources.harmless.transforms[1].catalog=["builtin", "{catalog}"]')
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    shards = [out / f["path"] for f in manifest["outputs"] if f["split"] == "train"]
    assert len(shards) >= 3
    written = [json.loads(line) for f in shards for line in f.read_text(encoding="utf-8").splitlines()]
    aligned = [json.loads(line) for line in lf_run(str(out), NAME, cwd=out) if line.startswith("{")]  # log too
    assert len(written) == rows_written(out)
    assert len(aligned) == len(written)  # no shard left out, no row skipped as "abnormal" by its converter
    key = lambda turns, system: (system, tuple(turns))  # noqa: E731
    by_key = {key([t["value"] for t in row["conversations"]], row["system"]): row for row in written}
    assert len(by_key) == len(written)  # every row told apart by its content
    paired = [by_key.pop(key([t["content"] for t in got["_prompt"] + got["_response"]], got["_system"]))
              for got in aligned]
    assert not by_key
    return paired, aligned, manifest


def test_llamafactory_loads_every_row_with_its_system_prompt_and_tools(loaded: Any) -> None:
    written, aligned, _ = loaded
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


def test_llamafactory_default_tool_format_fails_on_exactly_the_rows_the_manifest_counts(loaded: Any) -> None:
    written, aligned, manifest = loaded
    failed = [(row, got["tools_rendered"]["default"]) for row, got in zip(written, aligned)
              if not isinstance(got["tools_rendered"]["default"], str)]
    counted = manifest["export"].get("tools_unrendered", {"rows": {}, "tools": {}})
    assert len(failed) == sum(counted["rows"].get("train", {}).values()) > 0
    named = {name for names in counted["tools"].get("train", {}).values() for name in names}
    for row, error in failed:
        assert error["error"].startswith("TypeError: sequence item"), error  # the enum join
        assert named & {spec["name"] for spec in json.loads(row["tools"])}


def test_tool_problem_agrees_with_llamafactorys_default_tool_format(tmp_path: Path) -> None:
    """On every real BFCL spec and on each shape the default formatter reads, mixer's check and
    LLaMA-Factory's own formatter agree on which specs fail."""
    fn = lambda **f: {"type": "function", "function": {"name": "f", **f}}  # noqa: E731
    props = lambda **p: {"type": "object", "properties": p}  # noqa: E731
    cases = [fn(), fn(parameters={}), fn(parameters={"type": "object"}), fn(parameters=props(a={"type": "string"})),
             fn(parameters=props(a="string")), fn(parameters=props(a={"enum": [1, 2]})),
             fn(parameters=props(a={"enum": ["x", 2]})), fn(parameters=props(a={"enum": []})),
             fn(parameters=props(a={"enum": "xy"})), fn(parameters=props(a={"enum": None})),
             fn(parameters=props(a={"enum": ["x", "y"]})), fn(parameters=props(a={"items": [{"type": "string"}]})),
             fn(parameters=props(a={"items": {"type": "string"}})), fn(parameters=props(a={"items": {}})),
             fn(parameters={**props(a={}), "required": None}), fn(parameters={**props(a={}), "required": "a"}),
             fn(parameters={**props(a={}), "required": 3}), fn(type="function", parameters=props())]
    with gzip.open(BFCL, "rt", encoding="utf-8") as f:
        real = [json.loads(line) for line in f]
    texts = [tool_spec(spec) for spec in cases + real]
    lines = tmp_path / "tools.jsonl"
    lines.write_text("".join(json.dumps("[" + _function_json(t) + "]") + "\n" for t in texts), encoding="utf-8")
    errors = [json.loads(line) for line in lf_run("--tools", str(lines), cwd=tmp_path) if line[:1] in ("{", "n")]
    assert len(errors) == len(texts)
    disagree = [(json.loads(t)["function"], e, tool_problem(t)) for t, e in zip(texts, errors)
                if (e is None) != (tool_problem(t) is None)]
    assert not disagree, disagree[:3]
    renders = [False] * 3 + [True, False, False, False] + [True] * 4 + [False] + [True] * 2 + [False, True, False, False]
    assert [e is None for e in errors[:len(cases)]] == renders  # each shape, both ways
    assert sum(e is not None for e in errors[len(cases):]) == 47  # the numeric enums of the real specs
