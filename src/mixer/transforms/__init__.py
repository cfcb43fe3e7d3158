"""Transforms: pure, row-local functions ``DataFrame -> DataFrame`` on canonical rows.

Recipes name them in ``[[sources.NAME.transforms]]`` tables (``type = "..."`` plus options);
library users call them directly, e.g.::

    mixer.transforms.tools(df, catalog="builtin", p=0.5, count=(1, 5), seed=0)

or prepare a source's whole list once and apply it to each chunk::

    prepared = mixer.transforms.prepare(specs, seed=0, source="hh", base_dir=recipe_dir)
    frame, steps = prepared.apply(chunk)

**The contract.** Every transform has two halves.

- *prepare* (``prepare_<name>(**options, seed, position, base_dir)``), run once per build and
  by ``mixer validate``: check every option value, resolve and load pools, catalogs and
  request banks (a missing file or a wrong column fails here, before any data is read),
  and build the indexes apply needs (the tool guard's stem index, the filled prompt bank).
  It reads no rows.
- *apply* (``prepared.apply(frame)``), run per chunk, is **row-local**: a row's output
  (whether it is kept, and its values) depends only on that row, the seed and the prepared
  state, never on the other rows of the chunk, the chunk's size or its position in the
  source. Randomness comes only from :mod:`mixer.rng` keyed by (seed, transform position,
  purpose) and the row's content key and repeat index (:class:`rows.Draws`). So splitting a
  source into chunks anywhere, in any executor, gives the same rows as one frame
  (``tests/test_transforms.py::test_every_transform_is_row_local_across_random_chunk_splits``
  checks every registered transform). A stage that needs other rows is a global step of the
  build, not a transform.

A LazyFrame in gives a LazyFrame out.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import pkgutil
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from mixer import schema
from mixer.errors import RecipeError
from mixer.transforms.rows import cores, shared_keys

Transform = Callable[..., pl.DataFrame]


class Applier(Protocol):
    """What a prepare step returns: row-local ``apply`` and ``info`` for the manifest
    (pool entries used and skipped, by reason)."""

    @property
    def info(self) -> dict[str, Any]: ...

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame: ...


Preparer = Callable[..., Applier]



def _discover() -> dict[str, Preparer]:
    """Every ``TRANSFORMS`` table declared by a module of this package: adding a transform is
    adding a module (with its prepare step and that table) and its test, nothing else."""
    found: dict[str, Preparer] = {}
    for info in pkgutil.iter_modules(__path__):
        declared = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TRANSFORMS", {})
        for name, prepare_fn in declared.items():
            if name in found:
                raise RuntimeError(f"transform {name!r} is declared by two modules of mixer.transforms")
            found[name] = prepare_fn
    return dict(sorted(found.items()))


#: recipe name -> prepare step. The one registry: options are the prepare step's parameters.
REGISTRY: dict[str, Preparer] = _discover()
_CONTEXT = {"seed", "position", "base_dir", "encoding"}


def _one_shot(prepare_fn: Preparer) -> Transform:
    """The library form ``fn(frame, **options)``: prepare, then apply (a LazyFrame in gives one out)."""

    @functools.wraps(prepare_fn)
    def run(frame: pl.DataFrame | pl.LazyFrame, **options: Any) -> Any:
        if isinstance(frame, pl.LazyFrame):
            return prepare_fn(**options).apply(frame.collect()).lazy()
        return prepare_fn(**options).apply(frame)

    return run


# The library form of every transform under its recipe name: ``mixer.transforms.tools(df, ...)``.
# (``filter`` shadows the builtin inside this package's namespace only.)
globals().update({name: _one_shot(prepare_fn) for name, prepare_fn in REGISTRY.items()})


@dataclass(frozen=True)
class Step:
    """What one transform did to one source's rows, for the manifest."""

    position: int
    type: str
    rows_in: int
    rows_out: int
    augmented: int

    @staticmethod
    def total(parts: tuple[Step, ...]) -> Step:
        """One step's counts summed over the parts of a frame it ran on."""
        return Step(parts[0].position, parts[0].type, sum(p.rows_in for p in parts), sum(p.rows_out for p in parts),
                    sum(p.augmented for p in parts))

    @property
    def label(self) -> str:
        return f"{self.position}:{self.type}"


def options(name: str) -> list[str]:
    """The recipe options of transform ``name``."""
    return [p for p in inspect.signature(REGISTRY[name]).parameters if p not in _CONTEXT and not p.startswith("_")]


def check_specs(specs: tuple[dict[str, Any], ...], source: str) -> None:
    """Fail on unknown transform types or option names (no values checked, nothing loaded)."""
    for position, spec in enumerate(specs):
        where = f"sources.{source}.transforms[{position}]"
        name = spec.get("type")
        if name not in REGISTRY:
            close = difflib.get_close_matches(str(name), list(REGISTRY), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(REGISTRY))})"
            raise RecipeError(f"{where}.type: unknown transform {name!r}{hint}")
        allowed = options(name)
        for key in spec:
            if key != "type" and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (options: {', '.join(allowed)})"
                raise RecipeError(f"{where}.{key}: unknown option for {name}{hint}")


@dataclass(frozen=True)
class PreparedStep:
    position: int
    type: str
    applier: Applier


@dataclass(frozen=True)
class Prepared:
    """A source's transforms, prepared once; :meth:`apply` runs them on one chunk."""

    source: str
    steps: tuple[PreparedStep, ...]

    @property
    def info(self) -> dict[str, dict[str, Any]]:
        """Per step (``"0:system_prompt"``), what preparation found: pool entries used and
        skipped by reason (``max_chars``, ``include``/``exclude``, styles, tags)."""
        return {f"{s.position}:{s.type}": s.applier.info for s in self.steps}

    def apply(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Step]]:
        """Run the transforms in recipe order on ``frame``; return it and what each step did.

        A large frame is cut into one part per core, each run through the whole chain in its
        own thread (transforms are row-local, so the rows are the same as one pass: much of a
        step is single-threaded string work, and Polars and numpy release the GIL)."""
        bounds = _parts(frame.height)
        if len(bounds) == 1:
            return self._chain(frame)
        with ThreadPoolExecutor(max_workers=len(bounds)) as pool:
            done = list(pool.map(lambda b: self._chain(frame.slice(b[0], b[1] - b[0])), bounds))
        frames, steps = zip(*done)
        return pl.concat(frames, rechunk=False), [Step.total(same) for same in zip(*steps)]

    def _chain(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Step]]:
        steps = []
        with shared_keys():  # steps that keep the ids parse them once
            for step in self.steps:
                before = frame.height
                try:
                    frame = step.applier.apply(frame)
                except RecipeError as exc:
                    raise RecipeError(f"sources.{self.source}.transforms[{step.position}] ({step.type}): {exc}") from None
                schema.check(frame, f"transform {step.type!r} of source {self.source!r}")
                augmented = int(frame.get_column("meta").str.contains(f'"aug.{step.position}.', literal=True).sum())
                steps.append(Step(step.position, step.type, before, frame.height, augmented))
        return frame, steps


PART_ROWS = 50_000  # below twice this, a frame's transforms run in one thread (parts cost a little each)


def _parts(height: int) -> list[tuple[int, int]]:
    """Row bounds of the parts :meth:`Prepared.apply` runs on threads: one per core, at least
    ``PART_ROWS`` rows each."""
    n = max(1, min(cores(), height // PART_ROWS))
    cuts = [height * i // n for i in range(n + 1)]
    return list(zip(cuts, cuts[1:]))


def prepare(specs: tuple[dict[str, Any], ...], *, seed: int, source: str, base_dir: Path | None = None,
            encoding: Any = None) -> Prepared:
    """Check a source's transform specs and prepare each one (see the contract above).

    Every recipe error a build would meet in its transforms is raised here, naming
    ``sources.NAME.transforms[i] (type)``, before any data is read.
    """
    check_specs(specs, source)
    steps = []
    for position, spec in enumerate(specs):
        name = spec["type"]
        prepare_fn = REGISTRY[name]
        context: dict[str, Any] = {"seed": seed, "position": position, "base_dir": base_dir}
        if "encoding" in inspect.signature(prepare_fn).parameters:
            context["encoding"] = encoding
        given = {k: v for k, v in spec.items() if k != "type"}
        try:
            applier = prepare_fn(**context, **given)
        except RecipeError as exc:
            raise RecipeError(f"sources.{source}.transforms[{position}] ({name}): {exc}") from None
        steps.append(PreparedStep(position, name, applier))
    return Prepared(source, tuple(steps))


def apply(frame: pl.DataFrame, specs: tuple[dict[str, Any], ...], *, seed: int, source: str,
          base_dir: Path | None = None, encoding: Any = None) -> tuple[pl.DataFrame, list[Step]]:
    """Prepare a source's transforms and run them on ``frame`` (one-off use: a build that
    applies them to many chunks should :func:`prepare` once and call ``.apply`` per chunk)."""
    return prepare(specs, seed=seed, source=source, base_dir=base_dir, encoding=encoding).apply(frame)
