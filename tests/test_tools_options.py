"""Tools options for deeper augmentation: opaque names (mask_names) and the placement ablation
(render = "user"); both row-local, deterministic, and recorded on the row."""

from __future__ import annotations

import json
import re

import jsonschema
import polars as pl
import pytest

from conftest import EXAMPLES, HH, needs_shared
from mixer import transforms
from mixer.recipe import from_dict
from mixer.sources.read import read_source
from test_prepare import mixed, split_apply  # noqa: F401 - the shared mixed-rows fixture


@pytest.fixture(scope="module")
def chats_frame() -> pl.DataFrame:
    src = from_dict({"sources": {"s": {"path": str(EXAMPLES / "harmless_chats.jsonl"), "examples": 1}}}).sources[0]
    return read_source(src)[0]


def meta(row: dict) -> dict:
    return json.loads(row["meta"])


def test_mask_names_gives_attached_tools_opaque_names_and_keeps_descriptions(chats_frame: pl.DataFrame) -> None:
    out = transforms.tools(chats_frame, p=1.0, count=[2, 3], mask_names=True, seed=0)
    plain = transforms.tools(chats_frame, p=1.0, count=[2, 3], seed=0)
    checked = 0
    for before, masked, unmasked in zip(chats_frame.iter_rows(named=True), out.iter_rows(named=True),
                                        plain.iter_rows(named=True)):
        own = len(before["tools"])
        assert masked["tools"][:own] == before["tools"]  # the row's own tools are left as they were
        maps = meta(masked)["aug.0.mask_names"]
        for spec_text, original_text, names in zip(masked["tools"][own:], unmasked["tools"][own:], maps):
            spec, original = json.loads(spec_text)["function"], json.loads(original_text)["function"]
            token = spec["name"].removeprefix("f_")
            assert re.fullmatch(r"f_\d{6}", spec["name"]) and names["name"] == {original["name"]: spec["name"]}
            assert spec["description"] == original["description"]
            props, old_props = spec["parameters"].get("properties", {}), original["parameters"].get("properties", {})
            assert list(props) == [names["parameters"][k] for k in old_props]
            assert all(re.fullmatch(rf"p\d+_{token}", k) for k in props)
            assert list(props.values()) == list(old_props.values())  # types and descriptions kept
            assert spec["parameters"].get("required", []) == [names["parameters"][k]
                                                              for k in original["parameters"].get("required", [])]
            jsonschema.Draft202012Validator.check_schema(spec["parameters"])
            checked += 1
    assert checked > 50
    assert out.equals(transforms.tools(chats_frame, p=1.0, count=[2, 3], mask_names=True, seed=0))
    repeat = chats_frame.with_columns(pl.col("id") + "#1")
    again = transforms.tools(repeat, p=1.0, count=[2, 3], mask_names=True, seed=0)
    assert (again.get_column("tools") != out.get_column("tools")).sum() > 0  # a repeat draws its own names


def test_render_user_prepends_the_tools_block_to_the_first_user_turn_only(chats_frame: pl.DataFrame) -> None:
    out = transforms.tools(chats_frame, p=0.7, count=[1, 2], render="user", seed=1)
    changed = 0
    for before, after in zip(chats_frame.iter_rows(named=True), out.iter_rows(named=True)):
        assert after["system"] == before["system"] and after["tools"] == before["tools"]
        if "aug.0.tools" not in meta(after):
            assert after["messages"] == before["messages"]
            continue
        assert meta(after)["aug.0.tools_in_user_turn"] is True
        first = next(i for i, m in enumerate(before["messages"]) if m["role"] == "user")
        for i, (a, b) in enumerate(zip(after["messages"], before["messages"])):
            if i == first:
                block, _, rest = a["content"].partition("\n\n" + b["content"])
                assert rest == "" and a["content"].endswith(b["content"]) and len(block) > 20
                names = [ident.split(":")[-1].split(".")[-1] for ident in meta(after)["aug.0.tools"]]
                assert all(name in block for name in names)
            else:
                assert a == b  # every other turn byte-identical
        changed += 1
    assert changed > 10


@pytest.mark.parametrize("options", [{"mask_names": True}, {"render": "user"},
                                     {"render": "both", "mask_names": True}, {"hard_negatives": 0.7}])
def test_the_new_options_are_row_local_across_chunk_splits(mixed: pl.DataFrame, options: dict) -> None:  # noqa: F811
    prepared = transforms.prepare(({"type": "tools", "p": 0.8, "count": [1, 3], **options},), seed=3, source="s")
    whole, _ = prepared.apply(mixed)
    for seed in range(3):
        assert split_apply(prepared, mixed, seed).equals(whole)


def test_bad_option_values_fail_at_prepare() -> None:
    with pytest.raises(Exception, match="mask_names: expected true or false"):
        transforms.prepare(({"type": "tools", "mask_names": "yes"},), seed=0, source="s")
    with pytest.raises(Exception, match="render: expected one of field, system, both, user"):
        transforms.prepare(({"type": "tools", "render": "assistant"},), seed=0, source="s")


@pytest.mark.parametrize("last, expected", [
    ({"role": "assistant", "content": "I can’t help with making a weapon."}, "refuses despite tools"),
    ({"role": "assistant", "content": "Sorry, but I won't write that letter."}, "refuses despite tools"),
    ({"role": "assistant", "content": "I'm not able to share someone's address."}, "refuses despite tools"),
    ({"role": "assistant", "content": "What kind of lock is it?"}, "asks a follow-up"),
    ({"role": "assistant", "content": "Here is how you can reset your own router."}, "answers despite tools"),
    ({"role": "assistant", "content": "", "tool_calls": '[{"type": "function", "function": {"name": "f", '
                                                        '"arguments": "{}"}}]'}, "calls a tool"),
    ({"role": "user", "content": "and then?"}, "prompt only"),
])
def test_each_tooled_row_records_what_its_kept_answer_demonstrates(last: dict, expected: str) -> None:
    from mixer import schema
    from mixer.transforms.tools import behaviour

    message = {"role": "user", "content": "q", "tool_calls": None, "tool_call_id": None, "name": None}
    row = {"id": "s/1", "source": "s", "kind": "chat", "system": None, "tools": [], "text": None, "meta": "{}",
           "n_tokens": 0, "messages": [message, {"tool_calls": None, "tool_call_id": None, "name": None, **last}]}
    frame = pl.DataFrame([row], schema=schema.SCHEMA)
    assert behaviour(frame).to_list() == [json.dumps(expected)]


def test_the_manifest_counts_behaviours_among_selected_rows(tmp_path) -> None:
    from conftest import write_recipe
    from mixer import pipeline

    r = write_recipe(tmp_path / "r.toml", f'unit = "examples"\n[sources.a]\npath = "{EXAMPLES / "harmless_chats.jsonl"}"\n'
                                          'examples = 20\n[[sources.a.transforms]]\ntype = "tools"\np = 1.0\n')
    m = pipeline.build(r)
    step = m.manifest["sources"]["a"]["transforms"][0]
    frame = m.to_polars()["train"]
    labels = frame.get_column("meta").str.extract(r'"aug\.0\.behaviour": "([^"]+)"').drop_nulls().value_counts()
    assert step["behaviours_selected"] == dict(sorted(labels.iter_rows()))
    assert sum(step["behaviours_selected"].values()) == step["augmented_selected"] > 0


@needs_shared
def test_hard_negatives_fit_the_request_and_say_why(tmp_path) -> None:
    from mixer.transforms import hard_negatives as hn

    src = from_dict({"sources": {"s": {"path": str(HH), "examples": 1}}}).sources[0]
    frame = read_source(src)[0]
    prepared = transforms.prepare(({"type": "tools", "p": 1.0, "count": [1, 2], "hard_negatives": 0.5},),
                                  seed=0, source="s")
    out, _ = prepared.apply(frame)
    seen = 0
    for row in out.iter_rows(named=True):
        info = meta(row).get("aug.0.hard_negatives")
        if not info:
            continue
        [why] = info
        user = " ".join(m["content"] for m in row["messages"] if m["role"] == "user").lower()
        assert re.search(rf"\b{re.escape(why['cue'])}\b", user), why  # the cue is in the request
        assert why["cue"] in hn.INTENTS[why["intent"]][0]
        spec = next(json.loads(t) for t in row["tools"]
                    if json.loads(t)["function"]["name"] == why["tool"].split(".")[-1])
        assert why["slot"] in spec["function"]["parameters"]["properties"]  # the slot that fits
        assert why["slot"] in hn.INTENTS[why["intent"]][1]
        assert why["tool"] in meta(row)["aug.0.tools"]  # attached like every tool
        seen += 1
    tooled_with_cue = int(hn.detect(frame.select(pl.col("messages").list.eval(pl.element().filter(
        pl.element().struct.field("role") == "user").struct.field("content")).list.join("\n")).to_series()).any(axis=1).sum())
    assert 0.35 * tooled_with_cue < seen < 0.65 * tooled_with_cue  # about hard_negatives of the eligible rows
    with pytest.raises(Exception, match="hard_negatives: expected a probability"):
        transforms.prepare(({"type": "tools", "hard_negatives": 1.5},), seed=0, source="s")
