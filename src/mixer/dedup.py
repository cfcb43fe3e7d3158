"""Deduplication across the mixture's sources, before any augmentation.

Exact: rows whose key text (see :func:`mixer.text.row_text`) has the same token sequence
after normalization (NFKC, case, whitespace). Near (optional): MinHash-LSH clusters of word
shingles (:mod:`mixer.neardup`). In both, the copy that survives is deterministic: the source
listed first in the recipe, then the smallest id.

Staged so that no step needs every row's text at once (datatrove's signature -> buckets ->
clusters -> filter):

1. :func:`chunk_keys`, row-local: each row's key (and MinHash signature) in a small key table;
2. :func:`plan`, global: which rows are copies, on the key table and the signature table;
3. :func:`drop`, row-local: remove a chunk's copies (and note where they came from, for
   :func:`records`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from mixer import neardup
from mixer.specs import DedupSpec
from mixer.text import row_text, sequence_keys

REMOVED = pl.DataFrame(schema={"source": pl.String, "id": pl.String, "origin": pl.String, "bucket": pl.String,
                               "detail": pl.String})
# A row of the key table: its id and place, its exact key and, with near dedup only, the row of its
# signature in its chunk's table (null: too short to sign). The source is its priority's name (a
# column of names was 160 MB at 10M rows, and an all-null ``_sig`` 80 MB).
KEYS = pl.Schema({"id": pl.String, "_prio": pl.UInt32, "_chunk": pl.UInt32, "_row": pl.UInt32, "_key": pl.UInt64})
NEAR_KEYS = pl.Schema({**KEYS, "_sig": pl.Int64})
WHERE = ["_prio", "_chunk", "_row"]  # a row's place: source priority, chunk, row in the chunk
COPIES = pl.Schema({"_prio": pl.UInt32, "_chunk": pl.UInt32, "_row": pl.UInt32, "source": pl.String, "id": pl.String,
                    "detail": pl.String})

#: Signatures of the rows of a key table (``_prio, _chunk, _sig``), as one array in that order.
SignatureTable = Callable[[pl.DataFrame], np.ndarray]


def active(spec: DedupSpec) -> bool:
    return spec.exact or spec.near is not None


_SLICE = 50_000  # rows whose key texts are built at once: a row's text and its normal forms outweigh the row


def chunk_keys(chunk: pl.DataFrame, spec: DedupSpec, prio: int, c: int) -> tuple[pl.DataFrame, np.ndarray | None]:
    """Row-local: the key table rows of one chunk (``KEYS``; ``NEAR_KEYS`` for near dedup) and, for
    near dedup, its MinHash signatures (one row per key row whose ``_sig`` is not null, in row order)."""
    exact = [sequence_keys(part.select(row_text(part, spec.key)).to_series()) for part in chunk.iter_slices(_SLICE)]
    keys = chunk.select(
        "id", _prio=pl.lit(prio, pl.UInt32), _chunk=pl.lit(c, pl.UInt32),
        _row=pl.int_range(pl.len(), dtype=pl.UInt32),
        _key=pl.Series(np.concatenate(exact) if exact else np.zeros(0, np.uint64), dtype=pl.UInt64),
    )
    if spec.near is None:
        return keys, None
    near = spec.near
    text = chunk.select(row_text(chunk, spec.key)).to_series()
    signed, table = neardup.signatures(text, ngram=near.ngram, permutations=near.permutations)
    index = pl.Series(np.cumsum(signed, dtype=np.int64) - 1)
    return keys.with_columns(_sig=pl.when(pl.Series(signed)).then(index).otherwise(None)), table


def mark_exact(keyed: pl.DataFrame, spec: DedupSpec) -> pl.DataFrame:
    """Sort rows with ``id, _prio, _key`` columns into survivor order and mark exact copies.

    Adds ``_dup`` (a later copy) and ``_kept`` (the surviving copy's id). Give it only rows
    whose key repeats (:func:`shared_keys`): a row with a key of its own is never a copy.
    """
    group = ["_prio"] if spec.scope == "source" else []
    ordered = keyed.sort([*group, "_key", "_prio", "id"])
    first = ordered.select(pl.struct([*group, "_key"]).is_first_distinct()).to_series()
    return ordered.with_columns(
        _dup=~first,
        _kept=pl.when(first).then(pl.col("id")).otherwise(None).forward_fill(),
    )


def shared_keys(keys: pl.DataFrame, spec: DedupSpec) -> pl.Series:
    """Which rows of the key table share their exact key (within their source, for ``scope =
    "source"``): the only candidates for exact copies, so the sort that ranks survivors runs on
    these rows alone (usually few), not on every row's id."""
    key = keys.get_column("_key")
    if spec.scope != "source":
        return _repeated(key)
    prio = keys.get_column("_prio")
    shared = np.zeros(keys.height, dtype=bool)
    for p in prio.unique().to_list():
        mine = (prio == p).to_numpy()
        shared[mine] = _repeated(key.filter(mine)).to_numpy()
    return pl.Series(shared)


def _repeated(key: pl.Series) -> pl.Series:
    """Which of the (never null) keys occur more than once: found in a sorted copy, then looked
    up. A hash of 10M keys (``is_duplicated``) took 0.8 GB and 0.9 s, of (source, key) pairs
    2 GB; the sort 0.1 GB and 0.3 s."""
    ranked = key.sort().to_numpy()
    twice = np.unique(ranked[1:][ranked[1:] == ranked[:-1]])
    del ranked
    if not len(twice):
        return pl.Series(np.zeros(len(key), dtype=bool))
    return key.is_in(pl.Series(twice, dtype=key.dtype).implode())


def plan(keys: pl.DataFrame, spec: DedupSpec, signature_table: SignatureTable, sources: Sequence[str]) -> pl.DataFrame:
    """Global: the copies among every row of the key table (``COPIES``: where each is, and the
    surviving copy in ``detail``): exact copies in key order, then near copies in (source
    priority, id) order. ``sources``: the source names, by priority."""
    if not active(spec) or keys.is_empty():
        return pl.DataFrame(schema=COPIES)
    copies = [pl.DataFrame(schema=COPIES)]
    copy = np.zeros(keys.height, dtype=bool)
    if spec.exact:
        shared = shared_keys(keys, spec)
        ordered = mark_exact(keys.with_row_index("_i").filter(shared), spec)
        dups = ordered.filter("_dup")
        copy[dups.get_column("_i").to_numpy()] = True
        copies.append(_copies(dups, "exact", sources))
    if spec.near is not None:
        near = spec.near
        neardup.check_params(near.threshold, near.ngram, near.permutations, near.bands)
        rest = keys.filter(~pl.Series(copy)).sort(["_prio", "id"])
        for sub in ([rest] if spec.scope == "global" else rest.partition_by("_prio", maintain_order=True)):
            signed = sub.get_column("_sig").is_not_null().to_numpy()
            table = signature_table(sub.filter(pl.Series(signed)).select("_prio", "_chunk", "_sig"))
            cluster = neardup.clusters(signed, table, threshold=near.threshold, bands=near.bands)
            # rows are sorted by (priority, id), so each cluster's smallest index is its survivor
            dup = cluster != np.arange(len(cluster))
            hit = sub.filter(pl.Series(dup)).with_columns(_kept=sub.get_column("id").gather(cluster[dup]))
            copies.append(_copies(hit, "near", sources))
    return pl.concat(copies)


def _copies(frame: pl.DataFrame, how: str, sources: Sequence[str]) -> pl.DataFrame:
    names = pl.lit(pl.Series(list(sources), dtype=pl.String))
    return frame.select(*WHERE, source=names.gather(pl.col("_prio")), id="id",
                        detail=pl.lit(f"{how} duplicate of ") + pl.col("_kept"))


def drop(chunk: pl.DataFrame, copies: pl.DataFrame, prio: int, c: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Row-local: ``chunk`` without the copies ``plan`` found in it (by their row), and where
    each dropped row came from (``_prio, _chunk, _row, origin``: its input file:line)."""
    rows = copies.filter((pl.col("_prio") == prio) & (pl.col("_chunk") == c)).get_column("_row").to_numpy()
    if not len(rows):
        return chunk, pl.DataFrame(schema={**{k: COPIES[k] for k in WHERE}, "origin": pl.String})
    keep = np.ones(chunk.height, dtype=bool)
    keep[rows] = False
    origins = chunk[rows].select(_prio=pl.lit(prio, pl.UInt32), _chunk=pl.lit(c, pl.UInt32),
                                 _row=pl.Series(rows, dtype=pl.UInt32),
                                 origin=pl.col("meta").str.json_path_match("$.origin"))
    return chunk.filter(pl.Series(keep)), origins


def records(copies: pl.DataFrame, origins: list[pl.DataFrame]) -> pl.DataFrame:
    """The removed-row records (``REMOVED``) of the copies, in ``plan``'s order."""
    if copies.is_empty():
        return REMOVED.clear()
    where = pl.concat(origins)
    return (copies.join(where, on=WHERE, how="left", maintain_order="left")
            .select("source", "id", "origin", bucket=pl.lit("deduplicated"), detail="detail"))


def gather_signatures(rows: pl.DataFrame, chunk_table: Callable[[int, int], np.ndarray],
                      out: np.ndarray | None = None) -> np.ndarray:
    """The signatures of ``rows`` (``_prio, _chunk, _sig``) in their order, read one chunk's
    table at a time into ``out`` (a fresh array, or e.g. a memory map the caller made)."""
    width = None
    positions = rows.with_row_index("_at").partition_by(["_prio", "_chunk"], as_dict=True)
    for (prio, c), part in positions.items():
        table = chunk_table(int(prio), int(c))  # type: ignore[call-overload]
        if out is None:
            width = table.shape[1]
            out = np.empty((rows.height, width), dtype=np.uint32)
        out[part.get_column("_at").to_numpy()] = table[part.get_column("_sig").to_numpy()]
    if out is None:
        return np.empty((0, 0), dtype=np.uint32)
    return out


def removed_rows(frame: pl.DataFrame, bucket: str, detail: pl.Expr | pl.Series) -> pl.DataFrame:
    """Records of removed rows (``REMOVED`` schema): source, id, input file:line, bucket, why."""
    return frame.select("source", "id", pl.col("meta").str.json_path_match("$.origin").alias("origin"),
                        bucket=pl.lit(bucket), detail=detail)
