"""Compare two mixtures: what changed between two builds, per source, and why.

``mixer diff A B`` takes two output folders (or their ``manifest.json``) and reports, per
source, rows and tokens selected, realized shares, rows added and removed (by row id, where the
written rows carry ids: canonical output, or ``rows.parquet`` beside trainer formats), and
what differs upstream: input fingerprints, transforms, seed, recipe hash. Two builds are
identical when they wrote the same files with the same sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixer.errors import DataError


@dataclass
class SourceDiff:
    """One source in A and B (``None`` where a side lacks the source)."""

    name: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    added: int | None = None  # train rows in B not in A (None: ids unknown)
    removed: int | None = None
    inputs_changed: bool = False
    transforms_changed: bool = False


@dataclass
class Diff:
    a: Path
    b: Path
    sources: list[SourceDiff]
    settings: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (A, B), changed only
    files_differ: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.files_differ


def _manifest(path: Path) -> tuple[Path, dict[str, Any]]:
    folder = path.parent if path.is_file() else path
    file = path if path.is_file() else path / "manifest.json"
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no manifest.json; give a folder a mixer build wrote, or its manifest.json") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}: not a readable manifest ({exc})") from None
    if "sources" not in manifest:
        hint = " (a staged build's top folder: compare its mixture folders)" if "mixtures" in manifest else ""
        raise DataError(f"{file}: not the manifest of a built mixture{hint}")
    return folder, manifest


def _ids(folder: Path, manifest: dict[str, Any]) -> dict[str, set[str]] | None:
    """Train row ids per source, from canonical files or ``rows.parquet``; None when unknown."""
    import polars as pl

    provenance = folder / "rows.parquet"
    if provenance.is_file():
        frame = pl.read_parquet(provenance).filter(pl.col("split") == "train")
    elif not manifest.get("export"):
        files = [folder / f["path"] for f in manifest.get("outputs", []) if f["split"] == "train"]
        if not files or not all(f.is_file() for f in files):
            return None
        frames = [pl.read_parquet(f, columns=["id", "source"]) if f.suffix == ".parquet"
                  else pl.read_ndjson(f).select("id", "source") for f in files]
        frame = pl.concat(frames)
    else:
        return None
    return {src: set(part.get_column("id").to_list())
            for (src,), part in frame.group_by("source")}


def _transforms(manifest: dict[str, Any], name: str) -> Any:
    return ((manifest.get("recipe") or {}).get("resolved") or {}).get("sources", {}).get(name, {}).get("transforms")


def diff(a: str | Path, b: str | Path) -> Diff:
    """Compare two built mixtures."""
    fa, ma = _manifest(Path(a))
    fb, mb = _manifest(Path(b))
    settings = {}
    for key, get in (("recipe sha256", lambda m: m["recipe"]["sha256"]), ("seed", lambda m: m.get("seed")),
                     ("unit", lambda m: m.get("unit")), ("total", lambda m: m.get("total")),
                     ("format", lambda m: (m.get("export") or {}).get("format", "canonical")),
                     ("tokenizer", lambda m: (m.get("tokenizer") or {}).get("resolved"))):
        va, vb = get(ma), get(mb)
        if va != vb:
            settings[key] = (va, vb)
    ids_a, ids_b = _ids(fa, ma), _ids(fb, mb)
    sources = []
    for name in list(ma["sources"]) + [n for n in mb["sources"] if n not in ma["sources"]]:
        ea, eb = ma["sources"].get(name), mb["sources"].get(name)
        d = SourceDiff(name, ea, eb)
        if ids_a is not None and ids_b is not None:
            sa, sb = ids_a.get(name, set()), ids_b.get(name, set())
            d.added, d.removed = len(sb - sa), len(sa - sb)
        if ea and eb:
            fp = lambda e: sorted((i["path"], i["sha256"]) for i in e.get("inputs", []))  # noqa: E731
            d.inputs_changed = [s for _, s in fp(ea)] != [s for _, s in fp(eb)]
            d.transforms_changed = _transforms(ma, name) != _transforms(mb, name)
        sources.append(d)
    files_a = {f["path"]: f["sha256"] for f in ma.get("outputs", [])}
    files_b = {f["path"]: f["sha256"] for f in mb.get("outputs", [])}
    differ = sorted(p for p in set(files_a) | set(files_b) if files_a.get(p) != files_b.get(p))
    return Diff(Path(a), Path(b), sources, settings, differ)


def _delta(a: float | None, b: float | None, fmt: str) -> str:
    if a is None or b is None:
        return "-"
    change = b - a
    return "0" if change == 0 else ("+" if change > 0 else "") + format(change, fmt)


def table(d: Diff) -> str:
    """The comparison as a person reads it."""
    header = ("source", "rows A", "rows B", "rows +/-", "tokens +/-", "share A", "share B", "added", "removed",
              "inputs", "transforms")
    lines = [header]
    for s in d.sources:
        a, b = s.a or {}, s.b or {}
        lines.append((
            s.name + ("" if s.a else " (only B)") + ("" if s.b else " (only A)"),
            f"{a['rows_selected']:,}" if a else "-", f"{b['rows_selected']:,}" if b else "-",
            _delta(a.get("rows_selected"), b.get("rows_selected"), ","),
            _delta(a.get("tokens_selected"), b.get("tokens_selected"), ","),
            f"{a['realized_share']:.1%}" if a else "-", f"{b['realized_share']:.1%}" if b else "-",
            "?" if s.added is None else f"{s.added:,}", "?" if s.removed is None else f"{s.removed:,}",
            "changed" if s.inputs_changed else "same", "changed" if s.transforms_changed else "same"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = [f"A = {d.a}", f"B = {d.b}"]
    for key, (va, vb) in d.settings.items():
        out.append(f"{key}: {va} -> {vb}")
    for i, row in enumerate(lines):
        out.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    if any(s.added is None for s in d.sources):
        out.append("added/removed '?': the written rows carry no ids (trainer formats without rows.parquet)")
    out.append("identical: every output file has the same sha256" if d.identical
               else f"different: {len(d.files_differ):,} output file(s) differ ({', '.join(d.files_differ[:3])}"
                    + (", ..." if len(d.files_differ) > 3 else "") + ")")
    return "\n".join(out)
