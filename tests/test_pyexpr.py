"""The shared expressions give what Python gives, on the characters that differ between escapers."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer.pyexpr import blank, escaped, json_escaped, json_string

tricky = st.text(alphabet=st.sampled_from(['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1c", "\x1f", "\x7f",
                                           " ", "\u00a0", "\u2028", "\u3000", "é", "東", "🙂", "/", "a"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(tricky, min_size=1, max_size=8))
def test_json_string_and_blank_are_what_python_gives(values: list[str]) -> None:
    frame = pl.DataFrame({"s": values})
    assert frame.select(json_string(pl.col("s"))).to_series().to_list() == [json.dumps(v, ensure_ascii=False)
                                                                              for v in values]
    assert frame.select(blank(pl.col("s"))).to_series().to_list() == [not v.strip() for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(tricky, min_size=1, max_size=8))
def test_escaping_parts_and_joining_them_is_escaping_the_joined_text(values: list[str]) -> None:
    frame = pl.DataFrame({"s": values})
    assert frame.select(json_escaped(pl.col("s"))).to_series().to_list() == [escaped(v) for v in values]
    assert pl.select(json_escaped(pl.lit(None, pl.String))).item() is None
    assert "".join(escaped(v) for v in values) == json.dumps("".join(values), ensure_ascii=False)[1:-1]
