"""Bad input, one clear outcome each: a message naming the file and what to do, exit 1 or 2,
no traceback, and no output folder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import chats, write_jsonl
from mixer.cli import main

GOOD = [json.dumps(c) for c in chats(5)]


def recipe(tmp_path: Path, source: str = 'path = "data.jsonl"', total: int = 3) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(f'unit = "examples"\ntotal = {total}\n[sources.s]\n{source}\nweight = 1\n')
    return path


def build(tmp_path: Path, recipe_path: Path, *extra: str, out: Path | None = None) -> tuple[int, str, Path]:
    out = out or tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(recipe_path), "--out", str(out), *extra])
    assert "Traceback" not in result.output
    return result.exit_code, result.output, out


def fails(tmp_path: Path, code: int, *patterns: str, recipe_path: Path | None = None, out: Path | None = None) -> None:
    got, output, out = build(tmp_path, recipe_path or recipe(tmp_path), out=out)
    assert got == code, output
    for pattern in patterns:
        assert pattern in output, output
    assert not out.exists()


def data(tmp_path: Path, content: bytes | str, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_malformed_json_line(tmp_path: Path) -> None:
    data(tmp_path, "\n".join(GOOD[:2] + ['{"messages": [}'] + GOOD[2:]) + "\n")
    fails(tmp_path, 1, "data.jsonl:3", "malformed JSON", 'on_error = "skip"')


def test_jsonl_file_that_is_really_a_json_array(tmp_path: Path) -> None:
    data(tmp_path, json.dumps(chats(5), indent=2))
    fails(tmp_path, 1, "data.jsonl holds a JSON array, not JSON Lines", "rename it to .json")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    data(tmp_path, ("\n".join(GOOD) + "\n").encode() + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    fails(tmp_path, 1, "data.jsonl:6", "not valid UTF-8", "re-encode the file as UTF-8")


def test_empty_file(tmp_path: Path) -> None:
    data(tmp_path, "")
    fails(tmp_path, 1, "has no records (empty file or files)")


def test_glob_matching_nothing(tmp_path: Path) -> None:
    fails(tmp_path, 1, "matched no files", recipe_path=recipe(tmp_path, 'path = "nothing/*.jsonl"'))


def test_missing_fields(tmp_path: Path) -> None:
    data(tmp_path, "\n".join(GOOD + [json.dumps({"conversation": []})]) + "\n")
    fails(tmp_path, 1, "data.jsonl:6", "messages must be a list")


def test_unknown_role(tmp_path: Path) -> None:
    data(tmp_path, "\n".join(GOOD + [json.dumps({"messages": [{"role": "narrator", "content": "x"}]})]) + "\n")
    fails(tmp_path, 1, "data.jsonl:6", "unknown role 'narrator'")


def test_empty_turn(tmp_path: Path) -> None:
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "   "}]}
    data(tmp_path, "\n".join(GOOD + [json.dumps(row)]) + "\n")
    fails(tmp_path, 1, "data.jsonl:6", "empty assistant turn at position 1")


def test_50_mb_single_line_is_rejected_as_too_large(tmp_path: Path) -> None:
    huge = {"messages": [{"role": "user", "content": "x" * 50_000_000}, {"role": "assistant", "content": "ok"}]}
    data(tmp_path, "\n".join(GOOD + [json.dumps(huge)]) + "\n")
    fails(tmp_path, 1, "data.jsonl:6", "50.0 MB: record too large (limit 16 MB", "max_record_mb")


def test_50_mb_single_line_is_skipped_and_counted_with_on_error_skip(tmp_path: Path) -> None:
    huge = {"messages": [{"role": "user", "content": "x" * 50_000_000}, {"role": "assistant", "content": "ok"}]}
    data(tmp_path, "\n".join(GOOD + [json.dumps(huge)]) + "\n")
    code, output, out = build(tmp_path, recipe(tmp_path, 'path = "data.jsonl"\non_error = "skip"'))
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["s"]["rows_rejected"] == 1
    reject = json.loads((out / "rejects.jsonl").read_text())
    assert reject["line"] == 6 and len(reject["raw"]) < 3000  # the raw record is excerpted, not copied


def test_csv_with_a_150k_character_field_is_read(tmp_path: Path) -> None:
    long = "word " * 30_000
    rows = ["instruction,output"] + [f'"Summarize: {long}","Short."'] + [f'"q{i}","a{i}"' for i in range(4)]
    data(tmp_path, "\n".join(rows) + "\n", "data.csv")
    code, output, out = build(tmp_path, recipe(tmp_path, 'path = "data.csv"\nformat = "alpaca"', total=5))
    assert code == 0, output
    assert json.loads((out / "manifest.json").read_text())["sources"]["s"]["rows_read"] == 5


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('unit = "examples"\ntotal = 3\n[sources.s\npath = "x"\n')
    fails(tmp_path, 2, "r.toml: TOML syntax error", "line 3, column", recipe_path=path)


def test_unknown_key(tmp_path: Path) -> None:
    fails(tmp_path, 2, "sources.s.max_epoch: unknown key (did you mean 'max_epochs'?)",
          recipe_path=recipe(tmp_path, 'path = "data.jsonl"\nmax_epoch = 2'))


def test_negative_weight(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('total = 3\n[sources.s]\npath = "data.jsonl"\nweight = -0.5\n')
    fails(tmp_path, 2, "sources.s.weight: expected a number >= 0, got -0.5", recipe_path=path)


def test_all_zero_weights(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('total = 3\n[sources.a]\npath = "a.jsonl"\nweight = 0\n[sources.b]\npath = "b.jsonl"\nweight = 0\n')
    fails(tmp_path, 2, "all weights are zero", recipe_path=path)


def test_weight_together_with_tokens(tmp_path: Path) -> None:
    fails(tmp_path, 2, "sources.s: give only one of weight, tokens, examples",
          recipe_path=recipe(tmp_path, 'path = "data.jsonl"\ntokens = 100'))


def test_output_folder_inside_an_input_folder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", chats(5))
    fails(tmp_path, 1, "is inside the input folder of source 's'", recipe_path=recipe(tmp_path, 'path = "in"'),
          out=tmp_path / "in" / "mixture")


def test_output_folder_under_a_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", chats(5))
    (tmp_path / "afile").write_text("x")
    fails(tmp_path, 1, "is a file, not a folder", out=tmp_path / "afile" / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_folder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", chats(5))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    fails(tmp_path, 1, "is not writable", out=locked / "out")


def test_unwritable_output_folder_even_for_root(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", chats(5))
    fails(tmp_path, 1, "cannot write to /proc/mixer-out", out=Path("/proc/mixer-out"))


def test_gzip_that_is_not_gzip(tmp_path: Path) -> None:
    data(tmp_path, "not gzip at all", "data.jsonl.gz")
    fails(tmp_path, 1, "data.jsonl.gz: cannot read", recipe_path=recipe(tmp_path, 'path = "data.jsonl.gz"'))


def test_recipes_never_execute_code() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "mixer"
    text = "\n".join(p.read_text() for p in src.rglob("*.py"))
    for needle in (r"(?<![.\w])eval\(", r"(?<![.\w])exec\(", r"\bpickle\b", r"trust_remote_code\s*=\s*True",
                   r"__import__\("):
        assert not re.search(needle, text), needle
