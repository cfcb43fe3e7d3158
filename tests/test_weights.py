"""--weights: fitted source weights (JSON or a sweep's ratios.csv row) fed back into a build."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import chats, write_jsonl, write_recipe
from mixer.cli import main


def recipe(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "a.jsonl", chats(100, "a"))
    write_jsonl(tmp_path / "b.jsonl", chats(100, "b"))
    return write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 50\n[sources.a]\npath = "a.jsonl"\nweight = 1\n'
                                             '[sources.b]\npath = "b.jsonl"\nweight = 1\n')


def selected(output: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[2]) for line in output.splitlines() if line[:2] in ("a ", "b ")}


def test_json_weights_set_the_shares(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(json.dumps({"a": 0.8, "b": 0.2}))
    result = CliRunner().invoke(main, ["build", str(recipe(tmp_path)), "--weights", str(tmp_path / "w.json"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert selected(result.output) == {"a": 40, "b": 10}


def test_a_row_of_a_sweeps_ratios_csv_sets_the_shares(tmp_path: Path) -> None:
    (tmp_path / "ratios.csv").write_text("run,name,index,a,b,tokens,rows\nsweep,v0,0,0.5,0.5,100,50\n"
                                         "sweep,v1,1,0.3,0.7,100,50\n")
    r = recipe(tmp_path)
    result = CliRunner().invoke(main, ["build", str(r), "--weights", f"{tmp_path / 'ratios.csv'}:v1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert selected(result.output) == {"a": 15, "b": 35}
    ambiguous = CliRunner().invoke(main, ["build", str(r), "--weights", str(tmp_path / "ratios.csv"), "--dry-run"])
    assert ambiguous.exit_code == 2 and "pick one" in ambiguous.output and "v0, v1" in ambiguous.output


def test_an_unknown_source_in_the_weights_gets_a_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(json.dumps({"aa": 1.0}))
    result = CliRunner().invoke(main, ["build", str(recipe(tmp_path)), "--weights", str(tmp_path / "w.json")])
    assert result.exit_code == 2 and "no source named 'aa'" in result.output and "did you mean 'a'" in result.output
