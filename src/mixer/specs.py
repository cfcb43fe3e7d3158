"""The recipe's concepts as plain dataclasses: a source, the cleaning steps' settings, and
the names every layer shares.

Kept apart from :mod:`mixer.recipe` (which validates them) and from the stages that use them
(:mod:`mixer.sources`, :mod:`mixer.dedup`, :mod:`mixer.decontaminate`, :mod:`mixer.tokens`)
so no stage imports recipe parsing and recipe parsing imports no stage's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HUB_PREFIX = "hf://"
TOKEN_BUDGETS = ("content", "assistant", "rendered")  # what a token budget counts: see mixer.tokens


@dataclass(frozen=True)
class NearDup:
    """MinHash-LSH near-duplicate settings: Jaccard threshold over word n-gram shingles."""

    threshold: float = 0.8
    ngram: int = 5
    permutations: int = 128
    bands: int = 32


@dataclass(frozen=True)
class DedupSpec:
    """The ``[dedup]`` table: exact dedup on by default, near dedup off."""

    key: str = "conversation"  # conversation | user | text (documents always use their text)
    scope: str = "global"  # global (across sources) | source (within each source)
    near: NearDup | None = None
    exact: bool = True


@dataclass(frozen=True)
class DecontaminateSpec:
    """The ``[decontaminate]`` table."""

    against: tuple[str, ...] = ()
    canaries: tuple[str, ...] = ()
    ngram: int = 13
    action: str = "drop"  # drop | tag


@dataclass(frozen=True)
class Source:
    """One input of the mixture and how much of it to take."""

    name: str
    path: str  # a resolved local path, or hf://owner/name for the Hub
    format: str = "auto"
    kind: str | None = None
    weight: float | None = None
    tokens: int | None = None
    examples: int | None = None
    max_epochs: float = 1.0
    side: str = "chosen"
    text_field: str = "text"
    prompt_field: str = "prompt"
    fields: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    data_dir: str | None = None
    revision: str | None = None
    config: str | None = None
    on_error: str = "fail"
    max_record_mb: float = 16.0
    transforms: tuple[dict[str, Any], ...] = ()

    @property
    def is_hub(self) -> bool:
        return self.path.startswith(HUB_PREFIX)

    @property
    def budget(self) -> tuple[str, float] | None:
        """The absolute budget as (unit, amount), or None for a weighted source."""
        if self.tokens is not None:
            return ("tokens", float(self.tokens))
        if self.examples is not None:
            return ("examples", float(self.examples))
        return None
