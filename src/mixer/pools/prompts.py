"""System-prompt pools: entries from built-in or user files, templates expanded with Faker.

A template with ``{slot}`` placeholders is rendered into ``variants`` concrete prompts once
per build, seeded from (seed, transform position, entry id, variant). Rows then draw an index
into this fixed bank, so sampling is a numpy gather and every distinct prompt string is
tokenized once.

Entries may carry a ``style`` and constraint ``tags`` (:mod:`mixer.pools.tags`); the bank
keeps each prompt's tags so ``system_prompt`` can match prompts to the answers they go with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixer import rng
from mixer.errors import RecipeError
from mixer.pools import builtin_records, tags as tags_mod, templates
from mixer.pools.loading import Entry, PoolSpec, Skips, cap, filter_records, parse_specs, read_entries

PROMPT_COLUMNS = ("system_prompt", "system", "prompt", "text", "content")


@dataclass(frozen=True)
class Selection:
    """Which entries of a pool to use by style and constraint tag (empty: no restriction).

    A tag pattern is a full tag (``format:json``) or a kind (``language``). ``styles`` leaves
    entries without a style (a plain ``.txt`` pool) alone: they are of no other style.
    """

    styles: tuple[str, ...] = ()
    exclude_styles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()

    def reason(self, style: str | None, entry_tags: tuple[str, ...]) -> str | None:
        """Why an entry is left out, or None when it is used."""
        if self.styles and style is not None and style not in self.styles:
            return f"style {style} not in styles"
        if style is not None and style in self.exclude_styles:
            return f"exclude_styles {style}"
        if self.tags and not any(tags_mod.matches(t, p) for t in entry_tags for p in self.tags):
            return "no tag in tags"
        hit = next((t for t in entry_tags for p in self.exclude_tags if tags_mod.matches(t, p)), None)
        return f"exclude_tags {hit}" if hit else None


@dataclass(frozen=True)
class PromptBank:
    """Concrete prompts to draw from: ids (for provenance), texts, sampling probabilities, and
    each prompt's constraint tags; ``report`` says, per pool component, how many entries were
    used and how many were skipped and why."""

    ids: list[str]
    texts: list[str]
    probs: np.ndarray
    tags: list[tuple[str, ...]] = field(default_factory=list)
    report: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def _entry_tags(raw: Any, where: str) -> tuple[str, ...]:
    """A record's ``tags``: a list of tags, or one comma-separated string (CSV files)."""
    if raw is None or raw == "":
        return ()
    items = [t.strip() for t in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise RecipeError(f"{where}: tags: expected a list of constraint tags, got {raw!r}")
    return tuple(tags_mod.check(t, f"{where}: tags") for t in items if t)


def builtin_entries() -> list[tuple[str, str]]:
    return [(f"builtin:{r['id']}", r["text"]) for r in builtin_records("system_prompts")]


def _entries(spec: PoolSpec, skips: Skips) -> list[Entry]:
    if spec.path is None:
        records = builtin_records("system_prompts")
        kept = filter_records(spec, ((f"builtin system_prompts {r['id']}", r) for r in records), skips)
        if not kept:
            raise RecipeError(f"pool builtin: include/exclude left no entries ({dict(skips)})")
        return [Entry(f"builtin:{r['id']}", r["text"], r) for r in kept]
    entries = read_entries(spec, columns=PROMPT_COLUMNS, skips=skips)
    bad = [e.ident for e in entries if not isinstance(e.value, str) or not e.value.strip()]
    if bad:
        raise RecipeError(f"{spec.path}: {len(bad)} pool entries are empty or not text (first: {bad[0]})")
    return entries


def _check_styles(select: Selection, known: set[str]) -> None:
    """A style named in ``styles`` or ``exclude_styles`` that no entry has is a typo: fail."""
    import difflib

    for option, names in (("styles", select.styles), ("exclude_styles", select.exclude_styles)):
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RecipeError(f"{option}: no pool entry has style {name!r}{hint}; "
                                  f"styles in these pools: {', '.join(sorted(known)) or 'none'}")


def load_bank(pool: Any, *, seed: int, position: int, locale: str = "en_US", variants: int = 16,
              base_dir: Path | None = None, select: Selection = Selection()) -> PromptBank:
    """Expand a ``pool`` option into a PromptBank.

    Entries over the component's ``max_chars`` (as written, before slots are filled), or left
    out by its ``include``/``exclude`` filters or by ``select``, are skipped and counted in
    ``report``. A component left with no entries is a recipe error.
    """
    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 1:
        raise RecipeError(f"variants: expected a whole number >= 1, got {variants!r}")
    specs = parse_specs(pool, "pool", base_dir, builtins=("builtin",))
    fake = templates.faker(locale, seed)
    loaded: list[tuple[PoolSpec, list[tuple[Entry, tuple[str, ...]]]]] = []
    report: dict[str, dict[str, Any]] = {}
    read = [(spec, _entries(spec, skips), skips) for spec in specs for skips in [Skips()]]
    _check_styles(select, {str(e.record["style"]) for _, entries, _ in read for e in entries if "style" in e.record})
    for spec, entries, skips in read:
        entries = cap(spec, entries, lambda e: len(e.value), skips)
        chosen = []
        for entry in entries:
            entry_tags = _entry_tags(entry.record.get("tags"), entry.ident)
            style = entry.record.get("style")
            why = select.reason(None if style is None else str(style), entry_tags)
            if why is None:
                chosen.append((entry, entry_tags))
            else:
                skips[why] += 1
        label = spec.name if spec.name not in report else f"{spec.name}#{len(report)}"
        report[label] = {"entries": len(chosen), "skipped": dict(sorted(skips.items()))}
        if not chosen:
            raise RecipeError(f"pool {spec.name}: no entries left ({', '.join(f'{k}: {v}' for k, v in skips.items())})")
        loaded.append((spec, chosen))
    ids: list[str] = []
    texts: list[str] = []
    probs: list[float] = []
    bank_tags: list[tuple[str, ...]] = []
    total_weight = sum(s.weight for s in specs)
    for spec, chosen in loaded:
        per_entry = spec.weight / total_weight / len(chosen)
        for entry, entry_tags in chosen:
            ident, text = entry.ident, entry.value
            if not templates.slots(text):
                ids.append(ident)
                texts.append(templates.fill(text, fake) if templates.escaped(text) else text)
                probs.append(per_entry)
                bank_tags.append(entry_tags)
                continue
            for k in range(variants):
                fake.seed_instance(int(rng.salt(seed, position, ident, k)))
                ids.append(f"{ident}~{k}")
                texts.append(templates.fill(text, fake))
                probs.append(per_entry / variants)
                bank_tags.append(entry_tags)
    p = np.asarray(probs, dtype=np.float64)
    return PromptBank(ids, texts, p / p.sum(), bank_tags, report)
