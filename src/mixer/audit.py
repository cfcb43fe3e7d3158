"""Audit: render written rows with a real chat template, as the trainer will, and check that
what the recipe asked for reaches the tokens.

The class of failure this catches is the most common one in post-training data: a system
prompt or tool specs that never reach the model (a template without a system role or tool
support, tools moved into the first user message, a trainer that renders RL prompts without
tools), text the template injects on its own (a default system prompt in a "no system prompt"
arm, a knowledge-cutoff header), tool-call arguments rendered as double-encoded strings, and
rows a template refuses.

Rows are rendered with transformers' ``apply_chat_template`` (a tokenizer folder's own
tokenizer, or a minimal tokenizer carrying the template when only a ``.jinja`` file is given),
with the arguments each trainer passes: ``messages`` + ``tools`` for SFT formats, the
``prompt`` with a generation prompt and no ``tools`` argument for RL prompts (TRL's GRPO
renders prompts that way, so tools reach the model only when folded into the text).

Where text lands is found by rendering the row with its first user turn replaced by a
sentinel: text before that turn's opener is in the system turn; text between the opener and
the sentinel is in the first user turn. The opener is learned from the template itself.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixer import formats
from mixer.errors import DataError, RecipeError

PLACES = ("system turn", "first user turn", "later turn", "absent")
_SENTINEL = "mixerauditfirstuserturn"
_PROBE = ("mixerprobeuserone", "mixerprobeassistantone", "mixerprobeusertwo", "mixerprobeassistanttwo")
# control tokens and the role word right after them; what is left of a prefix is real text
_CONTROL = re.compile(r"(<\|[^|>]{1,40}\|>|<[^<>\s]{1,40}>|\[/?INST\]|<<SYS>>|<</SYS>>)\s*(system|user|assistant|model)?",
                      re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]{2,}")
CHAT_FORMATS = tuple(f.name for f in formats.FORMATS.values() if f.read_back is not None)  # what can be audited


# --------------------------------------------------------------------------- templates


@dataclass
class Renderer:
    """A chat template run through transformers, plus how to count tokens."""

    name: str
    template: str
    tokenizer: Any  # a transformers tokenizer carrying the template
    counts_with: str  # "tokenizer" (the model's own) or a tiktoken encoding name
    encoding: Any = None  # tiktoken encoding when there is no real tokenizer
    _opener: str | None = None

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               generation: bool = False) -> str:
        # a bare template file has no tokenizer behind it: special tokens it names render empty
        missing = {k: "" for k in ("bos_token", "eos_token") if getattr(self.tokenizer, k, None) is None}
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                                  add_generation_prompt=generation, **missing)

    @property
    def opener(self) -> str | None:
        """The text that opens a user turn, learned by rendering a probe conversation."""
        if self._opener is None:
            u1, a1, u2, a2 = _PROBE
            try:
                text = self.render([{"role": "user", "content": u1}, {"role": "assistant", "content": a1},
                                    {"role": "user", "content": u2}, {"role": "assistant", "content": a2}], None)
                before, gap = text[:text.index(u1)], text[text.index(a1) + len(a1):text.index(u2)]
            except Exception:  # noqa: BLE001 - a template that refuses the probe: no opener known
                self._opener = ""
                return None
            k = 0
            while k < min(len(before), len(gap)) and before[-1 - k] == gap[-1 - k]:
                k += 1
            self._opener = gap[len(gap) - k:]
        return self._opener or None

    def count(self, text: str) -> int:
        if self.encoding is not None:
            return len(self.encoding.encode_ordinary(text))
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def check_template(spec: str, where: str = "output.audit") -> None:
    """Fail before a build reads any data when its audit template cannot be loaded."""
    try:
        load_renderer(spec)
    except RecipeError as exc:
        raise RecipeError(str(exc).replace("--template", where, 1)) from None


def load_renderer(spec: str, encoding: str = "cl100k_base") -> Renderer:
    """``spec``: a ``.jinja`` file, a ``tokenizer_config.json``, a tokenizer folder (its template in
    ``tokenizer_config.json`` or ``chat_template.jinja``), or the built-in ``chatml``. Templates are
    found as the ``text`` format finds them (:func:`mixer.formats.text.load_template`); a folder
    with a ``tokenizer.json`` brings its own tokenizer for the counts."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise RecipeError("mixer audit renders rows with transformers' apply_chat_template; install it with "
                          "pip install 'mixer[audit]' (or pip install transformers)") from None
    from mixer.formats.text import load_template

    path = Path(spec).expanduser()
    if path.is_dir() and (path / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path))
        if not tok.chat_template:
            raise RecipeError(f"--template {path}: the tokenizer there has no chat template")
        return Renderer(str(path), tok.chat_template, tok, "tokenizer")
    if spec != "chatml" and not path.exists():
        raise RecipeError(f"--template {spec}: no such file or folder (give a .jinja file, a tokenizer_config.json, "
                          "a tokenizer folder, or chatml)")
    try:
        template = load_template(spec, Path.cwd())
    except RecipeError as exc:
        raise RecipeError(str(exc).replace("output.chat_template:", "--template:", 1)) from None
    special = {k: v for k, v in (("bos_token", template.bos_token), ("eos_token", template.eos_token)) if v}
    return _minimal(spec if spec == "chatml" else str(path), template.source, special, encoding)


def _minimal(name: str, template: str, special: dict[str, str], encoding: str) -> Renderer:
    """A transformers tokenizer that carries only the template and special tokens: rendering goes
    through the real ``apply_chat_template``; token counts use ``encoding`` (a tiktoken name or a model's
    tokenizer.json, as :func:`mixer.tokens.encoding` reads it)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from mixer import tokens

    vocab = {"[UNK]": 0, **{tok: i + 1 for i, tok in enumerate(special.values())}}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")),
                                  unk_token="[UNK]", **special)
    tok.chat_template = template
    enc = tokens.encoding(encoding)
    return Renderer(name, template, tok, enc.name, enc)


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One written row, as the trainer hands it to the template."""

    source: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # what the trainer passes as ``tools=``
    generation: bool  # add_generation_prompt (RL prompts)
    system: str | None  # the system prompt the row carries
    tool_names: list[str]  # the tools the row carries (passed or folded into text)


def read_rows(out_dir: Path, split: str = "train") -> tuple[str, list[Row]]:
    """The rows of ``split`` in ``out_dir`` (a build or convert output) with their format."""
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{out_dir}: no manifest.json; give the folder a mixer build or convert wrote")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    fmt = (manifest.get("export") or {}).get("format") or "canonical"
    if formats.get(fmt, "manifest export.format").read_back is None:
        raise DataError(f"{out_dir}: {fmt} output is already rendered (with output.chat_template); audit a chat "
                        f"format ({', '.join(CHAT_FORMATS)})")
    files = [out_dir / f["path"] for f in manifest.get("outputs", []) if f["split"] == split]
    provenance = _provenance(out_dir, split)
    records: list[dict[str, Any]] = []
    for path in files:
        records.extend(_read_file(path))
    rows = []
    for i, record in enumerate(records):
        source = record.get("source") or (provenance[i] if provenance and i < len(provenance) else "all")
        rows.append(_row(fmt, record, source))
    return fmt, rows


def _provenance(out_dir: Path, split: str) -> list[str] | None:
    """Each written row's source, when the build recorded it beside trainer-format files."""
    path = out_dir / "rows.parquet"
    if not path.is_file():
        return None
    import polars as pl

    return pl.read_parquet(path).filter(pl.col("split") == split).get_column("source").to_list()


def _read_file(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
        return
    import datasets
    import pyarrow.parquet as pq

    # through datasets, so Json features decode exactly as the trainer sees them
    yield from datasets.Dataset(pq.read_table(path))


def _row(fmt: str, record: dict[str, Any], source: str) -> Row:
    """A written row as the trainer hands it to the template, read back by its format's module."""
    messages, tools, generation, carried = formats.get(fmt, "manifest export.format").read_back(record)
    return _made(source, messages, tools, generation, carried)


def _made(source: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, generation: bool,
          carried: list[dict[str, Any]]) -> Row:
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    names = [str((t.get("function") or t).get("name")) for t in carried if isinstance(t, dict)]
    return Row(source, messages, tools, generation, system, names)


# --------------------------------------------------------------------------- checks


@dataclass
class Tally:
    """What the audit found for one source (or in total)."""

    rows: int = 0
    system_rows: int = 0
    system: Counter = field(default_factory=Counter)  # place -> rows
    tool_rows: int = 0
    tools: Counter = field(default_factory=Counter)  # place of the row's tools -> rows
    injected: int = 0  # rows given system text they did not carry
    double_encoded: int = 0  # rows whose tool-call arguments render as JSON inside a string
    errors: Counter = field(default_factory=Counter)  # template error -> rows
    rendered_tokens: int = 0
    trainable_tokens: int = 0
    examples: dict[str, str] = field(default_factory=dict)  # finding -> one example

    def add(self, other: Tally) -> None:
        for name in ("rows", "system_rows", "tool_rows", "injected", "double_encoded", "rendered_tokens",
                     "trainable_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.system.update(other.system)
        self.tools.update(other.tools)
        self.errors.update(other.errors)
        for key, value in other.examples.items():
            self.examples.setdefault(key, value)

    @property
    def problems(self) -> int:
        """Rows that would train differently from what the recipe asked."""
        return (self.system["absent"] + self.tools["absent"] + self.tools["partly absent"] + self.injected
                + self.double_encoded + sum(self.errors.values()))

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "system_rows": self.system_rows, "system": dict(self.system),
                "tool_rows": self.tool_rows, "tools": dict(self.tools), "injected_system_text": self.injected,
                "double_encoded_arguments": self.double_encoded, "template_errors": dict(self.errors),
                "rendered_tokens": self.rendered_tokens, "trainable_tokens": self.trainable_tokens,
                "examples": dict(self.examples), "problem_rows": self.problems}


def audit_row(row: Row, renderer: Renderer, label: str) -> Tally:
    """Render one row and record where its system prompt and tools land."""
    tally = Tally(rows=1)
    try:
        text = renderer.render(row.messages, row.tools, row.generation)
        probe = renderer.render(_with_sentinel(row.messages), row.tools, row.generation)
    except Exception as exc:  # noqa: BLE001 - any template failure is a finding, not a crash
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        tally.errors[message] += 1
        tally.examples.setdefault(f"template error: {message}", label)
        return tally
    user_at = probe.find(_SENTINEL)
    opener = renderer.opener
    turn_at = probe.rfind(opener, 0, user_at) if opener and user_at >= 0 else -1

    def place(fragment: str) -> str:
        at = probe.find(fragment) if fragment else -1
        if at < 0:
            return "absent"
        if user_at < 0 or at > user_at:
            return "later turn"
        return "first user turn" if 0 <= turn_at <= at else "system turn"

    if row.system and row.system.strip():
        tally.system_rows = 1
        where = place(row.system.strip()[:200])
        tally.system[where] += 1
        if where != "system turn":
            tally.examples.setdefault(f"system prompt {_said(where)}", label)
    if row.tool_names:
        tally.tool_rows = 1
        places = [place(name) for name in row.tool_names]
        where = ("absent" if all(p == "absent" for p in places) else "partly absent" if "absent" in places
                 else max(set(places), key=places.count))
        tally.tools[where] += 1
        if where != "system turn":
            tally.examples.setdefault(f"tools {_said(where)}", label)
    injected = _injected(renderer, row)
    if injected:
        tally.injected = 1
        tally.examples.setdefault(f"template injected: {injected[:120]}", label)
    if _double_encoded(row, text):
        tally.double_encoded = 1
        tally.examples.setdefault("tool-call arguments double-encoded", label)
    tally.rendered_tokens = renderer.count(text)
    if not row.generation:  # an RL prompt trains on the completion, none of its own tokens
        tally.trainable_tokens = sum(renderer.count(m.get("content") or "") for m in row.messages
                                     if m["role"] == "assistant")
    return tally


def _said(place: str) -> str:
    return {"absent": "absent from the rendered text", "partly absent": "partly absent from the rendered text"
            }.get(place, f"rendered in the {place}")


def _with_sentinel(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out, done = [], False
    for m in messages:
        if not done and m["role"] == "user":
            m, done = {**m, "content": _SENTINEL}, True
        out.append(m)
    return out


def _injected(renderer: Renderer, row: Row) -> str:
    """Text before the first user turn that the row did not carry (tool blocks excluded: the
    row's own messages are rendered without tools)."""
    try:
        probe = renderer.render(_with_sentinel(row.messages), None, row.generation)
    except Exception:  # noqa: BLE001 - reported by audit_row already
        return ""
    user_at = probe.find(_SENTINEL)
    if user_at < 0:
        return ""
    opener = renderer.opener
    turn_at = probe.rfind(opener, 0, user_at) if opener else -1
    prefix = probe[:turn_at if turn_at >= 0 else user_at]
    if row.system:
        prefix = prefix.replace(row.system.strip(), " ")
    residue = " ".join(_CONTROL.sub(" ", prefix).split())
    return residue if len(_WORD.findall(residue)) >= 2 else ""


def _double_encoded(row: Row, text: str) -> bool:
    for m in row.messages:
        for call in m.get("tool_calls") or []:
            args = (call.get("function") or {}).get("arguments")
            parsed = formats.common.parsed(args)
            if not isinstance(parsed, dict) or not parsed:
                continue
            for sep in ((", ", ": "), (",", ":")):
                inner = json.dumps(parsed, ensure_ascii=False, separators=sep)
                if json.dumps(inner, ensure_ascii=False)[1:-1] in text:
                    return True
    return False


@dataclass
class Audit:
    """The audit of one output folder: per source and in total."""

    template: str
    format: str
    split: str
    counted_with: str
    sources: dict[str, Tally]
    total: Tally
    sampled: int  # rows audited
    rows: int  # rows in the split

    def as_dict(self) -> dict[str, Any]:
        return {"template": self.template, "format": self.format, "split": self.split,
                "tokens_counted_with": self.counted_with, "rows": self.rows, "audited": self.sampled,
                "total": self.total.as_dict(), "sources": {k: v.as_dict() for k, v in self.sources.items()}}


def audit(out_dir: str | Path, template: str, *, split: str = "train", sample: int | None = None,
          seed: int = 0, encoding: str = "cl100k_base") -> Audit:
    """Render the rows of ``split`` (all, or a seeded sample of ``sample``) with ``template``."""
    renderer = load_renderer(template, encoding)
    fmt, rows = read_rows(Path(out_dir), split)
    picked = list(range(len(rows)))
    if sample is not None and sample < len(rows):
        picked = sorted(random.Random(seed).sample(picked, sample))
    per_source: dict[str, Tally] = {}
    total = Tally()
    for i in picked:
        row = rows[i]
        tally = audit_row(row, renderer, f"{split} row {i} ({row.source})")
        per_source.setdefault(row.source, Tally()).add(tally)
        total.add(tally)
    return Audit(renderer.name, fmt, split, renderer.counts_with, per_source, total, len(picked), len(rows))


def compare(audit: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Put mixer's own token estimate beside each audited source (``audit["sources"][s]["estimate"]``):
    the manifest's ``token_counts.selected`` rendered and assistant counts and the template's
    ratios to them. Only when every written train row of the source was audited; rows the export
    rejected are still in mixer's estimate, so they are counted (``export_rejected``)."""
    if audit.get("split") != "train":
        return
    written = (manifest.get("export") or {}).get("sources") or {}
    for name, t in audit["sources"].items():
        entry = (manifest.get("sources") or {}).get(name) or {}
        counts = (entry.get("token_counts") or {}).get("selected")
        rejected = sum((((written.get(name) or {}).get("rejected") or {}).get("train") or {}).values())
        if not counts or t["rows"] != entry.get("rows_selected", -1) - rejected:
            continue
        t["estimate"] = {"rendered": counts["rendered"], "assistant": counts["assistant"],
                         "rendered_ratio": round(t["rendered_tokens"] / counts["rendered"], 4)
                         if counts["rendered"] else None,
                         "trainable_ratio": round(t["trainable_tokens"] / counts["assistant"], 4)
                         if counts["assistant"] else None,
                         "export_rejected": rejected}


def summary(audit: dict[str, Any]) -> str:
    """The manifest's ``audit`` section as the lines a build prints under its table, with the
    template's token counts beside mixer's estimate where :func:`compare` put one."""
    total = audit["total"]
    lines = [f"audit with {audit['template']} ({audit['audited']:,} {audit['split']} rows, tokens counted with "
             f"{audit['tokens_counted_with']}): "
             + (f"{total['problem_rows']:,} would train differently from what the recipe asked"
                if total["problem_rows"] else "every row renders what the recipe asked")]
    for name, t in audit["sources"].items():
        system, tools = t["system"], t["tools"]
        lines.append(f"  {name}: system prompt in system turn {system.get('system turn', 0):,}, first user turn "
                     f"{system.get('first user turn', 0):,}, absent {system.get('absent', 0):,}; tools in system turn "
                     f"{tools.get('system turn', 0):,}, first user turn {tools.get('first user turn', 0):,}, absent "
                     f"{tools.get('absent', 0) + tools.get('partly absent', 0):,}; rendered {t['rendered_tokens']:,} "
                     f"tokens, trainable {t['trainable_tokens']:,}" + _estimate(t.get("estimate")))
    for finding, example in total["examples"].items():
        lines.append(f"  {finding}  (e.g. {example})")
    return "\n".join(lines)


def _estimate(e: dict[str, Any] | None) -> str:
    if not e:
        return ""
    rejected = f"; {e['export_rejected']:,} export-rejected rows in it" if e["export_rejected"] else ""
    return (f" (mixer's estimate: rendered {e['rendered']:,}, assistant {e['assistant']:,}{rejected}; the template "
            f"renders {_ratio(e['rendered_ratio'])}, trains on {_ratio(e['trainable_ratio'])})")


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def build_encoding(manifest: dict[str, Any]) -> str:
    """What the build counted its tokens with (a tiktoken name or a model's tokenizer.json), so the
    audit counts like for like; cl100k_base when the manifest has none or the file is gone."""
    name = str((manifest.get("tokenizer") or {}).get("name") or "cl100k_base")
    if (name.endswith(".json") or "/" in name) and not Path(name).expanduser().exists():
        return "cl100k_base"
    return name


def table(result: Audit, found: dict[str, Any] | None = None) -> str:
    """The audit as a person reads it: one line per source, then the findings with an example each;
    with ``found`` (the audit as :func:`compare` left it), the ratios to mixer's own estimate."""
    header = ("source", "rows", "system: sys/user/absent", "tools: sys/user/absent", "injected", "2x-json",
              "errors", "rendered", "trainable")
    lines = [header]
    for name, t in [*result.sources.items(), ("total", result.total)]:
        lines.append((
            name, f"{t.rows:,}",
            f"{t.system['system turn']}/{t.system['first user turn']}/{t.system['absent']}",
            f"{t.tools['system turn']}/{t.tools['first user turn']}/{t.tools['absent'] + t.tools['partly absent']}",
            f"{t.injected:,}", f"{t.double_encoded:,}", f"{sum(t.errors.values()):,}",
            f"{t.rendered_tokens:,}", f"{t.trainable_tokens:,}"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = [f"audit of {result.format} rows ({result.split}: {result.sampled:,} of {result.rows:,}) with "
           f"{result.template}; tokens counted with {result.counted_with}"]
    for i, row in enumerate(lines):
        out.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip())
        if i == 0 or i == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    for name, t in ((found or {}).get("sources") or {}).items():
        if t.get("estimate"):
            out.append(f"  {name}: rendered {t['rendered_tokens']:,}, trainable {t['trainable_tokens']:,}"
                       + _estimate(t["estimate"]))
    for finding, example in result.total.examples.items():
        out.append(f"  {finding}  (e.g. {example})")
    out.append(f"{result.total.problems:,} of {result.sampled:,} rows would train differently from what the "
               "recipe asked" if result.total.problems else "every audited row renders what the recipe asked")
    return "\n".join(out)
