"""Settings of the mixture-wide cleaning steps, as the recipe declares them.

Kept apart from :mod:`mixer.recipe` (which validates them) and from :mod:`mixer.dedup` /
:mod:`mixer.decontaminate` (which apply them) so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass


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
