"""A source's rows are numbered per content digest (the ``.k`` of their ids) exactly as a
Counter of every digest read before would number them, in a few bytes a row."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mixer.sources.occurrences import Occurrences


def counted(batches: list[list[int]]) -> list[list[int]]:
    """The specification: a Counter over every digest seen so far, row by row."""
    seen: Counter[int] = Counter()
    out = []
    for batch in batches:
        numbers = []
        for digest in batch:
            numbers.append(seen[digest])
            seen[digest] += 1
        out.append(numbers)
    return out


digests = st.one_of(st.integers(0, 6), st.integers(0, 2**64 - 1))  # few values (many copies) or any


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(digests, max_size=40), max_size=30))
def test_numbers_equal_a_counter_of_every_earlier_digest(batches: list[list[int]]) -> None:
    occurrences = Occurrences()
    got = [occurrences.number(np.array(batch, dtype=np.uint64)).tolist() for batch in batches]
    assert got == counted(batches)


def test_many_batches_of_distinct_digests_cost_about_eight_bytes_a_row() -> None:
    rng = np.random.default_rng(0)
    occurrences = Occurrences()
    rows = 0
    for _ in range(400):
        batch = rng.integers(0, 2**63, size=5_000, dtype=np.uint64)
        assert not occurrences.number(batch).any()
        rows += len(batch)
    held = sum(level.nbytes for level in occurrences._levels)
    assert held == 8 * rows and len(occurrences._levels) <= 12
    again = occurrences.number(batch)  # the last batch again: every row is a second copy
    assert (again == 1).all()
