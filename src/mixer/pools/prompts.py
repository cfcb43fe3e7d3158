"""System-prompt pools: entries from built-in or user files, templates expanded with Faker.

A template with ``{slot}`` placeholders is rendered into ``variants`` concrete prompts once
per build, seeded from (seed, transform position, entry id, variant). Rows then draw an index
into this fixed bank, so sampling is a numpy gather and every distinct prompt string is
tokenized once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixer import rng
from mixer.errors import RecipeError
from mixer.pools import builtin_records, templates
from mixer.pools.loading import PoolSpec, parse_specs, read_entries

PROMPT_COLUMNS = ("system_prompt", "system", "prompt", "text", "content")


@dataclass(frozen=True)
class PromptBank:
    """Concrete prompts to draw from: ids (for provenance), texts, and sampling probabilities."""

    ids: list[str]
    texts: list[str]
    probs: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def builtin_entries() -> list[tuple[str, str]]:
    return [(f"builtin:{r['id']}", r["text"]) for r in builtin_records("system_prompts")]


def _entries(spec: PoolSpec) -> list[tuple[str, str]]:
    if spec.path is None:
        return builtin_entries()
    entries = read_entries(spec, columns=PROMPT_COLUMNS)
    bad = [ident for ident, value in entries if not isinstance(value, str) or not value.strip()]
    if bad:
        raise RecipeError(f"{spec.path}: {len(bad)} pool entries are empty or not text (first: {bad[0]})")
    return entries


def load_bank(pool: Any, *, seed: int, position: int, locale: str = "en_US", variants: int = 16,
              base_dir: Path | None = None) -> PromptBank:
    """Expand a ``pool`` option into a PromptBank."""
    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 1:
        raise RecipeError(f"variants: expected a whole number >= 1, got {variants!r}")
    specs = parse_specs(pool, "pool", base_dir, builtins=("builtin",))
    fake = templates.faker(locale, seed)
    ids: list[str] = []
    texts: list[str] = []
    probs: list[float] = []
    total_weight = sum(s.weight for s in specs)
    for spec in specs:
        entries = _entries(spec)
        per_entry = spec.weight / total_weight / len(entries)
        for ident, text in entries:
            if not templates.slots(text):
                ids.append(ident)
                texts.append(text)
                probs.append(per_entry)
                continue
            for k in range(variants):
                fake.seed_instance(int(rng.salt(seed, position, ident, k)))
                ids.append(f"{ident}~{k}")
                texts.append(templates.fill(text, fake))
                probs.append(per_entry / variants)
    p = np.asarray(probs, dtype=np.float64)
    return PromptBank(ids, texts, p / p.sum())
