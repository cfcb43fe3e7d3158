"""Exact-dedup keys: the fast path (ASCII pre-check, streaming query, literal halvings) gives the
same key as the plain definition (NFKC on compatibility characters, case, whitespace runs)."""

from __future__ import annotations

import unicodedata

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer import text

_ALPHABET = st.sampled_from(list("aAbZ \t\r\n") + ["  ", "\u00a0", "ﬁ", "Ｆ", "\u3000", "é", "e\u0301", "İ", "ß", "😀"])


def reference(value: str | None) -> str:
    value = value or ""
    if pl.Series([value]).str.contains(text._COMPAT).item():
        value = unicodedata.normalize("NFKC", value)
    value = value.replace("\r", " ").replace("\n", " ").replace("\t", " ").lower()
    return " ".join(w for w in value.split(" ") if w)


@given(st.lists(st.one_of(st.none(), st.lists(_ALPHABET, max_size=40).map("".join)), min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_sequence_keys_equal_the_plain_definition(values: list[str | None]) -> None:
    keys = text.sequence_keys(pl.Series(values, dtype=pl.String))
    expected = pl.Series([reference(v) for v in values], dtype=pl.String).hash(seed=0).to_numpy()
    assert keys.tolist() == expected.tolist()


def test_a_run_longer_than_the_streaming_passes_still_collapses() -> None:
    keys = text.sequence_keys(pl.Series(["a" + " " * 1000 + "b", "a b", "A\n\n\n\n\n\n\n\nB"]))
    assert keys[0] == keys[1] == keys[2]


def test_a_chunks_dedup_keys_do_not_depend_on_the_slices_they_are_built_in(monkeypatch) -> None:
    """Key texts are built a slice of rows at a time (they outweigh the rows); the key table
    must be the one built at once, exact and near."""
    from mixer import dedup, schema
    from mixer.specs import DedupSpec, NearDup

    rows = [{"id": f"s/{i}", "source": "s", "kind": "chat", "system": None,
             "messages": [{"role": "user", "content": f"Tell me  about item {i % 4}", "tool_calls": None,
                           "tool_call_id": None, "name": None},
                          {"role": "assistant", "content": "Sure. " * (i % 3), "tool_calls": None,
                           "tool_call_id": None, "name": None}],
             "tools": [], "text": None, "meta": "{}", "n_tokens": 0} for i in range(17)]
    chunk = pl.DataFrame(rows, schema=schema.SCHEMA)
    for spec in (DedupSpec(), DedupSpec(near=NearDup(threshold=0.8, ngram=2))):
        whole, whole_sig = dedup.chunk_keys(chunk, spec, 0, 0)
        with monkeypatch.context() as m:
            m.setattr(dedup, "_SLICE", 5)
            sliced, sliced_sig = dedup.chunk_keys(chunk, spec, 0, 0)
        assert sliced.equals(whole) and whole.get_column("_key").n_unique() < 17  # copies share a key
        assert (whole_sig is None) == (sliced_sig is None)
        if whole_sig is not None:
            assert (whole_sig == sliced_sig).all()


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text()), max_size=40), cut=st.integers(0, 40))
def test_column_content_hashes_equal_hashing_each_string(values: list[str | None], cut: int) -> None:
    """Row ids hash the column's bytes in place; they must be the per-string ids exactly,
    also for a sliced column (an Arrow offset) and one built from several chunks."""
    from mixer import rng

    column = pl.concat([pl.Series("t", values, dtype=pl.String), pl.Series("t", values[:cut], dtype=pl.String)],
                       rechunk=False).slice(1)
    expected = [None if v is None else rng.content_hash(v) for v in column.to_list()]
    assert rng.content_hashes(column).to_list() == expected
