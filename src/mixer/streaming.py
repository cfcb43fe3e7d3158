"""Build a mixture larger than memory: the same build (:mod:`mixer.engine`), chunk by chunk.

Rows pass through a spill folder inside the output's staging folder (see
:class:`mixer.executors.LocalStreaming`). Peak memory is about one chunk plus one output shard
plus roughly 100 bytes per input row (and ``4 x permutations`` bytes per row of near-dedup
signatures, in a memory-mapped file the operating system pages), so the chunk size, not the
source size, sets it. The rows, their order, the files and the manifest are the same as
``pipeline.build(...).write(...)`` gives (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixer import recipe as recipe_mod
from mixer.executors import CHUNK_ROWS
from mixer.errors import RecipeError
from mixer.mixture import Log, no_log
from mixer.pipeline import build_and_write, log_progress
from mixer.recipe import Recipe


def build_streaming(recipe: str | Path | Recipe, out: str | Path | None = None, *, force: bool = False,
                    chunk_rows: int = CHUNK_ROWS, dry_run: bool = False,
                    log: Log = no_log) -> tuple[Path, dict[str, Any]]:
    """Build and write the mixture a recipe describes, holding one chunk of rows at a time.

    Returns the output folder and the manifest. With ``dry_run`` everything but the final
    files is done (in a temporary folder) and nothing is written.
    """
    if not isinstance(recipe, Recipe):
        recipe = recipe_mod.load(recipe)
    if chunk_rows < 1:
        raise RecipeError(f"chunk_rows must be at least 1, got {chunk_rows}")
    out_dir = Path(out).expanduser().resolve() if out else recipe.output.dir
    _, manifest = build_and_write(recipe, out_dir, executor="stream", chunk_rows=chunk_rows, force=force,
                                  dry_run=dry_run, progress=log_progress(log))
    return out_dir, manifest
