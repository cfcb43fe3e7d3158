"""``chat_template``: budgets counted on the rows as the trainer renders them (exact for that model),
equal to what ``mixer audit`` counts on the written rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import HH, REPO, SHARED, chat, chats, needs_shared, write_jsonl, write_recipe
from mixer.cli import main

pytest.importorskip("transformers", reason="counting with a chat template needs transformers (pip install 'mixer[audit]')")

TEMPLATES = SHARED / "chat_templates"
DIVERSIFIED = REPO / "recipes" / "harmlessness-diversified.toml"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args])
    return result.exit_code, result.output


@needs_shared
@pytest.mark.parametrize("template", ["qwen2.5-instruct.jinja", "llama-3.1-tools.jinja"])
def test_template_counts_equal_what_the_audit_counts_on_the_written_rows(tmp_path: Path, template: str) -> None:
    out = tmp_path / "out"
    path = str(TEMPLATES / template)
    code, output = run("build", str(DIVERSIFIED), "--set", f"sources.harmless.path={HH}", "--set", "total=30000",
                       "--set", 'output.format="trl"', "--set", f"chat_template={path}",
                       "--set", 'token_budget="assistant"', "--set", f"output.audit={path}", "--out", str(out), "-q")
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert Path(manifest["tokenizer"]["chat_template"]).resolve() == Path(path).resolve()
    estimate = manifest["audit"]["sources"]["harmless"]["estimate"]
    # every written row, rendered by the audit independently: the build's counts are those counts
    assert estimate["export_rejected"] == 0
    assert estimate["rendered_ratio"] == 1.0 and estimate["trainable_ratio"] == 1.0
    entry = manifest["sources"]["harmless"]
    assert entry["tokens_selected"] == entry["token_counts"]["selected"]["assistant"]
    assert abs(entry["tokens_selected"] - 30000) <= entry["largest_row_selected"]


def test_content_is_the_row_as_read_rendered_the_same_way(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30, "a"))
    write_jsonl(tmp_path / "b.jsonl", chats(30, "b"))
    r = write_recipe(tmp_path / "r.toml", """
unit = "examples"
chat_template = "chatml"
[sources.a]
path = "a.jsonl"
examples = 30
[[sources.a.transforms]]
type = "system_prompt"
pool = "builtin"
p = 1.0
[sources.b]
path = "b.jsonl"
examples = 30
[output]
format = "canonical"
""")
    code, output = run("build", str(r), "--out", str(tmp_path / "out"), "-q")
    assert code == 0, output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    a, b = (manifest["sources"][s]["token_counts"]["selected"] for s in ("a", "b"))
    assert b["content"] == b["rendered"]  # nothing injected: all of it is the source's own
    assert a["content"] < a["rendered"]  # the system prompts were injected
    # the same chats but for their first letter: their own rows render to the same size
    assert a["content"] == b["content"]


def test_a_template_that_refuses_a_row_is_an_error_naming_it(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"messages": [{"role": "system", "content": "be kind"},
                                                     *chat("hi", "hello")["messages"]]}])
    (tmp_path / "nosys.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}")
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\nchat_template = "nosys.jinja"\n'
                                          '[sources.a]\npath = "a.jsonl"\nexamples = 1\n')
    code, output = run("build", str(r), "--out", str(tmp_path / "out"), "-q")
    assert code == 2 and "chat_template" in output and "System role not supported" in output
    assert not (tmp_path / "out").exists()


def test_a_missing_template_fails_validate_before_any_data_is_read(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(3))
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\nchat_template = "missing.jinja"\n'
                                          '[sources.a]\npath = "a.jsonl"\nexamples = 3\n')
    for command in (["validate", str(r)], ["build", str(r), "--out", str(tmp_path / "o"), "-q"]):
        code, output = run(*command)
        assert code == 2 and "chat_template" in output and "missing.jinja" in output, output
