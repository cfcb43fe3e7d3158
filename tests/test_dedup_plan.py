"""The global exact-dedup plan ranks only rows whose key repeats; it must find exactly the
copies, survivors and order that ranking every row finds."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer import dedup
from mixer.specs import DedupSpec


NAMES = ["s0", "s1", "s2"]  # the source names, by priority


def _every_row_ranked(keys: pl.DataFrame, spec: DedupSpec) -> pl.DataFrame:
    """The plain definition: sort every row into survivor order, a copy is any row after the first of its key."""
    group = ["_prio"] if spec.scope == "source" else []
    ordered = keys.sort([*group, "_key", "_prio", "id"])
    first = ordered.select(pl.struct([*group, "_key"]).is_first_distinct()).to_series()
    marked = ordered.with_columns(_dup=~first, _kept=pl.when(first).then(pl.col("id")).otherwise(None).forward_fill())
    return marked.filter("_dup").select(*dedup.WHERE, source=pl.format("s{}", "_prio"), id="id",
                                        detail=pl.lit("exact duplicate of ") + pl.col("_kept"))


def _key_table(draws: list[tuple[int, int]]) -> pl.DataFrame:
    """One row per draw (source priority, key), ids unique, spread over two chunks per source."""
    prio = np.array([p for p, _ in draws], dtype=np.uint32)
    return pl.DataFrame({
        "id": [f"s{p}/{i:04d}" for i, (p, _) in enumerate(draws)],
        "_prio": prio,
        "_chunk": np.arange(len(draws), dtype=np.uint32) % 2,
        "_row": np.arange(len(draws), dtype=np.uint32),
        "_key": np.array([k for _, k in draws], dtype=np.uint64),
    }, schema=dedup.KEYS)


@settings(max_examples=200, deadline=None)
@given(draws=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6)), max_size=60),
       scope=st.sampled_from(["global", "source"]))
def test_exact_copies_equal_ranking_every_row(draws: list[tuple[int, int]], scope: str) -> None:
    keys = _key_table(draws)
    spec = DedupSpec(exact=True, scope=scope)
    got = dedup.plan(keys, spec, lambda part: np.empty((0, 0), dtype=np.uint32), NAMES)
    assert got.to_dicts() == _every_row_ranked(keys, spec).to_dicts()


def test_a_key_repeated_in_two_sources_is_a_copy_only_under_global_scope() -> None:
    keys = _key_table([(0, 7), (1, 7), (1, 8)])
    unused = lambda part: np.empty((0, 0), dtype=np.uint32)  # noqa: E731
    assert dedup.plan(keys, DedupSpec(exact=True, scope="global"), unused, NAMES).get_column("id").to_list() == ["s1/0001"]
    assert dedup.plan(keys, DedupSpec(exact=True, scope="source"), unused, NAMES).is_empty()
