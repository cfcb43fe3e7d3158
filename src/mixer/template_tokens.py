"""Token counts as the trainer will see them: each row rendered with the target model's chat template.

With ``chat_template`` in a recipe (a ``.jinja`` file, a ``tokenizer_config.json``, a saved
tokenizer folder, or ``chatml``), budgets stop being an estimate (ChatML framing, 4 tokens a
turn, tool specs as JSON) and count what the model reads. Each chat row is converted to the
recipe's output format and read back as the trainer hands it to the template (the audit's
reading, :attr:`mixer.formats.Format.read_back`), rendered with transformers'
``apply_chat_template`` (tools passed as ``tools=``, a generation prompt for RL prompts), and
counted with the recipe's ``tokenizer`` (a model's ``tokenizer.json`` makes the count exact
for that model: its special tokens are single tokens):

- ``rendered``: the rendered text;
- ``assistant``: the assistant turns' content (what ``assistant_only_loss`` trains on; none
  for an RL prompt), counted as ``mixer audit`` counts ``trainable``;
- ``content``: the row as read, before the source's transforms, rendered the same way.

Documents count their text under every measure, as without a template. So a build's
``token_counts`` equal what ``mixer audit`` reports for the written rows with the same
template and tokenizer (tested); the price is one template render per row (benchmarks/).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mixer import formats, tokens
from mixer.audit import Renderer, load_renderer
from mixer.errors import RecipeError
from mixer.formats.common import Unrepresentable

NAMES = ("n_rendered", "n_content", "n_assistant")


def load(spec: str, tokenizer: str) -> Renderer:
    """The recipe's template, counting with the recipe's tokenizer; errors name the recipe key."""
    try:
        return load_renderer(spec, tokenizer)
    except RecipeError as exc:
        raise RecipeError(str(exc).replace("--template", "chat_template", 1)) from None


def counts(df: pl.DataFrame, renderer: Renderer, fmt: formats.Format,
           before: pl.DataFrame | None = None) -> pl.DataFrame:
    """``n_rendered``, ``n_content``, ``n_assistant`` of each row of ``df`` under the template;
    ``before`` is the same rows (by ``id``) as read, for ``content``."""
    if df.is_empty():
        return pl.DataFrame(schema={n: pl.UInt32 for n in NAMES})
    rendered, assistant = _render(df, renderer, fmt)
    content = rendered
    if before is not None:  # render again only the rows a transform changed
        old = df.select("id").join(before, on="id", how="left", maintain_order="left")
        diffs = [df.get_column(c).ne_missing(old.get_column(c)) for c in ("kind", "system", "messages", "tools", "text")]
        changed = pl.select(pl.any_horizontal(diffs)).to_series().to_numpy()
        if changed.any():
            content = rendered.copy()
            content[changed], _ = _render(old.filter(pl.Series(changed)), renderer, fmt)
    return pl.DataFrame({"n_rendered": rendered, "n_content": content, "n_assistant": assistant},
                        schema={n: pl.UInt32 for n in NAMES})


def _render(df: pl.DataFrame, renderer: Renderer, fmt: formats.Format) -> tuple[np.ndarray, np.ndarray]:
    """Rendered and assistant token counts of each row (documents: their text, twice)."""
    texts: list[str] = []
    answers: list[list[str]] = []
    for row in df.iter_rows(named=True):
        if row["kind"] != "chat":
            texts.append(row["text"] or "")
            answers.append([row["text"] or ""])
            continue
        messages, tools, generation = _as_trainer_sees(row, fmt)
        try:
            texts.append(renderer.render(messages, tools, generation))
        except Exception as exc:  # noqa: BLE001 - jinja's and the template's own raise_exception
            raise RecipeError(f"chat_template {renderer.name} cannot render row {row['id']} of source "
                              f"{row['source']!r}: {exc}. mixer audit shows which rows a template refuses; "
                              "fix the template or the rows, or drop chat_template to count the estimate") from None
        answers.append([] if generation else [m.get("content") or "" for m in messages if m["role"] == "assistant"])
    rendered = _lengths(texts, renderer)
    distinct = list(dict.fromkeys(a for row in answers for a in row))
    size = dict(zip(distinct, _lengths(distinct, renderer).tolist()))
    assistant = np.fromiter((sum(size[a] for a in row) for row in answers), dtype=np.uint32, count=len(answers))
    return rendered, assistant


def _as_trainer_sees(row: dict[str, Any], fmt: formats.Format) -> tuple[list[dict[str, Any]], Any, bool]:
    """The row written in ``fmt`` and read back as the trainer passes it to the template; a row
    the format cannot write (export will reject it) is read back as mixer's own row."""
    canonical = formats.FORMATS["canonical"]
    back = canonical.read_back(row)
    if fmt.converts and fmt.read_back is not None:
        try:
            back = fmt.read_back(fmt.convert(row))
        except Unrepresentable:
            pass
    messages, tools, generation, _ = back
    return messages, tools, generation


def _lengths(texts: list[str], renderer: Renderer) -> np.ndarray:
    """Token count of each text with the renderer's tokenizer: the recipe's encoding (tiktoken, on
    every core, or a model's tokenizer.json), or a saved tokenizer folder's own."""
    if not texts:
        return np.zeros(0, dtype=np.uint32)
    if renderer.encoding is not None:
        return tokens.encoded_lengths(texts, renderer.encoding)
    ids = renderer.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.uint32, count=len(texts))
