"""The shared expressions give what Python gives, on the characters that differ between escapers."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer.pyexpr import blank, json_string

tricky = st.text(alphabet=st.sampled_from(['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1c", "\x1f", "\x7f",
                                           " ", "\u00a0", "\u2028", "\u3000", "é", "東", "🙂", "/", "a"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(tricky, min_size=1, max_size=8))
def test_json_string_and_blank_are_what_python_gives(values: list[str]) -> None:
    frame = pl.DataFrame({"s": values})
    assert frame.select(json_string(pl.col("s"))).to_series().to_list() == [json.dumps(v, ensure_ascii=False)
                                                                              for v in values]
    assert frame.select(blank(pl.col("s"))).to_series().to_list() == [not v.strip() for v in values]
