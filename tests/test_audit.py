"""mixer audit: real chat templates, rendered through transformers, on real builds; each model
family's behaviour is detected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import HH, REPO, SHARED, needs_shared, write_jsonl
from mixer import audit as audit_mod
from mixer.cli import main

pytest.importorskip("transformers", reason="mixer audit needs transformers (pip install 'mixer[audit]')")
TEMPLATES = SHARED / "chat_templates"
DIVERSIFIED = REPO / "recipes" / "harmlessness-diversified.toml"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def hh_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The HH slice with system prompts and tools (render = "field"), in canonical and trl."""
    if not (HH / "test.jsonl.gz").exists():
        pytest.skip("../shared/data (real HH-RLHF slice) is not beside this checkout")
    root = tmp_path_factory.mktemp("hh")
    outs = {}
    for fmt in ("canonical", "trl"):
        code, output = run_cli("build", str(DIVERSIFIED), "--set", f"sources.harmless.path={HH}",
                               "--set", "total=120000", "--set", f"output.format={fmt}", "--out", str(root / fmt), "-q")
        assert code == 0, output
        outs[fmt] = root / fmt
    return outs


def family(out: Path, name: str, n: int = 150) -> audit_mod.Tally:
    return audit_mod.audit(out, str(TEMPLATES / f"{name}.jinja"), sample=n, seed=1).total


@needs_shared
def test_qwen_keeps_tools_in_the_system_turn_and_injects_its_default_system_prompt(hh_builds) -> None:
    t = family(hh_builds["trl"], "qwen2.5-instruct")
    assert t.system_rows and t.system["system turn"] == t.system_rows
    assert t.tool_rows and t.tools["system turn"] == t.tool_rows
    # rows the recipe left without a system prompt get Qwen's own
    assert t.injected == t.rows - t.system_rows > 0
    assert any("You are Qwen" in finding for finding in t.examples)


@needs_shared
def test_llama_31_moves_tools_into_the_first_user_turn_and_injects_a_date_header(hh_builds) -> None:
    t = family(hh_builds["trl"], "llama-3.1-tools")
    assert t.tool_rows and t.tools["first user turn"] == t.tool_rows
    assert t.system["system turn"] == t.system_rows
    assert t.injected == t.rows and any("Cutting Knowledge Date" in f for f in t.examples)


@needs_shared
def test_gemma_folds_the_system_prompt_into_the_user_turn_and_drops_tools(hh_builds) -> None:
    t = family(hh_builds["trl"], "gemma-it")
    assert t.system_rows and t.system["first user turn"] == t.system_rows
    assert t.tools["absent"] == t.tool_rows > 0
    assert t.injected == 0


@needs_shared
@pytest.mark.parametrize("name", ["chatml", "llama-3-instruct", "zephyr", "phi-3"])
def test_templates_without_tool_support_are_reported_as_dropping_every_tool(hh_builds, name: str) -> None:
    t = family(hh_builds["trl"], name, n=60)
    assert t.tool_rows and t.tools["absent"] == t.tool_rows
    assert t.problems >= t.tool_rows


@needs_shared
def test_per_source_findings_for_canonical_output_and_strict_exit(hh_builds) -> None:
    result = audit_mod.audit(hh_builds["canonical"], str(TEMPLATES / "gemma-it.jinja"), sample=40)
    assert set(result.sources) == {"harmless"} and result.sources["harmless"].rows == 40
    code, output = run_cli("audit", str(hh_builds["canonical"]), "-t", str(TEMPLATES / "gemma-it.jinja"), "-n", "40",
                           "--strict")
    assert code == 1 and "tools absent from the rendered text" in output and "would train differently" in output
    code, output = run_cli("audit", str(hh_builds["canonical"]), "-t", str(TEMPLATES / "gemma-it.jinja"), "-n", "40",
                           "--json")
    assert code == 0 and json.loads(output)["total"]["tools"]["absent"] == result.total.tools["absent"]


def tool_call_rows(tmp_path: Path) -> Path:
    spec = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    rows = []
    for i in range(6):
        rows.append({"tools": [spec], "messages": [
            {"role": "system", "content": f"You are a travel assistant number {i}."},
            {"role": "user", "content": f"Weather in city {i}?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "get_weather",
                                                                 "arguments": json.dumps({"city": f"Paris {i}"})}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."}]})
    return write_jsonl(tmp_path / "calls.jsonl", rows)


@needs_shared
def test_string_arguments_render_double_encoded_where_dict_arguments_do_not(tmp_path: Path) -> None:
    source = tool_call_rows(tmp_path)
    for fmt in ("openai", "trl"):
        assert run_cli("convert", str(source), str(tmp_path / fmt), "--to", fmt)[0] == 0
    qwen = str(TEMPLATES / "qwen2.5-instruct.jinja")
    as_strings = audit_mod.audit(tmp_path / "openai", qwen).total  # openai keeps arguments as JSON strings
    as_dicts = audit_mod.audit(tmp_path / "trl", qwen).total
    assert as_strings.double_encoded == 6 and as_dicts.double_encoded == 0
    assert as_dicts.tools["system turn"] == 6 and as_dicts.problems == 0


@needs_shared
def test_template_errors_are_counted_with_an_example(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                          {"role": "assistant", "content": "c"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "c"}]}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    assert run_cli("convert", str(tmp_path / "in.jsonl"), str(tmp_path / "out"), "--to", "trl")[0] == 0
    t = audit_mod.audit(tmp_path / "out", str(TEMPLATES / "mistral-instruct.jinja")).total
    assert sum(t.errors.values()) == 1 and "roles must alternate" in next(iter(t.errors))
    assert t.rows == 2 and t.problems == 1


def test_text_output_and_unknown_templates_give_clear_errors(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"messages": [{"role": "user", "content": "a"},
                                                      {"role": "assistant", "content": "b"}]}])
    assert run_cli("convert", str(tmp_path / "in.jsonl"), str(tmp_path / "text"), "--to", "text")[0] == 0
    code, output = run_cli("audit", str(tmp_path / "text"), "-t", "chatml")
    assert code == 1 and "already rendered" in output and "Traceback" not in output
    assert run_cli("convert", str(tmp_path / "in.jsonl"), str(tmp_path / "trl"), "--to", "trl")[0] == 0
    code, output = run_cli("audit", str(tmp_path / "trl"), "-t", str(tmp_path / "nope.jinja"))
    assert code == 2 and "no such file or folder" in output


def test_builtin_chatml_audits_a_plain_chat_without_findings(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"messages": [{"role": "system", "content": "Be brief and kind."},
                                                      {"role": "user", "content": "hello there"},
                                                      {"role": "assistant", "content": "hi"}]}])
    assert run_cli("convert", str(tmp_path / "in.jsonl"), str(tmp_path / "trl"), "--to", "trl")[0] == 0
    t = audit_mod.audit(tmp_path / "trl", "chatml").total
    assert t.rows == 1 and t.system["system turn"] == 1 and t.problems == 0 and t.trainable_tokens == 1
