"""Augmentation transforms: turns untouched, rates as configured, deterministic, guard holds."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import HH, TOOL_SPECS, chats, needs_shared, write_jsonl
from mixer import schema, transforms
from mixer.errors import RecipeError
from mixer.recipe import Source
from mixer.sources.read import read_source
from mixer.pools.catalog import _normalize
from mixer.transforms.tools import _stems


def read(path: Path | str, **kw) -> pl.DataFrame:
    return read_source(Source(name="s", path=str(path), **kw))[0]


@pytest.fixture(scope="module")
def hh() -> pl.DataFrame:
    if not HH.exists():
        pytest.skip(needs_shared.kwargs["reason"])
    return read(HH)


@pytest.fixture
def small(tmp_path: Path) -> pl.DataFrame:
    return read(write_jsonl(tmp_path / "c.jsonl", chats(400)))


def augment(frame: pl.DataFrame, seed: int = 1) -> pl.DataFrame:
    out, _ = transforms.apply(frame, (
        {"type": "system_prompt", "p": 0.7},
        {"type": "tools", "p": 0.6, "count": [1, 5], "catalog": ["builtin", "generated"]},
    ), seed=seed, source="s")
    return out


def names(tools: list[str]) -> list[str]:
    return [json.loads(t)["function"]["name"] for t in tools]


@needs_shared
def test_user_and_assistant_turns_are_byte_identical_on_real_hh_rlhf(hh: pl.DataFrame) -> None:
    out = augment(hh)
    assert out.get_column("messages").to_list() == hh.get_column("messages").to_list()
    assert out.get_column("id").to_list() == hh.get_column("id").to_list()
    assert (out.get_column("tools").list.len() > 0).sum() > 0 and out.get_column("system").is_not_null().sum() > 0


def test_augmented_fraction_is_within_binomial_bounds_of_p(small: pl.DataFrame) -> None:
    big = pl.concat([small.with_columns(pl.col("id") + f"#{r}") if r else small for r in range(25)])  # 10k rows
    n = big.height
    for p in (0.1, 0.5, 0.9):
        got = transforms.system_prompt(big, p=p, seed=3).get_column("system").is_not_null().sum()
        assert abs(got - n * p) <= 5 * np.sqrt(n * p * (1 - p)), (p, got)
        got = (transforms.tools(big, p=p, count=(1, 2), seed=3).get_column("tools").list.len() > 0).sum()
        assert abs(got - n * p) <= 5 * np.sqrt(n * p * (1 - p)), (p, got)


def test_tool_counts_stay_within_count_and_names_are_unique_per_row(small: pl.DataFrame) -> None:
    out = transforms.tools(small, p=1.0, count=(2, 6), seed=5, catalog=["builtin", "generated"])
    lengths = out.get_column("tools").list.len()
    assert lengths.min() >= 2 and lengths.max() <= 6 and lengths.n_unique() == 5
    for tools in out.get_column("tools").to_list():
        assert len(set(names(tools))) == len(tools)


def test_existing_tools_are_kept_and_never_duplicated_by_name(tmp_path: Path) -> None:
    own = {"type": "function", "function": {"name": "create_event", "description": "mine", "parameters": {"type": "object"}}}
    frame = read(write_jsonl(tmp_path / "c.jsonl", [dict(c, tools=[own]) for c in chats(300)]))
    out = transforms.tools(frame, p=1.0, count=(5, 5), seed=2)
    for tools in out.get_column("tools").to_list():
        assert json.loads(tools[0])["function"]["description"] == "mine"
        assert names(tools).count("create_event") == 1 and len(tools) == 6


def test_same_result_for_any_batch_size(small: pl.DataFrame) -> None:
    whole = augment(small)
    batched = pl.concat([augment(small.slice(i, 37)) for i in range(0, small.height, 37)])
    assert whole.equals(batched)


def test_same_result_with_one_polars_thread(tmp_path: Path, small: pl.DataFrame) -> None:
    small.write_parquet(tmp_path / "in.parquet")
    code = ("import polars as pl, sys; sys.path.insert(0, %r); from test_transforms import augment; "
            "augment(pl.read_parquet(%r)).write_parquet(%r)")
    for threads, name in (("1", "one.parquet"), ("2", "two.parquet")):
        env = {**os.environ, "POLARS_MAX_THREADS": threads}
        subprocess.run([sys.executable, "-c", code % (str(Path(__file__).parent), str(tmp_path / "in.parquet"),
                                                       str(tmp_path / name))], check=True, env=env)
    assert pl.read_parquet(tmp_path / "one.parquet").equals(pl.read_parquet(tmp_path / "two.parquet"))


def test_upsampled_repeats_get_fresh_draws(small: pl.DataFrame) -> None:
    again = small.with_columns(pl.col("id") + "#1")
    a, b = augment(small), augment(again)
    assert (a.get_column("system").fill_null("") != b.get_column("system").fill_null("")).mean() > 0.3
    assert a.get_column("messages").equals(b.get_column("messages"))


def test_meta_records_pool_entry_and_tool_ids(small: pl.DataFrame) -> None:
    out = augment(small)
    metas = [json.loads(m) for m in out.get_column("meta").to_list()]
    with_prompt = [m for m in metas if "aug.0.system_prompt" in m]
    with_tools = [m for m in metas if "aug.1.tools" in m]
    assert with_prompt and all(m["aug.0.system_prompt"].startswith("builtin:sp-") for m in with_prompt)
    assert with_tools and all(isinstance(m["aug.1.tools"], list) and m["aug.1.tools"] for m in with_tools)
    for meta, tools in zip(metas, out.get_column("tools").to_list()):
        assert len(meta.get("aug.1.tools", [])) == len(tools)


@pytest.mark.parametrize("mode, expected", [
    ("if_absent", "Existing."), ("replace", "NEW"), ("prepend", "NEW\n\nExisting."), ("append", "Existing.\n\nNEW"),
])
def test_system_prompt_modes(tmp_path: Path, mode: str, expected: str) -> None:
    rows = [{"messages": [{"role": "system", "content": "Existing."}, *c["messages"]]} for c in chats(5)]
    frame = read(write_jsonl(tmp_path / "c.jsonl", rows))
    (tmp_path / "pool.txt").write_text("NEW\n")
    out = transforms.system_prompt(frame, pool="pool.txt", p=1.0, mode=mode, base_dir=tmp_path)
    assert out.get_column("system").to_list() == [expected] * 5


def test_render_system_puts_a_tools_block_in_the_system_prompt(small: pl.DataFrame) -> None:
    out = transforms.tools(small, p=1.0, count=(2, 2), render="system", block=0, seed=1)
    assert out.get_column("tools").list.len().max() == 0
    system = out.get_column("system")[0]
    assert system.startswith("# Tools") and system.rstrip().endswith("</tools>") and system.count('"type": "function"') == 2


def test_documents_are_never_given_tools_or_prompts(tmp_path: Path) -> None:
    docs = read(write_jsonl(tmp_path / "d.jsonl", [{"text": f"doc {i}"} for i in range(50)]), kind="document")
    out = augment(docs)
    assert out.equals(docs)


def test_to_prompt_drops_only_the_final_assistant_turn(small: pl.DataFrame) -> None:
    out = transforms.to_prompt(small)
    assert out.get_column("messages").list.len().to_list() == [1] * small.height
    assert out.get_column("messages").list.first().equals(small.get_column("messages").list.first())


def test_documents_to_chat_wraps_text_as_the_answer(tmp_path: Path) -> None:
    docs = read(write_jsonl(tmp_path / "d.jsonl", [{"text": "Body one.", "title": "On Honesty"}, {"text": "Body two."}]),
                kind="document")
    out = transforms.documents_to_chat(docs, seed=1)
    assert out.get_column("kind").to_list() == ["chat", "chat"] and out.get_column("text").is_null().all()
    first, second = out.get_column("messages").to_list()
    assert first[1] == {"role": "assistant", "content": "Body one.", "tool_calls": None, "tool_call_id": None, "name": None}
    assert "On Honesty" in first[0]["content"] and "{title}" not in second[0]["content"]


def test_filter_by_tokens_regex_and_blocklist(small: pl.DataFrame) -> None:
    assert transforms.filter(small, include=r"question 1\d\b").height == 10
    assert transforms.filter(small, exclude=r"question", role="user").height == 0
    assert transforms.filter(small, blocklist=["ANSWER 3 "], role="assistant").height == small.height - 1
    long, short = transforms.filter(small, min_tokens=30), transforms.filter(small, max_tokens=29)
    assert 0 < long.height < small.height and long.height + short.height == small.height


def test_bad_options_name_the_transform_and_key() -> None:
    frame = schema.empty()
    with pytest.raises(RecipeError, match=r"transforms\[0\]\.cout: unknown option for tools \(did you mean 'count'\?\)"):
        transforms.apply(frame, ({"type": "tools", "cout": [1, 2]},), seed=0, source="s")
    with pytest.raises(RecipeError, match=r"count: expected \[lo, hi\]"):
        transforms.apply(frame, ({"type": "tools", "count": [3, 1]},), seed=0, source="s")
    with pytest.raises(RecipeError, match=r"p: expected a probability"):
        transforms.apply(frame, ({"type": "system_prompt", "p": 1.5},), seed=0, source="s")
    with pytest.raises(RecipeError, match="invalid regular expression"):
        transforms.apply(frame, ({"type": "filter", "include": "("},), seed=0, source="s")


def test_lazy_frames_are_accepted(small: pl.DataFrame) -> None:
    out = transforms.tools(small.lazy(), p=0.5, count=(1, 5), seed=0)
    assert isinstance(out, pl.LazyFrame) and out.collect().equals(transforms.tools(small, p=0.5, count=(1, 5), seed=0))


@needs_shared
def test_relevance_guard_never_attaches_a_queries_own_tool(tmp_path: Path) -> None:
    """BFCL single-tool queries with all their tools in the catalog: the matching tool never comes back."""
    with gzip.open(TOOL_SPECS / "bfcl_questions.jsonl.gz", "rt") as fh:
        items = [json.loads(line) for line in fh]
    items = [q for q in items if len(q["tools"]) == 1 and "irrelevance" not in q["category"]]
    catalog = {q["tools"][0]["function"]["name"]: q["tools"][0] for q in items}
    write_jsonl(tmp_path / "catalog.jsonl", list(catalog.values()))

    def user_text(q: dict) -> str:
        turns = q["question"][0] if isinstance(q["question"][0], list) else q["question"]
        return "\n".join(t["content"] for t in turns if t["role"] == "user")

    rows = write_jsonl(tmp_path / "q.jsonl", [{"messages": [{"role": "user", "content": user_text(q)},
                                                              {"role": "assistant", "content": "ok"}]} for q in items])
    frame = read(rows)
    out = transforms.tools(frame, catalog=str(tmp_path / "catalog.jsonl"), p=1.0, count=(60, 60), seed=11)
    # what the guard reads of a tool: name, description, parameter names, descriptions, enums
    spec_text = {n: f"{n} {_normalize(n, s)[3]}" for n, s in catalog.items()}
    attached_own, lexical = 0, 0
    for q, tools in zip(items, out.get_column("tools").to_list()):
        own = q["tools"][0]["function"]["name"]
        if set(_stems(user_text(q))) & set(_stems(spec_text[own])):
            lexical += 1
            attached_own += own in names(tools)
    assert attached_own == 0
    assert lexical / len(items) > 0.95  # the guard can see 95%+ of real query/tool matches
    unguarded = transforms.tools(frame, catalog=str(tmp_path / "catalog.jsonl"), p=1.0, count=(60, 60), seed=11,
                                 guard=False)
    hits = sum(q["tools"][0]["function"]["name"] in names(t) for q, t in zip(items, unguarded.get_column("tools").to_list()))
    assert hits > 50  # without the guard the own tool does come back: the test can fail


def test_categorical_picks_equal_a_binary_search_of_the_cdf_for_any_weights() -> None:
    """``rows.pick`` (a guide table for large draws) gives each uniform the first index whose
    CDF value exceeds it, as ``searchsorted`` does: skewed and zero weights, uniforms equal to
    CDF values and just below them, a CDF that ends short of 1."""
    from mixer.transforms.rows import pick

    r = np.random.default_rng(0)
    for trial in range(300):
        n = int(r.integers(1, 300))
        p = r.random(n) ** r.choice([1, 4, 12])
        p[r.random(n) < 0.2] = 0
        p[0] += p.sum() == 0
        cdf = np.cumsum(p / p.sum()) * (1 - 1e-9 * (trial % 2))
        u = np.concatenate([r.random(20 * n), cdf, np.nextafter(cdf, 0), [0.0, np.nextafter(1.0, 0)]])
        u = u[(u >= 0) & (u < 1)]
        assert np.array_equal(pick(cdf, u), np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)), trial


def test_the_picker_keeps_each_rows_first_slot_of_a_name_up_to_its_count() -> None:
    """``_Picker._keep``: a tool name appears once per row, the first surviving slot winning, and
    at most ``want`` slots are kept; the same whether the slots are few (compared pairwise) or
    many (sorted)."""
    import importlib

    tools_mod = importlib.import_module("mixer.transforms.tools")
    r = np.random.default_rng(0)
    for trial in range(100):
        n_names, width, n = int(r.integers(1, 12)), int(r.integers(1, 40)), 200
        name_of = r.integers(0, n_names, 50)
        cand, want = r.integers(0, 50, (n, width)), r.integers(0, width + 1, n)
        picker = tools_mod._Picker(np.linspace(0.02, 1, 50), name_of, n_names, np.zeros(0, dtype=np.int64), 0, 0)
        got = picker._keep(cand, np.arange(n), 0, want, None)
        for i in range(n):
            seen: set[int] = set()
            expected = []
            for j in range(width):
                name = int(name_of[cand[i, j]])
                expected.append(name not in seen and len(seen) < want[i])
                seen.add(name)
            assert got[i].tolist() == expected, (trial, i)
