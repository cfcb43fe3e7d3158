"""Transforms are prepared once (options, pools, indexes) and applied per chunk, row-locally;
`mixer validate` runs the same preparation, so it catches what a build would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from conftest import chats, write_jsonl, write_recipe
from mixer import transforms
from mixer.cli import main
from mixer.errors import RecipeError
from mixer.recipe import Source
from mixer.sources.read import read_source

OWN_TOOL = {"type": "function", "function": {"name": "create_event", "description": "mine",
                                             "parameters": {"type": "object"}}}

#: One spec per registered transform, with options that exercise its per-row paths.
SPECS: dict[str, dict] = {
    "system_prompt": {"type": "system_prompt", "p": 0.8, "mode": "prepend"},
    "tools": {"type": "tools", "p": 0.7, "count": [1, 4], "catalog": ["builtin", "generated"], "render": "both"},
    "drop_system": {"type": "drop_system", "p": 0.5},
    "to_prompt": {"type": "to_prompt"},
    "documents_to_chat": {"type": "documents_to_chat", "p": 0.6},
    "filter": {"type": "filter", "exclude": r"question 1\d\b", "min_tokens": 6},
    "irrelevance": {"type": "irrelevance", "p": 0.8},
}


def read(path: Path, **kw) -> pl.DataFrame:
    return read_source(Source(name="s", path=str(path), **kw))[0]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """Chats with and without system prompts, tools, final answers (some JSON, some German),
    and documents with and without titles, shuffled together."""
    tmp = tmp_path_factory.mktemp("mixed")
    rows = []
    for i, c in enumerate(chats(400)):
        turns = list(c["messages"])
        if i % 5 == 0:
            turns = [{"role": "system", "content": "Existing."}, *turns]
        if i % 9 == 0:
            turns[-1] = {"role": "assistant", "content": json.dumps({"answer": f"a{i}", "confidence": 0.5})}
        if i % 13 == 0:
            turns[-1] = {"role": "assistant", "content": "Das ist nicht die Antwort, die ich für dich habe, und es ist auch gut so."}
        if i % 11 == 0:
            turns = turns[:-1]  # prompt-only
        elif i % 7 == 3:  # a tool-calling demonstration
            call = [{"id": f"c{i}", "type": "function", "function": {"name": "create_event", "arguments": "{}"}}]
            turns = [*turns[:-1], {"role": "assistant", "content": "", "tool_calls": call},
                     {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"}, turns[-1]]
            rows.append({"messages": turns, "tools": [OWN_TOOL]})
            continue
        rows.append({"messages": turns, **({"tools": [OWN_TOOL]} if i % 7 == 0 else {})})
    docs = [{"text": f"Document body {i}. " * (1 + i % 4), **({"title": f"Title {i}"} if i % 2 else {})}
            for i in range(120)]
    frame = pl.concat([read(write_jsonl(tmp / "c.jsonl", rows)),
                       read(write_jsonl(tmp / "d.jsonl", docs), kind="document")])
    return frame.sample(fraction=1.0, shuffle=True, seed=7)


def split_apply(prepared: transforms.Prepared, frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, frame.height), size=rng.integers(1, 12), replace=False))
    bounds = [0, *cuts.tolist(), frame.height]
    parts = [prepared.apply(frame.slice(a, b - a))[0] for a, b in zip(bounds, bounds[1:])]
    return pl.concat(parts)


def test_every_registered_transform_has_a_row_local_check() -> None:
    assert set(SPECS) == set(transforms.REGISTRY), "add a spec for the new transform to SPECS"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_transform_is_row_local_across_random_chunk_splits(mixed: pl.DataFrame, name: str) -> None:
    prepared = transforms.prepare((SPECS[name],), seed=3, source="s")
    whole, _ = prepared.apply(mixed)
    assert not whole.equals(mixed), f"{name} changed nothing: the check would be vacuous"
    for seed in range(4):
        assert split_apply(prepared, mixed, seed).equals(whole), (name, seed)


def test_a_whole_chain_is_row_local_and_equals_one_shot_apply(mixed: pl.DataFrame) -> None:
    chain = tuple(SPECS[n] for n in ("filter", "documents_to_chat", "system_prompt", "drop_system", "tools", "to_prompt"))
    prepared = transforms.prepare(chain, seed=5, source="s")
    whole, steps = prepared.apply(mixed)
    assert whole.equals(transforms.apply(mixed, chain, seed=5, source="s")[0])
    assert [s.type for s in steps] == [s["type"] for s in chain] and steps[0].rows_out < steps[0].rows_in
    for seed in range(3):
        assert split_apply(prepared, mixed, seed).equals(whole)


def test_a_large_frame_runs_in_parts_on_threads_with_the_rows_and_step_counts_of_one_pass(
        mixed: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Prepared.apply`` cuts a frame of at least twice ``PART_ROWS`` rows into one part per
    core and runs the chain on each in a thread: the same rows and the same step totals."""
    import threading

    chain = tuple(SPECS[n] for n in ("filter", "documents_to_chat", "system_prompt", "drop_system", "tools", "to_prompt"))
    prepared = transforms.prepare(chain, seed=5, source="s")
    whole, steps = prepared.apply(mixed)
    threads: set[int] = set()
    chain_of = transforms.Prepared._chain
    monkeypatch.setattr(transforms.Prepared, "_chain",
                        lambda self, frame: threads.add(threading.get_ident()) or chain_of(self, frame))
    monkeypatch.setattr(transforms, "PART_ROWS", 50)
    monkeypatch.setattr(transforms, "cores", lambda: 3)
    parted, parted_steps = prepared.apply(mixed)
    assert len(threads) == 3 and threading.get_ident() not in threads
    assert parted.equals(whole) and parted_steps == steps
    assert steps[0].rows_out < steps[0].rows_in and all(s.augmented for s in steps[1:])


@pytest.mark.parametrize("spec, message", [
    ({"type": "system_prompt", "p": 1.5}, r"transforms\[0\] \(system_prompt\): p: expected a probability"),
    ({"type": "tools", "count": [5, 1]}, r"count: expected \[lo, hi\] with 0 <= lo <= hi, got \[5, 1\]"),
    ({"type": "tools", "catalog": "gone.jsonl"}, r"catalog: pool file .*gone.jsonl does not exist"),
    ({"type": "system_prompt", "pool": "gone.txt"}, r"pool: pool file .*gone.txt does not exist"),
    ({"type": "system_prompt", "pool": {"path": "p.csv", "column": "promt"}}, r"p.csv:2: no column 'promt'"),
    ({"type": "system_prompt", "pool": {"path": "p.csv", "exclude": {"typ": "IMAGE"}}}, r"exclude names column 'typ'"),
    ({"type": "system_prompt", "exclude_tags": ["format:jsn"]}, r"unknown constraint tag 'format:jsn' \(did you mean 'format:json'\?\)"),
    ({"type": "system_prompt", "styles": ["terce"]}, r"styles: no pool entry has style 'terce' \(did you mean 'terse'\?\)"),
    ({"type": "system_prompt", "exclude_styles": ["xyz"]}, r"exclude_styles: no pool entry has style 'xyz'; styles in"),
    ({"type": "documents_to_chat", "pool": "gone.txt"}, r"\(documents_to_chat\): pool: pool file"),
    ({"type": "filter", "min_tokens": 10, "max_tokens": 5}, r"min_tokens = 10 is above max_tokens = 5"),
    ({"type": "drop_system", "p": -1}, r"p: expected a probability"),
])
def test_prepare_fails_on_bad_values_and_files_without_any_rows(tmp_path: Path, spec: dict, message: str) -> None:
    (tmp_path / "p.csv").write_text("act,prompt,type\nx,Be kind.,TEXT\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        transforms.prepare((spec,), seed=0, source="s", base_dir=tmp_path)


def test_prepared_info_counts_pool_entries_used_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("act,prompt,type\na,Short one.,TEXT\nb,An image prompt.,IMAGE\nc,"
                                    + "x" * 9000 + ",TEXT\n", encoding="utf-8")
    prepared = transforms.prepare(({"type": "system_prompt", "pool": {"path": "p.csv", "exclude": {"type": "IMAGE"}}},),
                                  seed=0, source="s", base_dir=tmp_path)
    assert prepared.info["0:system_prompt"]["pool"] == {
        "p.csv": {"entries": 1, "skipped": {"exclude type = IMAGE": 1, "over max_chars = 8000": 1}}}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("transform, message", [
    ('type = "system_prompt"\np = 1.5', "p: expected a probability between 0 and 1, got 1.5"),
    ('type = "tools"\ncount = [5, 1]', "count: expected [lo, hi]"),
    ('type = "tools"\ncatalog = "missing.jsonl"', "missing.jsonl does not exist"),
    ('type = "system_prompt"\npool = {path = "p.csv", column = "promt"}', "no column 'promt'"),
    ('type = "system_prompt"\npool = "missing.txt"', "missing.txt does not exist"),
])
def test_validate_catches_transform_errors_a_build_would_meet(tmp_path: Path, transform: str, message: str) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(5))
    (tmp_path / "p.csv").write_text("act,prompt\nx,Be kind.\n", encoding="utf-8")
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "a.jsonl"\n'
                          f'weight = 1\n[[sources.a.transforms]]\n{transform}\n')
    code, output = run_cli("validate", str(recipe))
    assert code == 2 and message in output and "transforms[0]" in output and "r.toml" in output, output
    ok = write_recipe(tmp_path / "ok.toml", 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "a.jsonl"\n'
                      'weight = 1\n[[sources.a.transforms]]\ntype = "tools"\n')
    assert run_cli("validate", str(ok))[0] == 0


def test_prepared_state_pickles_for_other_processes(mixed: pl.DataFrame) -> None:
    """An executor with worker processes (Ray) ships the prepared state instead of re-preparing."""
    import pickle

    from mixer import tokens

    prepared = transforms.prepare(tuple(SPECS.values()), seed=2, source="s", encoding=tokens.encoding("cl100k_base"))
    again = pickle.loads(pickle.dumps(prepared))
    assert again.apply(mixed)[0].equals(prepared.apply(mixed)[0])
