"""Decontamination: flag training rows that overlap an evaluation set.

A row is flagged when it shares a word n-gram (default 13 words, after NFKC, lower case) with
any string in the evaluation files, or contains a canary string. Evaluation files are read
with the same readers as sources, in any supported format; every string value in a record
(at any depth) counts as evaluation text, so templates, rendered prompts and chat sets all work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mixer.errors import DataError
from mixer.specs import DecontaminateSpec, Source
from mixer.sources.files import InputFile, Unreadable, read
from mixer.dedup import REMOVED, removed_rows
from mixer.text import ngram_hashes, row_text
from mixer.schema import note

_SEED = 7  # n-gram hashes are compared only within one run; any fixed seed works


@dataclass
class EvalIndex:
    """The evaluation n-grams (sorted hashes) and where they came from."""

    hashes: np.ndarray
    inputs: list[InputFile] = field(default_factory=list)
    texts: int = 0


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def build_index(spec: DecontaminateSpec) -> EvalIndex:
    """Read every evaluation file and hash its n-grams once."""
    texts: list[str] = []
    inputs: list[InputFile] = []
    for i, path in enumerate(spec.against):
        files, records = read(Source(name=f"decontaminate.against[{i}]", path=path))
        inputs += files
        for item in records:
            if isinstance(item.record, Unreadable):
                raise DataError(f"{item.file}:{item.line} (evaluation set {path}): {item.record.message}")
            texts += _strings(item.record)
    _, hashes = ngram_hashes(pl.Series(texts, dtype=pl.String), spec.ngram, seed=_SEED)
    return EvalIndex(np.unique(hashes), inputs, len(texts))


def flag(frame: pl.DataFrame, index: EvalIndex, spec: DecontaminateSpec) -> tuple[np.ndarray, pl.Series]:
    """Per row: contaminated or not, and why (``ngram`` / ``canary``)."""
    n = frame.height
    hit = np.zeros(n, dtype=bool)
    if n == 0:
        return hit, pl.Series([], dtype=pl.String)
    text = frame.select(row_text(frame, "conversation")).to_series()
    if len(index.hashes):
        rows, hashes = ngram_hashes(text, spec.ngram, seed=_SEED)
        found = pl.Series(hashes).is_in(pl.Series(index.hashes).implode()).to_numpy()
        hit[rows[found]] = True
    canary = np.zeros(n, dtype=bool)
    if spec.canaries:
        canary = text.str.contains_any(list(spec.canaries), ascii_case_insensitive=True).to_numpy()
    why = pl.select(
        pl.when(pl.Series(canary)).then(pl.lit("canary"))
        .when(pl.Series(hit)).then(pl.lit(f"shares a {spec.ngram}-gram with the evaluation set"))
        .otherwise(None)
    ).to_series()
    return hit | canary, why


def decontaminate(frames: dict[str, pl.DataFrame], spec: DecontaminateSpec,
                  index: EvalIndex) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, dict[str, int]]:
    """Drop (or tag in meta) flagged rows; returns frames, removed rows and flagged counts."""
    out: dict[str, pl.DataFrame] = {}
    removed = []
    counts: dict[str, int] = {}
    for name, frame in frames.items():
        flagged, why = flag(frame, index, spec)
        counts[name] = int(flagged.sum())
        if spec.action == "tag":
            out[name] = note(frame, flagged, "contaminated", pl.lit('"') + why.fill_null("") + pl.lit('"'))
            continue
        mask = pl.Series(flagged)
        removed.append(removed_rows(frame.filter(mask), "decontaminated", why.filter(mask)))
        out[name] = frame.filter(~mask)
    return out, (pl.concat(removed) if removed else REMOVED.clear()), counts
