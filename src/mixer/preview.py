"""``mixer preview``: a source's rows before and after its transforms, readably."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from mixer import mix, transforms
from mixer.recipe import Recipe
from mixer.sources.read import read_source


def _short(text: str | None, width: int) -> str:
    if text is None:
        return "(none)"
    text = text.replace("\n", " ⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _tool_names(tools: list[str]) -> str:
    return ", ".join(json.loads(t)["function"]["name"] for t in tools) or "(none)"


def _row(before: dict, after: dict | None, width: int) -> list[str]:
    lines = [f"── {before['id']}  ({json.loads(before['meta']).get('origin', '')})"]
    if after is None:
        return lines + ["   removed by a filter transform"]
    notes = {k: v for k, v in json.loads(after["meta"]).items() if k.startswith("aug.")}
    lines.append(f"   applied: {json.dumps(notes, ensure_ascii=False) if notes else '(nothing)'}")
    for label, key in (("system", "system"), ("text", "text")):
        if before[key] != after[key]:
            lines.append(f"   {label} before: {_short(before[key], width)}")
            lines.append(f"   {label} after:  {_short(after[key], width)}")
        elif before[key] is not None:
            lines.append(f"   {label}: {_short(before[key], width)}")
    if before["tools"] != after["tools"]:
        lines.append(f"   tools before: {_tool_names(before['tools'])}")
        lines.append(f"   tools after:  {_tool_names(after['tools'])}")
    same = before["messages"] == after["messages"]
    lines.append("   turns (unchanged):" if same else "   turns after:")
    for m in after["messages"]:
        calls = f" [calls {', '.join(c['function']['name'] for c in json.loads(m['tool_calls']))}]" if m["tool_calls"] else ""
        lines.append(textwrap.indent(f"{m['role']}: {_short(m['content'], width)}{calls}", "     "))
    return lines


def render_preview(recipe: Recipe, source_name: str, count: int, width: int = 300) -> str:
    """Text showing ``count`` rows of a source (in selection order) before and after transforms."""
    src = recipe.source(source_name)
    frame, _ = read_source(src)
    sample = mix.ranked(frame, recipe.seed).head(count)
    base_dir = recipe.path.resolve().parent if recipe.path else Path.cwd()
    after, _ = transforms.apply(sample, src.transforms, seed=recipe.seed, source=src.name, base_dir=base_dir)
    by_id = {row["id"]: row for row in after.iter_rows(named=True)}
    lines = [f"source {src.name}: {frame.height:,} rows; transforms: "
             + (", ".join(t["type"] for t in src.transforms) or "(none)")]
    for row in sample.iter_rows(named=True):
        lines += _row(row, by_id.get(row["id"]), width)
    return "\n".join(lines)


__all__ = ["render_preview"]
