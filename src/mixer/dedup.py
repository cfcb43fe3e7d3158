"""Deduplication across the mixture's sources, before any augmentation.

Exact: rows whose key text (see :func:`mixer.text.row_text`) has the same token sequence
after normalization (NFKC, case, whitespace). Near
(optional): MinHash-LSH clusters of word shingles (:mod:`mixer.neardup`). In both, the copy
that survives is deterministic: the source listed first in the recipe, then the smallest id.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mixer.specs import DedupSpec
from mixer.text import row_text, sequence_keys


def content_keys(frame: pl.DataFrame, key: str) -> pl.Series:
    """The exact-dedup key of each row (``_key``): a hash of its normalized token sequence."""
    text = frame.select(row_text(frame, key)).to_series()
    return pl.Series("_key", sequence_keys(text))


def mark_exact(keyed: pl.DataFrame, spec: DedupSpec) -> pl.DataFrame:
    """Sort rows with ``id, _prio, _key`` columns into survivor order and mark exact copies.

    Adds ``_dup`` (a later copy) and ``_kept`` (the surviving copy's id). Needs only the keys,
    so a streaming build runs it on a small table of every row.
    """
    group = ["_prio"] if spec.scope == "source" else []
    ordered = keyed.sort([*group, "_key", "_prio", "id"])
    first = ordered.select(pl.struct([*group, "_key"]).is_first_distinct()).to_series()
    if not spec.exact:
        first = pl.Series(np.ones(ordered.height, dtype=bool))
    return ordered.with_columns(
        _dup=~first,
        _kept=pl.when(first).then(pl.col("id")).otherwise(None).forward_fill(),
    )


def deduplicate(frames: dict[str, pl.DataFrame], spec: DedupSpec) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Remove duplicates; ``frames`` is ordered by recipe priority (first listed wins).

    Returns the kept rows per source and a frame of removed rows: ``source, id, bucket,
    detail`` (detail names the surviving copy).
    """
    if not spec.exact and spec.near is None or not frames or all(f.is_empty() for f in frames.values()):
        return frames, REMOVED.clear()
    allrows = pl.concat([
        f.select("id", "source", "kind", "system", "messages", "text", "meta").with_columns(_prio=pl.lit(i, dtype=pl.UInt32))
        for i, f in enumerate(frames.values())
    ])
    text = allrows.select(row_text(allrows, spec.key)).to_series()
    allrows = allrows.with_columns(_key=pl.Series(sequence_keys(text)), _text=text).with_row_index("_i")
    ordered = mark_exact(allrows.select("_i", "id", "source", "meta", "_prio", "_key", "_text"), spec)
    drop = np.zeros(allrows.height, dtype=bool)
    drop[ordered.filter("_dup").get_column("_i").to_numpy()] = True
    removed = [removed_rows(ordered.filter("_dup"), "deduplicated", pl.lit("exact duplicate of ") + pl.col("_kept"))]

    if spec.near is not None:
        from mixer.neardup import near_duplicate_clusters

        rest = ordered.filter(~pl.col("_dup")).sort(["_prio", "id"])
        for sub in ([rest] if spec.scope == "global" else rest.partition_by("_prio", maintain_order=True)):
            cluster = near_duplicate_clusters(
                sub.get_column("_text"), threshold=spec.near.threshold, ngram=spec.near.ngram,
                permutations=spec.near.permutations, bands=spec.near.bands)
            # rows are sorted by (priority, id), so each cluster's smallest index is its survivor
            dup = cluster != np.arange(len(cluster))
            hit = sub.filter(pl.Series(dup)).with_columns(_kept=sub.get_column("id").gather(cluster[dup]))
            drop[hit.get_column("_i").to_numpy()] = True
            removed.append(removed_rows(hit, "deduplicated", pl.lit("near duplicate of ") + pl.col("_kept")))

    out, start = {}, 0
    for name, frame in frames.items():
        out[name] = frame.filter(pl.Series(~drop[start : start + frame.height]))
        start += frame.height
    return out, pl.concat(removed)


REMOVED = pl.DataFrame(schema={"source": pl.String, "id": pl.String, "origin": pl.String, "bucket": pl.String,
                               "detail": pl.String})


def removed_rows(frame: pl.DataFrame, bucket: str, detail: pl.Expr | pl.Series) -> pl.DataFrame:
    """Records of removed rows (``REMOVED`` schema): source, id, input file:line, bucket, why."""
    return frame.select("source", "id", pl.col("meta").str.json_path_match("$.origin").alias("origin"),
                        bucket=pl.lit(bucket), detail=detail)
