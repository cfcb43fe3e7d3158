"""Budgets, selection and order: turn a recipe's weights into the rows of the mixture.

Global steps are few and explicit: per-source targets (``allocate``), a per-source ranked
prefix (``select``) and the final ``shuffle``. Everything else is row-local.

Selection ranks a source's rows by a seeded stable hash of their content and takes a
prefix, so a smaller budget is a subset of a larger one, and a source's rows do not depend
on which other sources exist. Upsampling takes whole repeats plus a ranked remainder;
repeat ``r`` of a row gets the id suffix ``#r`` so it stays unique and transforms can give
it fresh draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from mixer import rng, schema
from mixer.errors import DataError
from mixer.recipe import Recipe, Source

_EPS = 1e-9


@dataclass(frozen=True)
class Allocation:
    """One source's target and what selection realized, in the source's and the mixture's unit."""

    source: str
    unit: str  # the unit the source is selected in (an absolute budget may differ from the recipe's)
    target: float  # in ``unit``
    target_share: float  # of the mixture total, in the recipe unit
    available_rows: int
    available_tokens: int
    max_epochs: float
    selected_rows: int
    selected_tokens: int
    rebalanced: bool = False

    @property
    def epochs(self) -> float:
        """How many times over the source's available data the selection goes (repeat factor)."""
        avail = self.available_tokens if self.unit == "tokens" else self.available_rows
        got = self.selected_tokens if self.unit == "tokens" else self.selected_rows
        return got / avail if avail else 0.0


def amount(frame: pl.DataFrame, unit: str) -> float:
    """Size of ``frame`` in ``unit``."""
    return float(frame.get_column("n_tokens").sum()) if unit == "tokens" else float(frame.height)


def ranked(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``frame`` in selection order: by a seeded hash of each row's content key."""
    if frame.is_empty():
        return frame
    return _gather(frame, _rank(frame, seed))


def _rank(frame: pl.DataFrame, seed: int) -> np.ndarray:
    """The indices of ``frame``'s rows in selection order (:func:`ranked` without the gather)."""
    ids = frame.get_column("id")
    return _by_draw(rng.draw(rng.row_keys(ids), rng.salt(seed, "select")), ids)


Resize = Callable[[pl.DataFrame, int], np.ndarray]
"""``resize(rows, r)``: token counts of repeat ``r`` of ``rows`` (ids without ``#r``), re-augmented
as they will be written, aligned with ``rows``. Given for sources whose transforms draw afresh
for each repeat, so a token target holds for what is written, not for the first copies."""


def select(frame: pl.DataFrame, unit: str, target: float, seed: int, resize: Resize | None = None) -> pl.DataFrame:
    """Take ``target`` (rows or tokens) from ``frame``: whole repeats, then a ranked prefix.

    The rows are walked in rank order, once per repeat, and the prefix whose size is closest to
    the target is taken, so a token target is met within one row. With ``resize``, repeat
    ``r >= 1`` is sized by its own re-augmented token counts (and its ``n_tokens`` is set to them).
    """
    if target <= 0 or frame.is_empty():
        return frame.clear()
    rank = _rank(frame, seed)
    first = frame.get_column("n_tokens").to_numpy()[rank].astype(np.float64) if unit == "tokens" \
        else np.ones(frame.height)
    if first.sum() <= 0:
        return frame.clear()
    ordered: list[pl.DataFrame] = []  # the rows in rank order, gathered only for a resize

    def in_rank() -> pl.DataFrame:
        if not ordered:
            ordered.append(_gather(frame, rank))
        return ordered[0]

    copies: list[pl.DataFrame] = []
    taken, r = 0.0, 0
    while True:
        if r > 0 and target - taken <= _EPS:  # taken whole: no repeat to size (a resize re-augments every row)
            break
        if r == 0 or resize is None or unit != "tokens":
            sizes, counts = first, None
        else:
            counts = resize(in_rank(), r)
            sizes = counts.astype(np.float64)
        rest = target - taken
        total = sizes.sum()
        if total > 0 and rest >= total - _EPS:
            # a whole copy: the rows as they are (the order of selected rows is the final order's
            # business), no copy of the table; re-sized counts go with the rows in rank order
            copies.append(_repeat(frame, r) if counts is None else _repeat(in_rank(), r, counts))
            taken += total
            r += 1
            continue
        cum = np.concatenate(([0.0], np.cumsum(sizes)))  # cum[m] = size of the first m rows
        m = min(int(np.searchsorted(cum, rest - _EPS, side="left")), len(sizes))
        if m > 0 and abs(cum[m - 1] - rest) <= abs(cum[m] - rest):
            m -= 1  # one row fewer is at least as close to the remainder
        if m:
            copies.append(_repeat(frame[rank[:m]], r, None if counts is None else counts[:m]))
        break
    return pl.concat(copies) if copies else frame.clear()


def _repeat(frame: pl.DataFrame, r: int, counts: np.ndarray | None = None) -> pl.DataFrame:
    if r == 0:
        return frame
    out = frame.with_columns(pl.col("id") + f"#{r}")
    return out if counts is None else out.with_columns(n_tokens=pl.Series(counts, dtype=pl.UInt32))


def allocate(recipe: Recipe, frames: dict[str, pl.DataFrame], resize: dict[str, Resize] | None = None,
             losses: dict[str, dict[str, int]] | None = None) -> tuple[dict[str, pl.DataFrame], list[Allocation]]:
    """Per-source targets and selections for the train split, failing before anything is written
    when a target cannot be met under the ``max_epochs`` caps (unless ``rebalance = true``).

    ``resize`` sizes re-augmented repeats per source (see :data:`Resize`); caps are checked on
    the first copies. ``losses`` (per source: rows read, and rows each cleaning step removed)
    lets a shortfall say where the rows went."""
    resize = resize or {}
    losses = losses or {}
    unit = recipe.unit
    chosen: dict[str, pl.DataFrame] = {}
    plans: dict[str, tuple[str, float, float, bool]] = {}  # name -> (unit, target, share, rebalanced)

    absolute = [s for s in recipe.sources if s.budget is not None]
    weighted = [s for s in recipe.sources if s.budget is None]
    short = []
    for src in absolute:
        src_unit, want = src.budget  # type: ignore[misc]
        cap = src.max_epochs * amount(frames[src.name], src_unit)
        if want > cap + _EPS:
            short.append(_shortfall(src, src_unit, want, frames[src.name], None, losses.get(src.name)))
        plans[src.name] = (src_unit, want, 0.0, False)
    if short:
        raise DataError("cannot meet absolute budgets:\n" + "\n".join(short))
    for src in absolute:
        src_unit, want, _, _ = plans[src.name]
        chosen[src.name] = select(frames[src.name], src_unit, want, recipe.seed, resize.get(src.name))
    used = sum(amount(chosen[s.name], unit) for s in absolute)

    if weighted:
        assert recipe.total is not None  # the recipe validator guarantees it
        remaining = recipe.total - used
        if remaining < -_EPS:
            raise DataError(f"absolute budgets already take {used:,.0f} {unit}, more than total = "
                            f"{recipe.total:,.0f}; raise total or lower the tokens/examples budgets")
        targets, rebalanced = _weighted_targets(recipe, weighted, frames, max(remaining, 0.0), losses)
        for src in weighted:
            plans[src.name] = (unit, targets[src.name], 0.0, src.name in rebalanced)
            chosen[src.name] = select(frames[src.name], unit, targets[src.name], recipe.seed, resize.get(src.name))

    total = recipe.total if recipe.total else sum(amount(f, unit) for f in chosen.values())
    allocations = []
    for src in recipe.sources:
        src_unit, want, _, was_rebalanced = plans[src.name]
        want_in_unit = want if src_unit == unit else amount(chosen[src.name], unit)
        frame, got = frames[src.name], chosen[src.name]
        allocations.append(Allocation(
            source=src.name, unit=src_unit, target=want,
            target_share=want_in_unit / total if total else 0.0,
            available_rows=frame.height, available_tokens=int(amount(frame, "tokens")),
            max_epochs=src.max_epochs, selected_rows=got.height,
            selected_tokens=int(amount(got, "tokens")), rebalanced=was_rebalanced,
        ))
    return chosen, allocations


VALIDATION_RULE = ("each source's held-out rows (a seeded hash of the content, before upsampling) are never "
                   "trained on; the validation split takes from them validation/(1 - validation) of what the "
                   "source contributes to train, in the recipe's unit, at least one row when the source has "
                   "held-out rows and is selected, never repeated; the rest are held out and not written")


def select_validation(chosen: dict[str, pl.DataFrame], held: dict[str, pl.DataFrame],
                      recipe: Recipe) -> dict[str, pl.DataFrame]:
    """Each source's validation rows, by :data:`VALIDATION_RULE`: the source's share of the
    mixture carries over to validation, so the validation loss measures the same mixture.

    Budgeted on the train selection as selected (before repeats are re-augmented).
    """
    v = recipe.validation
    picked = {}
    for name in held:
        target = min(amount(chosen[name], recipe.unit) * v / (1 - v), amount(held[name], recipe.unit))
        rows = select(held[name], recipe.unit, target, recipe.seed)
        if rows.is_empty() and held[name].height and chosen[name].height:
            rows = ranked(held[name], recipe.seed).head(1)  # a selected source is never absent from validation
        picked[name] = rows
    return picked


def _weighted_targets(recipe: Recipe, weighted: list[Source], frames: dict[str, pl.DataFrame],
                      remaining: float, losses: dict[str, dict[str, int]]) -> tuple[dict[str, float], set[str]]:
    unit = recipe.unit
    avail = {s.name: amount(frames[s.name], unit) for s in weighted}
    raw = {}
    for s in weighted:
        w = 1.0 if s.weight is None else s.weight
        raw[s.name] = w * (avail[s.name] ** (1.0 / recipe.temperature) if recipe.temperature else 1.0)
    norm = sum(raw.values())
    if norm <= 0:
        raise DataError("every weighted source has zero weight or no data; nothing to take shares of")
    share = {name: value / norm for name, value in raw.items()}
    targets = {name: share[name] * remaining for name in share}
    caps = {s.name: s.max_epochs * avail[s.name] for s in weighted}
    over = [s for s in weighted if targets[s.name] > caps[s.name] + max(_EPS, 1e-9 * caps[s.name])]
    if not over:
        return targets, set()
    if not recipe.rebalance:
        lines = [_shortfall(s, unit, targets[s.name], frames[s.name], share[s.name], losses.get(s.name))
                 for s in over]
        raise DataError(
            "cannot meet the mixture's targets under the max_epochs caps:\n" + "\n".join(lines)
            + "\nLower those weights, raise their max_epochs, lower total, or set rebalance = true "
              "to spread the shortfall over the other sources"
        )
    # Water-filling: fix capped sources at their cap, share the rest among the others.
    capped: set[str] = set()
    while True:
        free = [s.name for s in weighted if s.name not in capped]
        left = remaining - sum(caps[n] for n in capped)
        free_norm = sum(share[n] for n in free)
        for n in capped:
            targets[n] = caps[n]
        for n in free:
            targets[n] = share[n] / free_norm * left if free_norm > 0 else 0.0
        newly = {n for n in free if targets[n] > caps[n] + _EPS}
        if not newly:
            break
        capped |= newly
        if len(capped) == len(weighted):
            can = sum(caps.values())
            raise DataError(f"even with rebalance = true the sources hold at most {can:,.0f} {unit} "
                            f"under their max_epochs caps, short of the {remaining:,.0f} {unit} needed; "
                            "lower total or raise max_epochs")
    return targets, capped


def _shortfall(src: Source, unit: str, want: float, frame: pl.DataFrame, share: float | None = None,
               lost: dict[str, int] | None = None) -> str:
    have = amount(frame, unit)
    shared = f" (share {share:.1%})" if share is not None else ""
    line = (f"  source {src.name!r} needs {want:,.0f} {unit}{shared} but has {have:,.0f} available; "
            f"max_epochs = {src.max_epochs:g} allows at most {src.max_epochs * have:,.0f}")
    removed = {k: v for k, v in (lost or {}).items() if k != "read" and v}
    if removed:
        parts = ", ".join(f"{n:,} {why}" for why, n in removed.items())
        line += (f"\n    of its {lost['read']:,} rows read, {sum(removed.values()):,} were removed before "
                 f"selection: {parts} (see removed.jsonl and the manifest's accounting)")
    return line


def order(ids: pl.Series, seed: int) -> np.ndarray:
    """Indices of ``ids`` in the final order: by a seeded hash of (content key, repeat), then id."""
    if ids.is_empty():
        return np.zeros(0, dtype=np.int64)
    return _by_draw(rng.draw(rng.row_keys(ids), rng.salt(seed, "order"), rng.repeat_index(ids)), ids)


def _by_draw(draws: np.ndarray, ids: pl.Series) -> np.ndarray:
    """Indices sorting rows by draw, ties (identical content in two sources) by id.

    The draws alone are sorted, by NumPy (0.5 s and 80 MB for 10M rows; a sort of every row by
    (draw, id) encoded each id too: about 0.4 GB more at the order's peak); only rows whose draw
    repeats are sorted again, by (draw, id, position), which also makes the first sort's
    instability harmless. UTF-8 byte order is code point order, so ties come out as ``sorted``
    orders them; ids never become Python strings.
    """
    order = np.argsort(draws)
    ranked = draws[order]
    tie = ranked[1:] == ranked[:-1]
    del ranked
    if tie.any():
        runs = np.zeros(len(order), dtype=bool)  # the rows of each run of equal draws
        runs[1:] |= tie
        runs[:-1] |= tie
        at = np.flatnonzero(runs)  # ascending: each run keeps its slots, sorted inside
        tied = pl.DataFrame({"d": draws[order[at]], "id": ids.gather(order[at]), "i": order[at]})
        order[at] = tied.sort(["d", "id", "i"]).get_column("i").to_numpy()
    return order


def shuffle(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The final order of the mixture's rows, independent of thread count and source order."""
    if frame.is_empty():
        return frame
    return schema.check(_gather(frame, order(frame.get_column("id"), seed)), "shuffle")


def _gather(frame: pl.DataFrame, indices: np.ndarray) -> pl.DataFrame:
    """Rows of ``frame`` in the order of ``indices``; contiguous first (concatenated sources
    are chunked, and a random gather over chunked nested columns is ten times slower)."""
    return frame.rechunk()[indices]
