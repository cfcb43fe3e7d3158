"""Which copy of its content each row of a source is: the ``.k`` of ``source/digest.k`` ids.

Every row read has to be checked against every digest read before it in the source. A Python
``Counter`` of hex strings did that at about 120 bytes a row: 1.2 GB for a 10M-row JSON Lines
source read by ``--stream``, more than the chunk it streams. Here the digests are 8-byte
integers kept in a few sorted numpy arrays (a log-structured merge: each array at least twice
the size of the next, so a lookup is a binary search in each of about log2(rows / batch) arrays
and each digest is re-sorted about that many times), with a dict only for digests seen more
than once. About 8 bytes a row, and whole batches are numbered at once.
"""

from __future__ import annotations

import numpy as np


class Occurrences:
    """The number of earlier rows with each digest, over every batch given so far."""

    def __init__(self) -> None:
        self._levels: list[np.ndarray] = []  # sorted, unique, disjoint; sizes decreasing
        self._counts: dict[int, int] = {}  # digest -> rows seen, for digests seen more than once

    def number(self, digests: np.ndarray) -> np.ndarray:
        """For each digest (uint64, in read order): how many rows before it had the same one,
        in earlier batches or earlier in this batch; then remember them all."""
        digests = np.asarray(digests, dtype=np.uint64)
        n = len(digests)
        if not n:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(digests, kind="stable")  # equal digests keep their read order
        ranked = digests[order]
        starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
        distinct = ranked[starts]
        runs = np.diff(np.append(starts, n))
        before = self._before(distinct)
        numbers = np.empty(n, dtype=np.int64)
        numbers[order] = np.arange(n) - np.repeat(starts, runs) + np.repeat(before, runs)
        total = before + runs
        for digest, count in zip(distinct[total > 1].tolist(), total[total > 1].tolist()):
            self._counts[digest] = count
        self._add(distinct[before == 0])
        return numbers

    def _before(self, distinct: np.ndarray) -> np.ndarray:
        """Rows seen so far with each of these (sorted, unique) digests."""
        known = np.zeros(len(distinct), dtype=bool)
        for level in self._levels:
            at = np.minimum(np.searchsorted(level, distinct), len(level) - 1)
            known |= level[at] == distinct
        before = known.astype(np.int64)
        if self._counts and known.any():
            where = np.flatnonzero(known)
            before[where] = [self._counts.get(d, 1) for d in distinct[where].tolist()]
        return before

    def _add(self, new: np.ndarray) -> None:
        if not len(new):
            return
        self._levels.append(new)
        while len(self._levels) > 1 and len(self._levels[-2]) <= 2 * len(self._levels[-1]):
            last = self._levels.pop()
            self._levels[-1] = np.sort(np.concatenate((self._levels[-1], last)), kind="stable")  # a merge of two runs
