"""The sections of one mixture's report, each built from the manifest and the data files.

Every field beyond the basic accounting is optional: a section shows what the manifest has
and says what it lacks, so a report of an older build, a conversion or a trainer format
still renders.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixer.report import charts, data
from mixer.report.blocks import Cell, Chart, Examples, Note, Section, Table, dec, esc, num, pct, text

FLOW_BUCKETS = {  # chart label -> row_flow key, in the order rows leave
    "rejected": "rows_rejected", "deduplicated": "rows_deduplicated", "decontaminated": "rows_decontaminated",
    "filtered": "rows_filtered", "validation written": "validation_written",
    "validation export-rejected": "validation_export_rejected", "validation not written": "validation_not_written",
    "train not selected": "train_not_selected",
    "train selected": "train_selected_distinct",
}


def overview(m: dict[str, Any], out: data.Output) -> Section:
    totals = m.get("totals") or {}
    rows = [
        [text("format"), text(out.format)],
        [text("recipe"), text((m.get("recipe") or {}).get("path") if isinstance(m.get("recipe"), dict) else m.get("recipe"))],
        [text("recipe sha256"), text(((m.get("recipe") or {}).get("sha256") or "")[:16] if isinstance(m.get("recipe"), dict) else "")],
        [text("seed"), num(m.get("seed"), "seed")],
        [text("unit"), text(m.get("unit"))],
        [text("total (target)"), num(m.get("total"), "total")],
    ]
    if m.get("token_budget"):
        rows.append([text("token budget counts"), text(m["token_budget"])])
    tok = m.get("tokenizer") or {}
    if tok:
        rows.append([text("tokenizer"), text(f"{tok.get('name')} ({tok.get('resolved')})")])
    for split in ("train", "validation"):
        if split in totals:
            # selected: a trainer format may write fewer (Row accounting shows its rejects)
            rows.append([text(f"{split} rows selected"), num(totals[split].get("rows"), f"totals/{esc(split)}/rows")])
            rows.append([text(f"{split} tokens selected"),
                         num(totals[split].get("tokens"), f"totals/{esc(split)}/tokens")])
    run = m.get("run") or {}
    if run:
        rows.append([text("engine"), text(run.get("executor"))])
        rows.append([text("build time (s)"), dec(run.get("seconds"), "run/seconds", 1)])
    versions = m.get("versions") or {}
    if versions:
        rows.append([text("versions"), text(", ".join(f"{k} {v}" for k, v in versions.items()))])
    blocks: list[Any] = [Table(["", ""], [r for r in rows if r[1].text not in ("", "None")], cls="kv")]
    if out.problems:
        blocks.append(Note("Some data files could not be read, so charts drawn from rows are missing: "
                           + "; ".join(out.problems)))
    return Section("overview", "Overview", blocks)


def share_section(m: dict[str, Any]) -> Section:
    sh = data.shares(m)
    names = list(sh)
    unit = m.get("unit", "tokens")
    series = {"target": [sh[n]["target"] for n in names], f"realised ({unit})": [sh[n]["realized"] for n in names]}
    other = "rows" if unit == "tokens" else "tokens"
    series[f"share of {other}"] = [sh[n][other] for n in names]
    has_written = any(sh[n]["written"] is not None for n in names)
    if has_written:
        series[f"realised ({unit}), as written"] = [sh[n]["written"] for n in names]
    headers = ["source", "target", f"realised ({unit})", "share of tokens", "share of rows", "tokens selected",
               "rows selected"]
    if has_written:
        headers += [f"realised ({unit}), as written", "share of rows, as written", "rows written"]
    rows = []
    for n in names:
        e = m["sources"][n]
        row = [text(n), pct(sh[n]["target"], f"sources/{esc(n)}/target_share"),
               pct(sh[n]["realized"], f"sources/{esc(n)}/realized_share"),
               pct(sh[n]["tokens"], f"=share_tokens/{esc(n)}"), pct(sh[n]["rows"], f"=share_rows/{esc(n)}"),
               num(e.get("tokens_selected"), f"sources/{esc(n)}/tokens_selected"),
               num(e.get("rows_selected"), f"sources/{esc(n)}/rows_selected")]
        if has_written:
            row += [pct(sh[n]["written"], f"export/sources/{esc(n)}/realized_share_written"),
                    pct(sh[n]["rows_written"], f"=share_rows_written/{esc(n)}"),
                    num((data.export_entry(m, n).get("rows_written") or {}).get("train"),
                        f"export/sources/{esc(n)}/rows_written/train")]
        rows.append(row)
    blocks: list[Any] = [Chart(charts.shares(names, series, "Target vs realised share of the train split")),
                         Table(headers, rows)]
    if not has_written:
        blocks.append(Note("This manifest does not record per-source rows written after export rejects "
                           "(export.sources); shares are as selected."))
    return Section("shares", "Shares", blocks)


def flow_section(m: dict[str, Any]) -> Section:
    names = list(m["sources"])
    flows = {n: data.row_flow(m, n) for n in names}
    chart = charts.flow(names, {label: [flows[n][key] for n in names] for label, key in FLOW_BUCKETS.items()},
                        "Where every row read went")
    exported = any("written_train" in f for f in flows.values())
    steps = [  # (label, row_flow key, manifest key or None for a derived one)
        ("rows read", "rows_read", "rows_read"),
        ("− rejected (unreadable)", "rows_rejected", "rows_rejected"),
        ("− deduplicated", "rows_deduplicated", "rows_deduplicated"),
        ("− decontaminated", "rows_decontaminated", "rows_decontaminated"),
        ("− filtered", "rows_filtered", "rows_filtered"),
        *([("− held out: validation written", "validation_written", "export/rows_written/validation"),
           ("− held out: validation export-rejected", "validation_export_rejected", None)] if exported else
          [("− held out: validation written", "validation_written", "validation_rows_selected")]),
        ("− held out: not written", "validation_not_written", "validation_rows_not_written"),
        ("− train rows never selected", "train_not_selected", None),
        ("= train rows selected at least once", "train_selected_distinct", None),
        ("+ repeats (upsampling)", "repeats_added", None),
        ("= train rows selected", "rows_selected", "rows_selected"),
    ]
    if exported:
        steps += [("− export-rejected (train)", "export_rejected", None),
                  ("= train rows written", "written_train", "export/rows_written/train")]
    headers = ["", *names]
    rows = []
    for label, key, source_key in steps:
        row = [Cell(label, cls="step" if label[0] in "=r" else "")]
        for n in names:
            if source_key is None:
                where = f"=flow/{esc(n)}/{key}"
            elif source_key.startswith("export/"):
                where = f"export/sources/{esc(n)}/{source_key.split('/', 1)[1]}"
            else:
                where = f"sources/{esc(n)}/{source_key}"
            row.append(num(flows[n].get(key), where))
        rows.append(row)
    blocks: list[Any] = [Chart(chart), Table(headers, rows)]
    reasons = []
    for n in names:
        e = m["sources"][n]
        for group, label in (("rejected_reasons", "rejected"), ("filtered_by", "filtered")):
            for reason, count in (e.get(group) or {}).items():
                reasons.append([text(n), text(label), text(reason), num(count, f"sources/{esc(n)}/{group}/{esc(reason)}")])
        raw = data.export_entry(m, n).get("rejected") or {}
        nested = all(isinstance(v, dict) for v in raw.values())
        for split, by_reason in data.export_rejects(data.export_entry(m, n)).items():
            for reason, count in by_reason.items():
                where = f"{esc(split)}/{esc(reason)}" if nested else esc(reason)
                reasons.append([text(n), text(f"export-rejected ({split})"), text(reason),
                                num(count, f"export/sources/{esc(n)}/rejected/{where}")])
    if reasons:
        blocks.append(Table(["source", "bucket", "reason", "rows"], reasons, "Why rows were removed"))
    export = m.get("export") or {}
    unrendered = [[text(n), text(split), text(reason), text(", ".join(export["tools_unrendered"]["tools"][split][reason])),
                   num(count, f"export/sources/{esc(n)}/tools_unrendered/{esc(split)}/{esc(reason)}")]
                  for n in names for split, by_reason in (data.export_entry(m, n).get("tools_unrendered") or {}).items()
                  for reason, count in by_reason.items()]
    if unrendered:
        blocks.append(Table(["source", "split", "reason", "tools (of the split)", "rows"], unrendered,
                            f"Rows written as {export['format']} with tools a configuration of the trainer cannot "
                            "render (counted in the rows written above)"))
    if export.get("rejected") and not exported:
        by_split = [[text(split), text(reason), num(count, f"export/rejected/{esc(split)}/{esc(reason)}")]
                    for split, reasons_ in export["rejected"].items() for reason, count in reasons_.items()]
        if by_split:
            blocks.append(Table(["split", "export-rejected reason", "rows"], by_split,
                                "Rows the output format could not carry (not broken down by source in this manifest)"))
    blocks.append(Note("read = rejected + deduplicated + decontaminated + filtered + held out for validation "
                       "(written or not) + train rows never selected + train rows selected at least once. "
                       "Upsampling adds repeats of selected rows; export rejects come out of the selected rows."))
    return Section("flow", "Row accounting", blocks)


def token_section(m: dict[str, Any], out: data.Output) -> Section:
    names = list(m["sources"])
    blocks: list[Any] = []
    kinds = ("rendered", "content", "assistant")
    counted = {n: m["sources"][n].get("token_counts") for n in names if m["sources"][n].get("token_counts")}
    if counted:
        headers = ["source"] + [f"{stage} {k}" for stage in ("available", "selected") for k in kinds]
        rows = [[text(n)] + [num((tc.get(stage) or {}).get(k), f"sources/{esc(n)}/token_counts/{stage}/{k}")
                             for stage in ("available", "selected") for k in kinds] for n, tc in counted.items()]
        budget = m.get("token_budget")
        blocks.append(Table(headers, rows, "Tokens per source: the whole rendered row, the source's own content "
                                           "(without injected system prompts and tools), and assistant turns only"
                            + (f"; budgets count {budget!r} tokens" if budget else "")))
    lengths = data.token_lengths(out)
    if lengths:
        sampled, why = data.turn_lengths(out, int(m.get("seed") or 0))
        panels = {"whole row: n_tokens (every row)": lengths}
        if sampled:
            panels["turns only (sample)"] = {n: v["turns"] for n, v in sampled.items()}
            panels["assistant turns (sample)"] = {n: v["assistant"] for n, v in sampled.items() if len(v["assistant"])}
        blocks.append(Chart(charts.length_panels(panels, "tokens per row (log scale)")))
        rows = []
        for n, v in lengths.items():
            q = np.percentile(v, [10, 50, 90]) if len(v) else [0, 0, 0]
            s = sampled.get(n) or {}
            row = [text(n), num(int(len(v)), f"=lengths/{esc(n)}/rows"), num(int(q[0])), num(int(q[1])),
                   num(int(q[2])), num(int(v.max()) if len(v) else 0), num(int(v.sum()), f"=lengths/{esc(n)}/sum")]
            if sampled:
                row += [num(len(s.get("turns", [])), f"=sampled/{esc(n)}/rows"),
                        num(int(np.median(s["turns"])) if len(s.get("turns", [])) else None),
                        num(int(np.median(s["assistant"])) if len(s.get("assistant", [])) else None)]
            rows.append(row)
        headers = ["source", "rows", "p10", "median", "p90", "max", "sum"]
        if sampled:
            headers += ["rows sampled", "turns median", "assistant median"]
        blocks.append(Table(headers, rows, "n_tokens is the recipe's count per row (the unit budgets use): turns, "
                                           "system prompt, tool specs and framing"
                            + (f"; turns and assistant counts are recounted here with {m['tokenizer'].get('name')} "
                               f"on a seeded sample of up to {data.SAMPLE_ROWS:,} rows per source (turn text and "
                               "tool calls only: no system prompt, tool specs or framing)" if sampled else "")))
        if why:
            blocks.append(Note(f"Turn and assistant lengths are not drawn: {why}."))
    elif out.splits:
        blocks.append(Note(f"The {out.format!r} format keeps neither a row's source nor its token count, so per-source "
                           "length distributions cannot be drawn from these files; build with the canonical format "
                           "(the default) to see them." + (" Totals per source are above." if counted else "")))
    if not blocks:
        blocks.append(Note("No token counts per source in this manifest."))
    return Section("tokens", "Token lengths", blocks)


def augmentation_section(m: dict[str, Any], out: data.Output) -> Section | None:
    steps = {n: e.get("transforms") or [] for n, e in m["sources"].items()}
    tool_counts = data.tool_counts(out)
    if not any(steps.values()) and not any(any(k > 0 for k in c) for c in tool_counts.values()):
        return None
    resolved = ((m.get("recipe") or {}).get("resolved") or {}) if isinstance(m.get("recipe"), dict) else {}
    seen = data.augmentations(out)
    blocks: list[Any] = []
    rows, labels, rates, ps = [], [], [], []
    for n, transforms in steps.items():
        recipe_steps = ((resolved.get("sources") or {}).get(n) or {}).get("transforms") or []
        for i, t in enumerate(transforms):
            pos = t.get("position")
            p = recipe_steps[pos].get("p") if isinstance(pos, int) and pos < len(recipe_steps) else None
            rate = t["augmented"] / t["rows_in"] if t.get("rows_in") and t.get("augmented") is not None else None
            selected = m["sources"][n].get("rows_selected") or 0
            sel_rate = t.get("augmented_selected", 0) / selected if selected and "augmented_selected" in t else None
            key = f"sources/{esc(n)}/transforms/{i}"
            rows.append([text(n), text(f"{pos}. {t.get('type')}"), dec(p, None),
                         num(t.get("rows_in"), f"{key}/rows_in"), num(t.get("rows_out"), f"{key}/rows_out"),
                         num(t.get("augmented"), f"{key}/augmented"), pct(rate, f"=touched/{esc(n)}/{pos}"),
                         num(t.get("augmented_selected"), f"{key}/augmented_selected"),
                         pct(sel_rate, f"=touched_selected/{esc(n)}/{pos}"),
                         num((seen.get(n) or {}).get("touched", {}).get(pos), f"=meta_touched/{esc(n)}/{pos}")])
            if rate is not None and t.get("type") not in ("filter",):
                labels.append(f"{n}: {pos}. {t.get('type')}")
                rates.append(rate)
                ps.append(p)
    if rows:
        if labels:
            blocks.append(Chart(charts.bars(labels, rates, "Rows touched per transform (before selection) vs p",
                                            "share of rows", marks=ps, mark_label="p (recipe)", fmt="{:.1%}",
                                            percent=True)))
        blocks.append(Table(["source", "transform", "p", "rows in", "rows out", "touched", "touched %",
                             "touched, selected", "% of selected", "rows with its note (train file)"], rows,
                            "p is the recipe's probability (— when the recipe leaves the default); "
                            "'touched' rows carry the transform's note in meta"))
    if tool_counts and any(any(k > 0 for k in c) for c in tool_counts.values()):
        blocks.append(Chart(charts.counts(tool_counts, "Tool specs per row (train)", "tools on the row")))
    domains = {}
    styles = {}
    for n, info in seen.items():
        for d, c in info["domains"].items():
            domains[d] = domains.get(d, 0) + c
        for s, c in info["styles"].items():
            styles[s] = styles.get(s, 0) + c
    if domains:
        top = sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
        blocks.append(Chart(charts.bars([d for d, _ in top], [c for _, c in top],
                                        f"Injected tools by domain (train; top {len(top)} of {len(domains)})",
                                        "tool specs attached")))
    if styles:
        top = sorted(styles.items(), key=lambda kv: (-kv[1], kv[0]))
        blocks.append(Chart(charts.bars([s for s, _ in top], [c for _, c in top],
                                        "Injected system prompts by style (train)", "rows")))
    if not any(steps.values()):
        blocks.append(Note("This recipe has no transforms: the tools shown were in the source data."))
    elif not seen and out.splits:
        blocks.append(Note(f"The {out.format!r} format keeps no meta column, so which rows were augmented, and with "
                           "which tool domains and prompt styles, is known only from the manifest counts above."))
    return Section("augmentation", "Augmentation", blocks)


def epochs_section(m: dict[str, Any]) -> Section:
    names = list(m["sources"])
    factors = [float(m["sources"][n].get("repeat_factor") or 0) for n in names]
    caps = [m["sources"][n].get("max_epochs") for n in names]
    rows = [[text(n), dec(m["sources"][n].get("repeat_factor"), f"sources/{esc(n)}/repeat_factor"),
             dec(m["sources"][n].get("max_epochs"), f"sources/{esc(n)}/max_epochs", 1),
             text("yes" if m["sources"][n].get("rebalanced") else "")] for n in names]
    return Section("epochs", "Repeats", [
        Chart(charts.bars(names, factors, "Epochs over each source's train rows", "repeat factor", marks=caps,
                          mark_label="max_epochs", fmt="{:.2f}")),
        Table(["source", "repeat factor", "max_epochs", "rebalanced"], rows)])


def validation_section(m: dict[str, Any]) -> Section | None:
    if not m.get("validation"):
        return None
    rows = []
    for n, e in m["sources"].items():
        split = e.get("split") or {}
        rows.append([text(n), num(split.get("validation"), f"sources/{esc(n)}/split/validation"),
                     num(e.get("validation_rows_selected"), f"sources/{esc(n)}/validation_rows_selected"),
                     num(e.get("validation_tokens_selected"), f"sources/{esc(n)}/validation_tokens_selected"),
                     num(e.get("validation_rows_not_written"), f"sources/{esc(n)}/validation_rows_not_written")])
    blocks: list[Any] = [Table(["source", "held out", "written", "tokens written", "not written"], rows,
                               f"validation = {m['validation']}")]
    if m.get("validation_rule"):
        blocks.append(Note(m["validation_rule"]))
    return Section("validation", "Validation split", blocks)


def timing_section(m: dict[str, Any]) -> Section | None:
    run = m.get("run") or {}
    phases = [p for p in run.get("phases") or [] if isinstance(p, dict)]
    if not phases:
        return None
    labels = [str(p.get("phase")) for p in phases]
    seconds = [float(p.get("seconds") or 0) for p in phases]
    rows = [[text(p.get("phase")), dec(p.get("seconds"), f"run/phases/{i}/seconds", 2),
             num(p.get("rows"), f"run/phases/{i}/rows")] for i, p in enumerate(phases)]
    return Section("timings", "Phase timings", [
        Chart(charts.bars(labels, seconds, f"Build phases ({run.get('executor', '?')} engine, "
                                           f"{float(run.get('seconds') or sum(seconds)):.1f} s)", "seconds",
                          fmt="{:.2f} s")),
        Table(["phase", "seconds", "rows"], rows)])


def audit_section(m: dict[str, Any]) -> Section | None:
    """``[output] audit``: where the trainer's template put system prompts and tools, per source,
    and its token counts as ratios to mixer's estimate (where :func:`mixer.audit.compare` put one)."""
    audit = m.get("audit")
    if not isinstance(audit, dict) or not isinstance(audit.get("sources"), dict):
        return None
    rows = []
    for n, t in audit["sources"].items():
        key, system, tools = f"audit/sources/{esc(n)}", t.get("system") or {}, t.get("tools") or {}
        est = t.get("estimate") or {}
        rows.append([text(n), num(t.get("rows"), f"{key}/rows"), num(t.get("problem_rows"), f"{key}/problem_rows"),
                     text(f"{system.get('system turn', 0)}/{system.get('first user turn', 0)}/"
                          f"{system.get('absent', 0)}"),
                     text(f"{tools.get('system turn', 0)}/{tools.get('first user turn', 0)}/"
                          f"{tools.get('absent', 0) + tools.get('partly absent', 0)}"),
                     num(t.get("rendered_tokens"), f"{key}/rendered_tokens"),
                     dec(est.get("rendered_ratio"), f"{key}/estimate/rendered_ratio"),
                     num(t.get("trainable_tokens"), f"{key}/trainable_tokens"),
                     dec(est.get("trainable_ratio"), f"{key}/estimate/trainable_ratio")])
    blocks: list[Any] = [Table(
        ["source", "rows", "would train differently", "system: sys/user/absent", "tools: sys/user/absent",
         "rendered tokens", "x mixer's rendered", "trainable tokens", "x mixer's assistant"], rows,
        f"{audit.get('audited', 0):,} {audit.get('split')} rows rendered with {audit.get('template')}; "
        f"tokens counted with {audit.get('tokens_counted_with')}")]
    for finding, example in ((audit.get("total") or {}).get("examples") or {}).items():
        blocks.append(Note(f"{finding} (e.g. {example})"))
    return Section("audit", "Trainer template audit", blocks)


def examples_section(m: dict[str, Any], out: data.Output, per_source: int | None = None) -> Section | None:
    if not out.splits:
        return None
    if per_source is None:  # three rows per source, fewer when there are many sources (size)
        per_source = max(1, min(3, 60 // max(1, len(m.get("sources") or {}))))
    rows = data.example_rows(out, int(m.get("seed") or 0), per_source)
    if not rows:
        return None
    note = ("Chosen by a seeded hash of the row id (the recipe seed), the same rows each time. "
            "Marked in orange: what an augmentation put there (from the row's meta).")
    if not out.has("meta"):
        note = (f"Chosen by a seeded hash of the row number. The {out.format!r} format keeps no source or meta, "
                "so rows are from the whole mixture and a system prompt or tools cannot be told apart from "
                "ones the source already had.")
    return Section("examples", "Example rows", [Note(note), Examples(rows)])


def mixture_sections(out: data.Output) -> list[Section]:
    """Every section of one mixture's report, in reading order."""
    m = out.manifest
    if not isinstance(m.get("sources"), dict) or not m["sources"]:
        return conversion_sections(out)
    found = [overview(m, out), share_section(m), flow_section(m), token_section(m, out),
             augmentation_section(m, out), epochs_section(m), validation_section(m), audit_section(m),
             timing_section(m), examples_section(m, out)]
    return [s for s in found if s is not None]


def conversion_sections(out: data.Output) -> list[Section]:
    """A folder written by ``mixer convert``: rows read, unreadable, not representable, written."""
    m = out.manifest
    export = m.get("export") or {}
    rows = [[text("converted"), text(f"{(m.get('converted') or {}).get('from')} -> {(m.get('converted') or {}).get('to')}")],
            [text("rows read"), num(m.get("rows_read"), "rows_read")],
            [text("unreadable"), num(m.get("rows_rejected"), "rows_rejected")]]
    for split, n in (export.get("rows") or {}).items():
        rows.append([text(f"written ({split})"), num(n, f"export/rows/{split}")])
    blocks: list[Any] = [Table(["", ""], rows, cls="kv")]
    reasons = [[text(split), text(reason), num(c, f"export/rejected/{esc(split)}/{esc(reason)}")]
               for split, rs in (export.get("rejected") or {}).items() for reason, c in rs.items()]
    if reasons:
        blocks.append(Table(["split", "not representable", "rows"], reasons))
    found = [Section("overview", "Conversion", blocks), examples_section(m, out)]
    return [s for s in found if s is not None]
