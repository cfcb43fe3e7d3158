"""``report.html``: a mixture as pictures, written from an output folder alone.

    from mixer.report import write_report
    write_report(Path("out/quickstart"))      # -> out/quickstart/report.html

It reads only ``manifest.json`` and the data files that manifest lists, never the build's
internals, so it works for any folder mixer wrote (a mixture, a conversion, or a staged
build's top folder: one part per stage) and can be re-run with ``mixer report OUT``.
The page is one file with inline CSS and SVG charts, no script and no fetches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixer.errors import OutputError
from mixer.report import charts, data, sections
from mixer.report.blocks import Chart, Note, Section, Table, esc, num, pct, text
from mixer.report.page import Page, Part, render

REPORT_NAME = "report.html"

__all__ = ["REPORT_NAME", "render_report", "share_matrix", "sweep_section", "write_report"]


def _subtitle(m: dict[str, Any]) -> str:
    """What was built, never where: the page is the same whether written in the build's staging
    folder or in the final one."""
    bits = []
    if m.get("sources"):
        bits += [data.output_format(m), f"unit: {m.get('unit')}", f"seed {m.get('seed')}"]
    if isinstance(m.get("recipe"), dict) and m["recipe"].get("path"):
        bits.append(f"recipe {m['recipe']['path']}")
    return " · ".join(bits)


def _stage_table(index: dict[str, Any]) -> Section:
    rows = []
    for name, entry in index["mixtures"].items():
        totals = entry.get("totals") or {}
        rows.append([text(name), text(entry.get("format")),
                     num((totals.get("train") or {}).get("rows"), f"mixtures/{esc(name)}/totals/train/rows"),
                     num((totals.get("train") or {}).get("tokens"), f"mixtures/{esc(name)}/totals/train/tokens"),
                     num((totals.get("validation") or {}).get("rows"), f"mixtures/{esc(name)}/totals/validation/rows"),
                     num((totals.get("validation") or {}).get("tokens"),
                         f"mixtures/{esc(name)}/totals/validation/tokens")])
    return Section("stages", "Stages", [Table(["stage", "format", "train rows", "train tokens", "validation rows",
                                               "validation tokens"], rows,
                                              "One part per stage below, each from the stage's own manifest")])


def render_report(out_dir: Path) -> str:
    """The report of ``out_dir`` as an HTML string (see :func:`write_report`)."""
    out_dir = Path(out_dir)
    manifest = data.load_manifest(out_dir)
    if isinstance(manifest.get("mixtures"), dict):
        page = Page(f"{manifest.get('recipe') or out_dir.name}", "staged build, "
                    f"{len(manifest['mixtures'])} stages", intro=[_stage_table(manifest)])
        for name, entry in manifest["mixtures"].items():
            stage_dir = out_dir / str(entry.get("path") or name)
            try:
                out = data.open_output(stage_dir)
                found = sections.mixture_sections(out)
                subtitle = _subtitle(out.manifest)
            except OutputError as exc:
                found, subtitle = [Section("missing", "Not found", [Note(str(exc))])], ""
            scope = str(entry.get("path") or name).rstrip("/")
            page.parts.append(Part(f"stage-{name}", f"Stage: {name}", found, scope, subtitle))
        return render(page)
    out = data.open_output(out_dir, manifest)
    title = manifest.get("name") or ("conversion" if manifest.get("converted") else out_dir.name)
    return render(Page(str(title), _subtitle(manifest), [Part("m", str(title), sections.mixture_sections(out))]))


def write_report(out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` (replacing it) and return its path.

    Written to a temporary file and renamed, so a reader never sees half a report.
    """
    out_dir = Path(out_dir)
    html = render_report(out_dir)
    target = out_dir / REPORT_NAME
    tmp = out_dir / f".{REPORT_NAME}.tmp"
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}; check the folder is writable") from None
    return target


# -- sweeps: realised shares across variants ---------------------------------------------------

def share_matrix(manifests: Sequence[dict[str, Any]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sources (in first-seen order) and, per variant x source, the realised and target shares
    (0 where a variant lacks the source; target NaN where the manifest has none)."""
    names: list[str] = []
    for m in manifests:
        names += [n for n in (m.get("sources") or {}) if n not in names]
    realised = np.zeros((len(manifests), len(names)))
    target = np.full((len(manifests), len(names)), np.nan)
    for i, m in enumerate(manifests):
        for j, n in enumerate(names):
            e = (m.get("sources") or {}).get(n)
            if e:
                realised[i, j] = float(e.get("realized_share") or 0.0)
                if e.get("target_share") is not None:
                    target[i, j] = float(e["target_share"])
    return names, realised, target


def sweep_section(manifests: Sequence[dict[str, Any]], labels: Sequence[str] | None = None) -> Section:
    """One chart of realised shares across the variants of a sweep, and the numbers as a table.

    Takes the variants' manifests (as written by each build) and their labels (default: each
    manifest's name, else its position). Cell keys are ``variants/LABEL/sources/NAME/...``.
    """
    if not manifests:
        raise OutputError("a sweep report needs at least one variant's manifest")
    labels = list(labels) if labels is not None else [str(m.get("name") or i) for i, m in enumerate(manifests)]
    if len(labels) != len(manifests) or len(set(labels)) != len(labels):
        raise OutputError(f"sweep labels must be unique, one per manifest (got {labels})")
    names, realised, target = share_matrix(manifests)
    chart = charts.stacked_shares(labels, names, realised, None if np.isnan(target).all() else target,
                                  "Realised share of the train split, per variant")
    headers = ["variant"] + [f"{n} realised" for n in names] + [f"{n} target" for n in names] + ["train tokens"]
    rows = []
    for i, (label, m) in enumerate(zip(labels, manifests)):
        base = f"variants/{esc(label)}"
        row = [text(label)]
        row += [pct(realised[i, j] if n in (m.get("sources") or {}) else None,
                    f"{base}/sources/{esc(n)}/realized_share") for j, n in enumerate(names)]
        row += [pct(None if np.isnan(target[i, j]) else target[i, j], f"{base}/sources/{esc(n)}/target_share")
                for j, n in enumerate(names)]
        row.append(num(((m.get("totals") or {}).get("train") or {}).get("tokens"), f"{base}/totals/train/tokens"))
        rows.append(row)
    return Section("sweep", "Realised shares across variants", [Chart(chart), Table(headers, rows)])


def render_sweep(manifests: Sequence[dict[str, Any]], labels: Sequence[str] | None = None,
                 title: str = "sweep") -> str:
    """A page holding only the sweep section (until sweeps write their own folder layout)."""
    return render(Page(title, f"{len(manifests)} variants", intro=[sweep_section(manifests, labels)]))

