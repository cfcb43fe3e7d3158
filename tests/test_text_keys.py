"""Exact-dedup keys: the bytes path (numpy over UTF-8, a piece at a time, on threads) gives the
same key as the plain definition (NFKC on compatibility characters, case, whitespace runs)."""

from __future__ import annotations

import unicodedata
from unittest import mock

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


@given(st.lists(st.one_of(st.none(), st.lists(_ALPHABET, max_size=40).map("".join)), min_size=1, max_size=30),
       st.sampled_from([1 << 20, 64, 1]))
@settings(max_examples=300, deadline=None)
def test_sequence_keys_equal_the_plain_definition(values: list[str | None], piece: int) -> None:
    """Also when the texts are worked on in many small pieces (on several threads)."""
    with mock.patch.object(text, "_PIECE_BYTES", piece):
        keys = text.sequence_keys(pl.Series(values, dtype=pl.String))
    expected = pl.Series([reference(v) for v in values], dtype=pl.String).hash(seed=0).to_numpy()
    assert keys.tolist() == expected.tolist()


def test_sequence_keys_lower_case_as_polars_does_beyond_ascii() -> None:
    """Letters outside ASCII (Greek, Cyrillic, final sigma, dotted I, 4-byte characters) are
    lowered by Polars: the bytes path lowers only ASCII letters."""
    values = ["ΟΔΟΣ  Σ", "Привет МИР", "İstanbul", "𐐀𐐁 DESERET", "ÉCOLE", "plain ascii", "“Quotes”  — dash"]
    keys = text.sequence_keys(pl.Series(values))
    expected = pl.Series([reference(v) for v in values]).hash(seed=0).to_numpy()
    assert keys.tolist() == expected.tolist()


def test_a_long_run_of_spaces_or_newlines_collapses_to_one() -> None:
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


def polars_strings_keys(values: list[str | None]) -> list[int]:
    """The keys by Polars string operations alone (what the bytes path must equal): NFKC where a
    compatibility character occurs, separators as spaces, Polars' lower case, runs of spaces as
    one, the ends trimmed."""
    s = pl.Series(values, dtype=pl.String).fill_null("")
    s = pl.select(pl.when(s.str.contains(text._COMPAT)).then(s.str.normalize("NFKC")).otherwise(s)).to_series()
    s = s.str.replace_many(["\r", "\n", "\t"], [" ", " ", " "]).str.to_lowercase()
    return s.str.replace_all(" +", " ").str.strip_chars(" ").hash(seed=0).to_list()


@given(st.lists(st.one_of(st.none(), st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
                          st.lists(st.sampled_from(["A", " ", "\n", "Σ", "İ", "ǅ", "Ω", "ẞ"]), max_size=12)
                          .map("".join)), min_size=1, max_size=25))
@settings(max_examples=300, deadline=None)
def test_sequence_keys_equal_polars_string_operations_on_any_text(values: list[str | None]) -> None:
    """Any Unicode text (every script, 4-byte characters, title case, final sigma): the bytes
    path lowers ASCII itself and leaves every other letter to Polars, so no character slips."""
    assert text.sequence_keys(pl.Series(values, dtype=pl.String)).tolist() == polars_strings_keys(values)
