"""Trainer formats: lossless round trips, loading in the consumers, each trainer's rules enforced."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import polars as pl
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, HH, REPO, SHARED, chats, needs_shared, write_jsonl
from mixer import formats, pipeline
from mixer import manifest as manifest_mod
from mixer.formats import openai as openai_format_module
from mixer.cli import main
from mixer.recipe import Source
from mixer.sources.read import read_source
from openai_format import validate_line

LOSSLESS = ("trl", "openai", "llama-factory")
ALL = ("canonical", "trl", "llama-factory", "openai", "torchtune", "text", "prompt")


def canonical(path: Path | str) -> pl.DataFrame:
    return read_source(Source(name="s", path=str(path)))[0]


def content(frame: pl.DataFrame, keep_ids: bool = True) -> list[tuple]:
    """What a conversation says, with JSON compared as values (spacing is not content)."""
    out = []
    for row in frame.iter_rows(named=True):
        turns = []
        for m in row["messages"]:
            calls = json.loads(m["tool_calls"]) if m["tool_calls"] else []
            calls = [(c.get("id") if keep_ids else None, c["function"]["name"], json.loads(c["function"]["arguments"]))
                     for c in calls]
            turns.append((m["role"], m["content"], calls, m["tool_call_id"] if keep_ids else None))
        out.append((row["system"], turns, [json.loads(t) for t in row["tools"]], row["text"]))
    return out


def heterogeneous_tools_source(tmp_path: Path) -> Path:
    """Chats whose tools use the same parameter name as a string in one spec and an object in another."""
    spec_a = {"type": "function", "function": {"name": "lookup", "description": "Find a record.",
              "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    spec_b = {"type": "function", "function": {"name": "search", "description": "Search with filters.",
              "parameters": {"type": "object", "properties": {"query": {"type": "object", "properties": {
                  "text": {"type": "string"}, "limit": {"type": "integer"}}}}}}}
    arguments = json.dumps({"query": {"text": "tea", "limit": 3}})
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_7", "type": "function", "function": {"name": "search", "arguments": arguments}}]}
    rows = [dict(c, tools=[spec_a]) for c in chats(6, "a")] + [dict(c, tools=[spec_b]) for c in chats(6, "b")]
    rows.append({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Find tea."}, call,
                              {"role": "tool", "tool_call_id": "call_7", "content": "3 teas"},
                              {"role": "assistant", "content": "Found three teas."}], "tools": [spec_a, spec_b]})
    return write_jsonl(tmp_path / "hetero.jsonl", rows)


def round_trip(source: Path, fmt: str, tmp_path: Path) -> tuple[list, list]:
    """Content before (minus rows the format rejects, by reason) and after canonical -> fmt -> canonical."""
    out, _ = pipeline.convert(source, tmp_path / fmt, fmt)
    pipeline.convert(out, tmp_path / "back", "canonical")
    rejected = set()
    if (out / "rejects.jsonl").exists():
        rejected = {json.loads(line)["id"].split("/", 1)[1] for line in (out / "rejects.jsonl").read_text().splitlines()}
    before = canonical(source)
    before = before.filter(~pl.col("id").str.split("/").list.last().is_in(list(rejected)))
    keep_ids = fmt != "llama-factory"  # sharegpt has no call ids; order links calls and results
    return content(before, keep_ids), content(canonical(tmp_path / "back"), keep_ids)


@pytest.mark.parametrize("fmt", LOSSLESS)
def test_round_trip_through_a_format_is_lossless(tmp_path: Path, fmt: str) -> None:
    before, after = round_trip(heterogeneous_tools_source(tmp_path), fmt, tmp_path)
    assert after == before and len(after) == 13
    before, after = round_trip(EXAMPLES / "harmless_chats.jsonl", fmt, tmp_path / "examples")
    assert after == before and len(after) == 36


def test_canonical_output_reads_back_as_canonical(tmp_path: Path) -> None:
    source = heterogeneous_tools_source(tmp_path)
    pipeline.convert(source, tmp_path / "c", "canonical")
    again = read_source(Source(name="s", path=str(tmp_path / "c")))
    assert again[1].format == "canonical" and again[0].get_column("id").to_list() == canonical(source)["id"].to_list()


@needs_shared
@pytest.mark.parametrize("fmt", LOSSLESS)
def test_real_hh_rlhf_round_trips(tmp_path: Path, fmt: str) -> None:
    before, after = round_trip(HH, fmt, tmp_path)
    assert after == before and len(after) >= 2300  # the 4 rows ending on a user turn are rejects


@pytest.mark.parametrize("fmt", ALL)
def test_every_format_opens_with_load_dataset_when_tool_schemas_differ(tmp_path: Path, fmt: str) -> None:
    source = heterogeneous_tools_source(tmp_path)
    out, manifest = pipeline.convert(source, tmp_path / "out", fmt)
    loaded = datasets.load_dataset(str(out))["train"]
    written = (manifest.get("export") or {}).get("rows", {}).get("train", 13)
    assert loaded.num_rows == written > 0
    if fmt in ("trl", "openai", "prompt"):
        specs = [t for row in loaded for t in (row["tools"] or [])]
        kinds = {json.dumps(s["function"]["parameters"]["properties"]["query"]["type"]) for s in specs}
        assert kinds == {'"string"', '"object"'}  # both schemas survive, undistorted
        assert all("limit" not in s["function"]["parameters"]["properties"]["query"] for s in specs
                   if s["function"]["name"] == "lookup")


TEMPLATE = """{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}{{- '# Tools\\n<tools>' }}{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}{{- '\\n</tools><|im_end|>\\n' }}{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}
{%- for message in messages %}{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}{%- for tool_call in message.tool_calls %}{%- set tool_call = tool_call.function %}{{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' + (tool_call.arguments | tojson) + '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}{%- elif message.role == 'tool' %}{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}{%- endif %}{%- endfor %}"""


def local_tokenizer():
    """A tokenizer built here (nothing downloaded) carrying a tool-aware ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", chat_template=TEMPLATE)


def test_every_trl_row_renders_with_a_real_chat_template(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    build = tmp_path / "r.toml"
    build.write_text(f"""
unit = "examples"
total = 60
[output]
format = "trl"
[sources.chats]
path = "{EXAMPLES / 'harmless_chats.jsonl'}"
weight = 1
max_epochs = 2
[[sources.chats.transforms]]
type = "system_prompt"
p = 0.7
[[sources.chats.transforms]]
type = "tools"
p = 0.8
count = [1, 4]
[sources.hetero]
path = "{heterogeneous_tools_source(tmp_path)}"
weight = 0.2
""")
    out = pipeline.build(build).write(tmp_path / "out")
    tokenizer = local_tokenizer()
    rows = datasets.load_dataset(str(out))["train"]
    with_tools = 0
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"] or None, tokenize=False)
        for m in row["messages"]:
            assert m["content"] in text
        for tool in row["tools"] or []:
            assert json.dumps(tool["function"]["name"])[1:-1] in text
        with_tools += bool(row["tools"])
    assert with_tools > 10 and any("<tool_call>" in tokenizer.apply_chat_template(r["messages"], tokenize=False)
                                   for r in rows)


def test_openai_jsonl_passes_the_published_format_rules(tmp_path: Path) -> None:
    out = tmp_path / "r.toml"
    out.write_text(f"""
unit = "examples"
total = 50
[output]
format = "openai"
[sources.chats]
path = "{EXAMPLES / 'harmless_chats.jsonl'}"
weight = 1
max_epochs = 2
[[sources.chats.transforms]]
type = "tools"
p = 0.7
count = [1, 5]
catalog = ["builtin", "generated"]
""")
    written = pipeline.build(out).write(tmp_path / "o")
    lines = (written / "data" / "train-00000-of-00001.jsonl").read_text().splitlines()
    assert len(lines) == 50
    for line in lines:
        assert validate_line(line) == [], line[:300]
    assert sum('"tool_calls"' in line for line in lines) >= 1 and sum('"tools"' in line for line in lines) > 10


def test_openai_rejects_tool_names_it_does_not_allow(tmp_path: Path) -> None:
    spec = {"name": "math.sum", "parameters": {"type": "object", "properties": {}}}
    source = write_jsonl(tmp_path / "a.jsonl", [dict(c, tools=[spec]) for c in chats(3)] + chats(2, "ok"))
    _, manifest = pipeline.convert(source, tmp_path / "o", "openai")
    assert manifest["export"]["rows"]["train"] == 2
    assert list(manifest["export"]["rejected"]["train"]) == [openai_format_module.NAME_RULE]
    assert "rename_tools = true" in openai_format_module.NAME_RULE  # the reason names the fix


def test_rename_tools_renames_specs_and_calls_consistently_and_keeps_every_row(tmp_path: Path) -> None:
    spec = {"type": "function", "function": {"name": "math.sum", "parameters": {"type": "object", "properties": {}}}}
    other = {"type": "function", "function": {"name": "math_sum", "parameters": {"type": "object", "properties": {}}}}
    call = [{"id": "c1", "type": "function", "function": {"name": "math.sum", "arguments": "{}"}}]
    row = {"messages": [{"role": "user", "content": "add"}, {"role": "assistant", "content": "", "tool_calls": call},
                        {"role": "tool", "tool_call_id": "c1", "name": "math.sum", "content": "3"},
                        {"role": "assistant", "content": "It is 3."}], "tools": [spec, other]}
    source = write_jsonl(tmp_path / "a.jsonl", [row] + chats(2, "ok"))
    _, manifest = pipeline.convert(source, tmp_path / "o", "openai", rename_tools=True)
    assert manifest["export"]["rows"]["train"] == 3 and manifest["export"]["rejected"]["train"] == {}
    assert manifest["export"]["tools_renamed"] == {"train": 1}
    [written] = [json.loads(line) for line in (tmp_path / "o" / "data" / "train-00000-of-00001.jsonl")
                 .read_text().splitlines() if "tools" in line]
    names = [t["function"]["name"] for t in written["tools"]]
    assert names == ["math_sum_2", "math_sum"]  # no clash with the row's own math_sum
    assert written["messages"][1]["tool_calls"][0]["function"]["name"] == "math_sum_2"
    assert written["messages"][2]["name"] == "math_sum_2"
    assert validate_line(json.dumps(written)) == []


def test_a_build_with_rename_tools_writes_every_row_and_says_how_many_were_renamed(tmp_path: Path) -> None:
    spec = {"name": "weather.get", "parameters": {"type": "object", "properties": {}}}
    write_jsonl(tmp_path / "a.jsonl", [dict(c, tools=[spec]) for c in chats(6)] + chats(4, "ok"))
    recipe = tmp_path / "r.toml"
    recipe.write_text('unit = "examples"\n[output]\nformat = "openai"\nrename_tools = true\n'
                      '[sources.a]\npath = "a.jsonl"\nexamples = 10\n')
    m = pipeline.build(recipe)
    assert m.manifest["export"]["rows"]["train"] == 10
    assert m.manifest["export"]["sources"]["a"]["tools_renamed"] == {"train": 6}
    assert "note: 6 train rows had tool names renamed to fit openai's rule" in manifest_mod.table(m.manifest)


def test_llama_factory_alternation_violations_are_counted_and_written_to_rejects(tmp_path: Path) -> None:
    bad = [{"messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
                         {"role": "assistant", "content": "answer"}]},
           {"messages": [{"role": "user", "content": "q"}]}]
    source = write_jsonl(tmp_path / "a.jsonl", chats(4) + bad)
    out, manifest = pipeline.convert(source, tmp_path / "o", "llama-factory")
    assert manifest["export"]["rows"]["train"] == 4
    assert manifest["export"]["rejected"]["train"] == {
        "conversation does not end with an assistant turn": 1,
        "turns do not alternate: human at position 1, expected gpt or function_call": 1,
    }
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 2 and all(r["stage"] == "export:llama-factory" for r in rejects)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["o"]["file_name"] == "data/train" and info["o"]["formatting"] == "sharegpt"
    assert [p.name for p in (out / "data" / "train").iterdir()] == ["train-00000-of-00001.jsonl"]


NUMERIC_ENUM = {"type": "function", "function": {"name": "set_level", "parameters": {
    "type": "object", "properties": {"level": {"type": "integer", "enum": [1, 2, 3]}}}}}
NO_PARAMETERS = {"type": "function", "function": {"name": "ping", "description": "No arguments."}}
PLAIN = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"unit": {"type": "string", "enum": ["metric", "imperial"]}}}}}


def test_llama_factory_build_writes_and_counts_rows_whose_tools_its_default_tool_format_cannot_render(
        tmp_path: Path) -> None:
    from mixer.formats.llama_factory import DEFAULT_TOOL_FORMAT

    unalternating = {"messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
                                  {"role": "assistant", "content": "answer"}], "tools": [NUMERIC_ENUM]}
    rows = ([dict(c, tools=[PLAIN, NUMERIC_ENUM]) for c in chats(5)]
            + [dict(c, tools=[NO_PARAMETERS]) for c in chats(2, "p")]
            + [dict(c, tools=[PLAIN]) for c in chats(3, "ok")] + chats(2, "none") + [unalternating])
    write_jsonl(tmp_path / "a.jsonl", rows)
    write_jsonl(tmp_path / "b.jsonl", [dict(c, tools=[NO_PARAMETERS]) for c in chats(4, "b")])
    recipe = tmp_path / "r.toml"
    recipe.write_text('unit = "examples"\n[output]\nformat = "llama-factory"\n'
                      '[sources.a]\npath = "a.jsonl"\nexamples = 13\n[sources.b]\npath = "b.jsonl"\nexamples = 4\n')
    m = pipeline.build(recipe)
    enum = DEFAULT_TOOL_FORMAT + "an enum of values that are not all strings"
    bare = DEFAULT_TOOL_FORMAT + "no parameters.properties object"
    export = m.manifest["export"]
    assert export["rows"]["train"] == 16  # written all the same: other templates render them
    assert export["rejected"]["train"] == {
        "turns do not alternate: human at position 1, expected gpt or function_call": 1}
    assert export["tools_unrendered"] == {"rows": {"train": {bare: 6, enum: 5}},  # the rejected row not counted
                                          "tools": {"train": {bare: ["ping"], enum: ["set_level"]}}}
    assert export["sources"]["a"]["tools_unrendered"] == {"train": {bare: 2, enum: 5}}
    assert export["sources"]["b"]["tools_unrendered"] == {"train": {bare: 4}}
    out = m.write(tmp_path / "out")
    written = [json.loads(line) for f in (out / "data" / "train").iterdir() for line in f.read_text().splitlines()]
    assert sum('"set_level"' in r["tools"] for r in written) == 5 and sum('"ping"' in r["tools"] for r in written) == 6
    table = manifest_mod.table(m.manifest)
    assert (f"warning: 5 train rows written as llama-factory have {enum} (tools: set_level; "
            "manifest.json export.tools_unrendered)") in table
    assert f"warning: 6 train rows written as llama-factory have {bare} (tools: ping;" in table


def test_formats_whose_trainers_render_every_spec_count_no_unrendered_tools(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", [dict(c, tools=[NUMERIC_ENUM, NO_PARAMETERS]) for c in chats(3)])
    for fmt in ("trl", "openai"):
        _, manifest = pipeline.convert(source, tmp_path / fmt, fmt)
        assert "tools_unrendered" not in manifest["export"]


def test_convert_to_llama_factory_warns_of_tools_its_default_tool_format_cannot_render(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", [dict(c, tools=[NUMERIC_ENUM]) for c in chats(3)] + chats(2, "ok"))
    result = CliRunner().invoke(main, ["convert", str(source), str(tmp_path / "o"), "--to", "llama-factory"])
    assert result.exit_code == 0, result.output
    assert "warning: 3 train rows written as llama-factory have tools LLaMA-Factory's default" in result.output
    assert "(tools: set_level; manifest.json export.tools_unrendered)" in result.output


def test_strict_turns_any_rejection_into_a_failed_build(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "a.jsonl", chats(3) + [{"messages": [{"role": "user", "content": "q"}]}])
    result = CliRunner().invoke(main, ["convert", str(source), str(tmp_path / "o"), "--to", "llama-factory", "--strict"])
    assert result.exit_code == 1 and "--strict: 1 rows cannot be written as llama-factory" in result.output
    assert not (tmp_path / "o").exists()


def test_text_format_renders_chats_with_a_tokenizer_config_and_passes_documents(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}",
        "bos_token": {"content": "<s>"}}))
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"""
unit = "examples"
[output]
format = "text"
chat_template = "tokenizer_config.json"
[sources.chats]
path = "{EXAMPLES / 'harmless_chats.jsonl'}"
examples = 5
[sources.docs]
path = "{EXAMPLES / 'documents.jsonl'}"
kind = "document"
examples = 3
""")
    out = pipeline.build(recipe).write(tmp_path / "o")
    texts = datasets.load_dataset(str(out))["train"]["text"]
    docs = {json.loads(line)["text"] for line in (EXAMPLES / "documents.jsonl").read_text().splitlines()}
    assert sum(t in docs for t in texts) == 3
    assert sum(t.startswith("<s>[") and "[assistant] " in t for t in texts) == 4
    # the fifth chat calls a tool, which this template cannot show: counted, not written without it
    rejected = json.loads((out / "manifest.json").read_text())["export"]["rejected"]["train"]
    assert rejected == {"chat template does not render tool calls": 1}


def test_prompt_format_stops_before_the_last_assistant_turn_and_keeps_tools(tmp_path: Path) -> None:
    out, _ = pipeline.convert(heterogeneous_tools_source(tmp_path), tmp_path / "o", "prompt")
    rows = datasets.load_dataset(str(out))["train"]
    for row in rows:
        assert row["prompt"][-1]["role"] in ("user", "tool") and row["tools"]
    assert [m["role"] for m in rows[12]["prompt"]] == ["system", "user", "assistant", "tool"]


def tool_names(row: dict) -> list[str]:
    return [t["function"]["name"] for t in row["tools"] or []]


def tools_block_names(text: str) -> list[str]:
    """Function names listed in the (single) documented tools block of a rendered text."""
    assert text.count("<tools>\n") == 1
    body = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    return [json.loads(line)["function"]["name"] for line in body.splitlines()]


@needs_shared
@pytest.mark.parametrize("template", ["qwen2.5-instruct.jinja", "llama-3-instruct.jinja"])
def test_prompt_rows_carry_their_tools_where_grpo_renders_them(tmp_path: Path, template: str) -> None:
    """TRL GRPO/RLOO render ``prompt`` with ``tools=None``: the tools must be in the prompt itself."""
    pytest.importorskip("transformers")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"""
unit = "examples"
seed = 3
[output]
format = "prompt"
[sources.hh]
path = "{HH}"
examples = 60
[[sources.hh.transforms]]
type = "system_prompt"
p = 0.5
[[sources.hh.transforms]]
type = "tools"
p = 0.7
count = [1, 4]
[[sources.hh.transforms]]
type = "to_prompt"
""")
    out = pipeline.build(recipe).write(tmp_path / "o")
    rows = datasets.load_dataset(str(out))["train"]
    tokenizer = local_tokenizer()
    chat_template = (SHARED / "chat_templates" / template).read_text()
    with_tools = 0
    for row in rows:
        # exactly what GRPOTrainer does with a conversational prompt: no tools argument
        text = tokenizer.apply_chat_template(row["prompt"], tools=None, chat_template=chat_template,
                                             add_generation_prompt=True, tokenize=False)
        if row["tools"]:
            assert tools_block_names(text) == tool_names(row)
        with_tools += bool(row["tools"])
        assert row["prompt"][-1]["role"] == "user"
    assert 20 < with_tools < len(rows) == 60
    systems = [r["prompt"][0]["content"] for r in rows if r["tools"] and r["prompt"][0]["role"] == "system"]
    assert any(not s.startswith("# Tools") for s in systems)  # a sampled system prompt stays first
    assert any(s.startswith("# Tools") for s in systems)  # no system prompt: the block alone


def test_torchtune_folds_tools_into_the_system_prompt(tmp_path: Path) -> None:
    out, manifest = pipeline.convert(heterogeneous_tools_source(tmp_path), tmp_path / "o", "torchtune")
    rows = [json.loads(line) for line in (out / "data" / "train-00000-of-00001.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["messages"][0]["role"] == "system" and "<tools>" in r["messages"][0]["content"]
                                   for r in rows)
    assert manifest["export"]["rejected"]["train"] == {"torchtune chat format has no tool-call or tool-result turns": 1}


@needs_shared
def test_teaching_why_builds_all_three_stages(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [
        "build", str(REPO / "recipes" / "teaching-why.toml"), "--out", str(tmp_path / "tw"), "-q",
        "--set", f"sources.constitution.path={SHARED / 'claude_constitution'}",
        "--set", f"sources.harmless.path={HH}",
        "--set", "mixtures.documents.total=150000", "--set", "mixtures.sft.total=120000",
        "--set", "mixtures.sft.sources.advice.tokens=15000", "--set", "mixtures.rl.sources.harmless.examples=300"])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "tw" / "manifest.json").read_text())
    assert {name: m["format"] for name, m in index["mixtures"].items()} == {
        "documents": "text", "sft": "trl", "rl": "prompt"}
    docs = datasets.load_dataset(str(tmp_path / "tw" / "documents"))["train"]
    assert any(t.startswith("Claude’s Constitution") for t in docs["text"])
    sft = datasets.load_dataset(str(tmp_path / "tw" / "sft"))["train"]
    assert any(row["tools"] for row in sft)
    rl = datasets.load_dataset(str(tmp_path / "tw" / "rl"))["train"]
    assert rl.num_rows == 300 and all(row["prompt"][-1]["role"] == "user" for row in rl)
    tooled = [row for row in rl if row["tools"]]
    assert len(tooled) > 100 and all(  # where GRPO renders them: in the system turn
        row["prompt"][0]["role"] == "system" and tools_block_names(row["prompt"][0]["content"]) == tool_names(row)
        for row in tooled)


def test_only_builds_the_named_mixture(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    write_jsonl(tmp_path / "a.jsonl", chats(20))
    recipe.write_text("""
[sources.a]
path = "a.jsonl"
[mixtures.one]
unit = "examples"
[mixtures.one.sources.a]
examples = 5
[mixtures.two]
unit = "examples"
output = { format = "openai" }
[mixtures.two.sources.a]
examples = 7
""")
    result = CliRunner().invoke(main, ["build", str(recipe), "--out", str(tmp_path / "o"), "--only", "two", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["manifest.json", "report.html", "two"]
    bad = CliRunner().invoke(main, ["build", str(recipe), "--only", "three"])
    assert bad.exit_code == 2 and "no such mixture" in bad.output
    assert CliRunner().invoke(main, ["build", str(recipe), "--dry-run"]).exit_code == 0


TOOLS_RECIPE = """
unit = "examples"
seed = 5
[output]
format = "text"
{template}
[sources.hh]
path = "{hh}"
examples = 50
[[sources.hh.transforms]]
type = "system_prompt"
p = 0.5
[[sources.hh.transforms]]
type = "tools"
p = 0.7
count = [1, 4]
"""

NATIVE = {"qwen2.5-instruct.jinja", "llama-3.1-tools.jinja"}  # SOURCE.md: the templates that render tools


@needs_shared
@pytest.mark.parametrize("template", [None, *sorted(p.name for p in (SHARED / "chat_templates").glob("*.jinja"))])
def test_text_format_never_drops_tools_whatever_the_template(tmp_path: Path, template: str | None) -> None:
    line = f'chat_template = "{SHARED / "chat_templates" / template}"' if template else ""
    recipe = tmp_path / "r.toml"
    recipe.write_text(TOOLS_RECIPE.format(template=line, hh=HH))
    mixture = pipeline.build(recipe)
    assert not mixture.exported["train"].rejects  # HH chats alternate: every template can carry them
    rows, texts = mixture.splits["train"], [r["text"] for r in mixture.exported["train"].rows]
    with_tools = 0
    for row, text in zip(rows.iter_rows(named=True), texts):
        names = [json.loads(t)["function"]["name"] for t in row["tools"]]
        assert all(json.dumps(n)[1:-1] in text for n in names), (template, names)
        if row["system"]:
            assert row["system"].strip() in text
        if names and template not in NATIVE:  # folded: one documented block, before the first user turn
            assert tools_block_names(text) == names
            assert text.index("# Tools") < text.index(row["messages"][0]["content"].strip()[:40])
        with_tools += bool(names)
    assert with_tools > 20


@needs_shared
@pytest.mark.parametrize("template", sorted(p.name for p in (SHARED / "chat_templates").glob("*.jinja")))
def test_text_format_renders_every_template_as_transformers_does(tmp_path: Path, template: str) -> None:
    """The same messages and tools through transformers' own ``apply_chat_template`` give the same
    text. A template that prints today's date (Llama 3.1's ``strftime_now``) gets its own default
    date from mixer, so a build does not depend on the day; transformers is given that date."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    recipe = tmp_path / "r.toml"
    recipe.write_text(TOOLS_RECIPE.format(template=f'chat_template = "{SHARED / "chat_templates" / template}"', hh=HH))
    mixture = pipeline.build(recipe)
    loaded = formats.text.load_template(str(SHARED / "chat_templates" / template), tmp_path)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), chat_template=loaded.source,
                                        bos_token=loaded.bos_token, eos_token=loaded.eos_token)
    texts = [r["text"] for r in mixture.exported["train"].rows]
    for row, ours in zip(mixture.splits["train"].iter_rows(named=True), texts, strict=True):
        messages, specs = formats.text.template_inputs(row, loaded)
        theirs = tokenizer.apply_chat_template(messages, tools=specs or None, tokenize=False, date_string="26 Jul 2024")
        assert ours == theirs, template


def test_text_format_reads_a_tokenizer_saved_by_current_transformers(tmp_path: Path) -> None:
    """transformers saves the template as chat_template.jinja beside tokenizer_config.json."""
    pytest.importorskip("transformers")
    tokenizer = local_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "chat_template.jinja").is_file()
    assert "chat_template" not in json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    source = heterogeneous_tools_source(tmp_path)
    frame = canonical(source)
    for spec in (str(tmp_path / "tok"), str(tmp_path / "tok" / "tokenizer_config.json")):
        template = formats.text.load_template(spec, tmp_path)
        assert template.renders_tools
        for row in frame.iter_rows(named=True):
            ours = formats.text.convert(row, template)["text"]
            specs = [json.loads(t) for t in formats.trl.convert(row)["tools"] or []]  # Json values as written: text
            theirs = tokenizer.apply_chat_template(formats.text._messages(row), tools=specs or None, tokenize=False)
            assert ours == theirs


def test_text_format_counts_tool_calls_a_template_cannot_render(tmp_path: Path) -> None:
    template = formats.text.Template("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    assert not template.renders_tools
    rows = list(canonical(heterogeneous_tools_source(tmp_path)).iter_rows(named=True))
    with pytest.raises(formats.Unrepresentable, match="does not render tool calls"):
        formats.text.convert(rows[-1], template)
    folded = formats.text.convert(rows[0], template)["text"]
    assert folded.startswith("[system] # Tools") and tools_block_names(folded) == ["lookup"]


def test_a_spec_is_parsed_once_and_renaming_one_rows_tools_leaves_the_others_as_they_were() -> None:
    from mixer.formats import common

    spec = json.dumps({"type": "function", "function": {"name": "get weather", "parameters": {"type": "object"}}})
    row = {"kind": "chat", "tools": [spec], "messages": [{"role": "user", "content": "hi", "tool_calls": None}]}
    other = {"kind": "chat", "tools": [spec], "messages": []}
    assert common.tools(row)[0] is common.tools(other)[0]  # one object for every row that carries the spec
    assert common.rename_tools(row, openai_format_module.NAME) == {"get weather": "get_weather"}
    assert json.loads(row["tools"][0])["function"]["name"] == "get_weather"
    assert common.tools(other)[0]["function"]["name"] == "get weather"  # the shared object is untouched


def test_the_manifest_check_refuses_unrendered_tool_counts_that_do_not_add_up(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [dict(c, tools=[NUMERIC_ENUM]) for c in chats(4)] + chats(2, "ok"))
    recipe = tmp_path / "r.toml"
    recipe.write_text('unit = "examples"\n[output]\nformat = "llama-factory"\n[sources.a]\npath = "a.jsonl"\nexamples = 6\n')
    m = pipeline.build(recipe).manifest
    manifest_mod.check(m)
    [reason] = m["export"]["tools_unrendered"]["rows"]["train"]
    m["export"]["tools_unrendered"]["rows"]["train"][reason] = 5
    with pytest.raises(AssertionError, match="do not add up"):
        manifest_mod.check(m)
    m["export"]["tools_unrendered"]["rows"]["train"][reason] = 7
    m["export"]["sources"]["a"]["tools_unrendered"]["train"][reason] = 7
    with pytest.raises(AssertionError, match="than written"):
        manifest_mod.check(m)
