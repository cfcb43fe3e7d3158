"""--force replaces only what mixer wrote: never a repository, a dataset or someone's notes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import chats, write_jsonl, write_recipe
from mixer.cli import main


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def recipe(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "a.jsonl", chats(30, "a"))
    return write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 10\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def foreign_project(folder: Path) -> dict[str, bytes]:
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "src").mkdir()
    (folder / "src" / "train.py").write_text("print('my training code')\n")
    return snapshot(folder)


def test_force_refuses_a_folder_mixer_did_not_write_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "project"
    before = foreign_project(out)
    code, output = run_cli("build", str(recipe(tmp_path)), "--out", str(out), "--force")
    assert code == 1 and "Traceback" not in output
    assert str(out) in output and "was not written by mixer" in output
    assert ".git/" in output and "src/" in output
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".project.")]  # no staging left


def test_force_refuses_a_folder_holding_a_foreign_manifest(tmp_path: Path) -> None:
    out = tmp_path / "other"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "someone else's tool"}))
    code, output = run_cli("build", str(recipe(tmp_path)), "--out", str(out), "--force")
    assert code == 1 and "was not written by mixer" in output
    assert json.loads((out / "manifest.json").read_text()) == {"name": "someone else's tool"}


def test_force_refuses_a_mixer_output_that_also_holds_foreign_files(tmp_path: Path) -> None:
    r = recipe(tmp_path)
    out = tmp_path / "out"
    assert run_cli("build", str(r), "--out", str(out))[0] == 0
    (out / "notes.txt").write_text("eval results, do not lose\n")
    before = snapshot(out)
    code, output = run_cli("build", str(r), "--out", str(out), "--force")
    assert code == 1 and "notes.txt" in output and "mixer did not write" in output
    assert snapshot(out) == before


def test_force_replaces_a_previous_mixer_build(tmp_path: Path) -> None:
    r = recipe(tmp_path)
    out = tmp_path / "out"
    assert run_cli("build", str(r), "--out", str(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mixer"] == manifest["versions"]["mixer"]  # the marker --force recognises
    code, output = run_cli("build", str(r), "--out", str(out), "--force", "--set", "total=5")
    assert code == 0, output
    assert json.loads((out / "manifest.json").read_text())["totals"]["train"]["rows"] == 5


def test_force_replaces_an_output_written_before_the_marker_existed(tmp_path: Path) -> None:
    r = recipe(tmp_path)
    out = tmp_path / "out"
    assert run_cli("build", str(r), "--out", str(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["mixer"]  # older builds carry mixer only under "versions"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert run_cli("build", str(r), "--out", str(out), "--force")[0] == 0


def test_an_empty_folder_is_written_into_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, output = run_cli("build", str(recipe(tmp_path)), "--out", str(out))
    assert code == 0, output
    assert (out / "manifest.json").exists()


def test_streaming_build_with_force_refuses_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "project"
    before = foreign_project(out)
    code, output = run_cli("build", str(recipe(tmp_path)), "--out", str(out), "--force", "--stream")
    assert code == 1 and "was not written by mixer" in output
    assert snapshot(out) == before


def test_convert_with_force_refuses_a_foreign_folder_and_replaces_its_own(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(10, "a"))
    out = tmp_path / "project"
    before = foreign_project(out)
    code, output = run_cli("convert", str(tmp_path / "a.jsonl"), str(out), "--to", "trl", "--force")
    assert code == 1 and "was not written by mixer" in output
    assert snapshot(out) == before
    mine = tmp_path / "converted"
    assert run_cli("convert", str(tmp_path / "a.jsonl"), str(mine), "--to", "trl")[0] == 0
    code, output = run_cli("convert", str(tmp_path / "a.jsonl"), str(mine), "--to", "openai", "--force")
    assert code == 0, output
    assert json.loads((mine / "manifest.json").read_text())["converted"]["to"] == "openai"


def test_staged_build_with_force_refuses_a_foreign_stage_folder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(20))
    r = write_recipe(tmp_path / "r.toml", """
[sources.a]
path = "a.jsonl"
[mixtures.one]
unit = "examples"
[mixtures.one.sources.a]
examples = 5
""")
    root = tmp_path / "o"
    assert run_cli("build", str(r), "--out", str(root), "-q")[0] == 0
    assert json.loads((root / "manifest.json").read_text())["mixer"]
    assert run_cli("build", str(r), "--out", str(root), "--force", "-q")[0] == 0  # its own: replaced
    stage = root / "one"
    for p in sorted(stage.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    before = foreign_project(stage)
    code, output = run_cli("build", str(r), "--out", str(root), "--force", "-q")
    assert code == 1 and "was not written by mixer" in output
    assert snapshot(stage) == before
