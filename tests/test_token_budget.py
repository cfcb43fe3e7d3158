"""What a token budget counts (``token_budget``): a source's own content by default, so injected
system prompts and tool specs never buy a share of the mixture; every measure is shown."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from conftest import chats, write_jsonl, write_recipe
from mixer import manifest as manifest_mod
from mixer import pipeline, tokens, transforms
from mixer.errors import RecipeError
from mixer.recipe import load, load_all
from mixer.sources.read import read_source
from mixer.recipe import from_dict

ENC = tokens.encoding("cl100k_base")


def two_sources(tmp_path: Path, budget: str | None) -> Path:
    """``aug`` gets four tool specs and a system prompt on every row; ``plain`` gets nothing."""
    write_jsonl(tmp_path / "aug.jsonl", chats(300, "a"))
    write_jsonl(tmp_path / "plain.jsonl", chats(300, "p"))
    line = f'token_budget = "{budget}"\n' if budget else ""
    return write_recipe(tmp_path / "r.toml", line + """
unit = "tokens"
total = 8000
[sources.aug]
path = "aug.jsonl"
weight = 0.5
[[sources.aug.transforms]]
type = "system_prompt"
[[sources.aug.transforms]]
type = "tools"
p = 1.0
count = [4, 4]
[sources.plain]
path = "plain.jsonl"
weight = 0.5
""")


def measured_as_written(frame: pl.DataFrame, source: str) -> dict[str, int]:
    """Recount the written rows of ``source``: rendered as they are, content without tools and system."""
    rows = frame.filter(pl.col("source") == source)
    bare = rows.with_columns(system=pl.lit(None, pl.String), tools=pl.lit([], pl.List(pl.String)))
    return {"rendered": int(tokens.counts(rows, ENC)["n_rendered"].sum()),
            "content": int(tokens.counts(bare, ENC)["n_rendered"].sum()),
            "assistant": int(tokens.counts(rows, ENC)["n_assistant"].sum())}


def test_by_default_a_token_share_buys_the_sources_own_content_not_injected_text(tmp_path: Path) -> None:
    m = pipeline.build(two_sources(tmp_path, None))
    assert m.manifest["token_budget"] == "content"
    aug, plain = (m.manifest["sources"][n] for n in ("aug", "plain"))
    frame = m.to_polars()["train"]
    for name, entry in (("aug", aug), ("plain", plain)):
        written = measured_as_written(frame, name)
        assert entry["token_counts"]["selected"] == written  # every number matches the files
        assert entry["tokens_selected"] == written["content"]
        assert abs(written["content"] - 4000) <= entry["largest_row_selected"]  # half the content each
    assert aug["token_counts"]["selected"]["rendered"] > 3 * aug["token_counts"]["selected"]["content"]
    # the rows' n_tokens is their size under the budget, and the largest is the manifest's
    for name, entry in (("aug", aug), ("plain", plain)):
        n_tokens = frame.filter(pl.col("source") == name)["n_tokens"]
        assert int(n_tokens.sum()) == entry["tokens_selected"] and int(n_tokens.max()) == entry["largest_row_selected"]
        assert n_tokens.len() == entry["rows_selected"]


def test_a_rendered_budget_spends_the_share_on_injected_text(tmp_path: Path) -> None:
    m = pipeline.build(two_sources(tmp_path, "rendered"))
    aug, plain = (m.manifest["sources"][n]["token_counts"]["selected"] for n in ("aug", "plain"))
    assert abs(aug["rendered"] - plain["rendered"]) < 400
    assert aug["content"] < plain["content"] / 3  # the same share buys a fraction of the conversations


def test_an_assistant_budget_counts_trained_tokens_only(tmp_path: Path) -> None:
    m = pipeline.build(two_sources(tmp_path, "assistant"))
    frame = m.to_polars()["train"]
    for name in ("aug", "plain"):
        entry = m.manifest["sources"][name]
        assert entry["tokens_selected"] == measured_as_written(frame, name)["assistant"]
        assert abs(entry["tokens_selected"] - 4000) <= entry["largest_row_selected"]


@pytest.mark.parametrize("budget", ["content", "assistant", "rendered"])
def test_the_build_table_shows_every_measure_and_marks_the_budget(tmp_path: Path, budget: str) -> None:
    m = pipeline.build(two_sources(tmp_path, budget))
    table = manifest_mod.table(m.manifest)
    header = table.splitlines()[0].split()
    assert [h for h in header if h.rstrip("*") in ("rendered", "content", "assistant")] == \
        [h + ("*" if h == budget else "") for h in ("rendered", "content", "assistant")]
    assert f"(token_budget = '{budget}')" in table
    aug = m.manifest["sources"]["aug"]["token_counts"]["selected"]
    aug_line = next(line for line in table.splitlines() if line.startswith("aug "))
    assert all(f"{aug[k]:,}" in aug_line for k in ("rendered", "content", "assistant"))


def test_a_mixture_of_a_staged_recipe_may_count_tokens_its_own_way(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    r = write_recipe(tmp_path / "r.toml", """
token_budget = "assistant"
total = 300
[sources.a]
path = "a.jsonl"
[mixtures.sft.sources.a]
weight = 1
[mixtures.rendered]
token_budget = "rendered"
[mixtures.rendered.sources.a]
weight = 1
""")
    stages = load_all(r)
    assert stages["sft"].token_budget == "assistant" and stages["rendered"].token_budget == "rendered"


def test_an_unknown_token_budget_names_the_choices(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(3))
    r = write_recipe(tmp_path / "r.toml", 'token_budget = "contents"\n[sources.a]\npath = "a.jsonl"\nexamples = 1\n')
    with pytest.raises(RecipeError, match=r"token_budget: expected one of content, assistant, rendered, got "
                                          r"'contents'.*content"):
        load(r)


def _one(tmp_path: Path, record: dict, kind: str = "chat") -> pl.DataFrame:
    return read_source(from_dict({"sources": {"s": {"path": str(write_jsonl(tmp_path / "s.jsonl", [record])),
                                                     "examples": 1, "kind": kind}}}).sources[0])[0]


def test_content_keeps_the_sources_own_system_prompt_inside_a_prepended_one(tmp_path: Path) -> None:
    row = _one(tmp_path, {"messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    own = tokens.counts(row, ENC).row(0, named=True)
    (tmp_path / "pool.txt").write_text("You are a careful assistant.\n")
    for mode, kept in (("prepend", True), ("append", True), ("replace", False)):
        out = transforms.system_prompt(row, pool="pool.txt", mode=mode, seed=0, base_dir=tmp_path)
        got = tokens.counts(out, ENC, before=row).row(0, named=True)
        assert got["n_rendered"] > own["n_rendered"]
        sys_tokens = len(ENC.encode_ordinary("Be brief.")) + tokens.MESSAGE_OVERHEAD
        assert got["n_content"] == own["n_content"] - (0 if kept else sys_tokens), mode
        assert got["n_assistant"] == own["n_assistant"] == len(ENC.encode_ordinary("hello")) + tokens.MESSAGE_OVERHEAD


def test_a_document_wrapped_as_a_chat_counts_the_document_not_the_request(tmp_path: Path) -> None:
    doc = _one(tmp_path, {"text": "The constitution explains why honesty matters."}, kind="document")
    out = transforms.documents_to_chat(doc, seed=0)
    got = tokens.counts(out, ENC, before=doc).row(0, named=True)
    body = len(ENC.encode_ordinary("The constitution explains why honesty matters."))
    assert got["n_content"] == got["n_assistant"] == body + tokens.MESSAGE_OVERHEAD
    assert got["n_rendered"] > got["n_content"]
    assert tokens.counts(doc, ENC).row(0) == (body, body, body)  # a document is trained on whole


def test_a_prompt_only_row_has_no_assistant_tokens(tmp_path: Path) -> None:
    row = _one(tmp_path, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    out = transforms.to_prompt(row, seed=0)
    got = tokens.counts(out, ENC, before=row).row(0, named=True)
    assert got["n_assistant"] == 0 and got["n_content"] == got["n_rendered"] > 0


def test_manifest_records_the_budget_and_what_each_measure_means(tmp_path: Path) -> None:
    m = pipeline.build(two_sources(tmp_path, None))
    written = json.loads((Path(m.write(tmp_path / "out")) / "manifest.json").read_text())
    assert written["token_budget"] == "content"
    assert set(written["tokenizer"]["measures"]) == {"rendered", "content", "assistant"}
    assert set(written["sources"]["aug"]["token_counts"]) == {"available", "selected"}


def test_pool_entries_preparation_skipped_are_in_the_manifest_and_on_screen(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(20))
    (tmp_path / "pool.csv").write_text('prompt,type\n"Be kind.",TEXT\n"Draw a cat.",IMAGE\n"' + "x" * 200 + '",TEXT\n')
    r = write_recipe(tmp_path / "r.toml", """
unit = "examples"
[sources.a]
path = "a.jsonl"
examples = 10
[[sources.a.transforms]]
type = "system_prompt"
pool = [{path = "pool.csv", column = "prompt", exclude = {type = "IMAGE"}, max_chars = 100}]
""")
    m = pipeline.build(r).manifest
    step = m["sources"]["a"]["transforms"][0]
    assert step["prepared"]["pool"]["pool.csv"] == {"entries": 1, "skipped": {"exclude type = IMAGE": 1,
                                                                               "over max_chars = 100": 1}}
    assert ("note: source 'a' 0:system_prompt: pool.csv skipped 2 entries, used 1 (exclude type = IMAGE: 1, "
            "over max_chars = 100: 1)") in manifest_mod.table(m)


def test_an_assistant_budget_for_rl_prompts_is_refused_with_what_to_use(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(5))
    r = write_recipe(tmp_path / "r.toml", 'unit = "tokens"\ntotal = 100\ntoken_budget = "assistant"\n'
                                          '[sources.a]\npath = "a.jsonl"\nweight = 1\n[output]\nformat = "prompt"\n')
    with pytest.raises(RecipeError, match=r'token_budget: format = "prompt" writes prompts .*token_budget = "content"'):
        load(r)
    r.write_text(r.read_text().replace('token_budget = "assistant"', 'token_budget = "rendered"'))
    assert load(r).token_budget == "rendered"
