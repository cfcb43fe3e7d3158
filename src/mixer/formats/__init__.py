"""Trainer formats: canonical rows in, each trainer's own shape out.

Every format is a small module with ``convert(row) -> dict`` for one canonical row (as a
dict) that raises :class:`Unrepresentable` with a reason when the target cannot carry the
row, plus the ``datasets`` features that describe its output. Nothing is dropped silently:
:func:`export` returns the rejected rows with their reasons, and the build counts them in the
manifest and writes them to ``rejects.jsonl`` (or fails under ``--strict``).

| name            | for                                                   |
|-----------------|-------------------------------------------------------|
| ``canonical``   | mixer's own schema (chaining builds, inspection)      |
| ``trl``         | TRL SFTTrainer, axolotl ``chat_template``             |
| ``llama-factory`` | LLaMA-Factory sharegpt (+ ``dataset_info.json``)    |
| ``openai``      | OpenAI fine-tuning JSONL                              |
| ``torchtune``   | torchtune chat datasets (tools folded into system)   |
| ``text``        | plain-text trainers: chat template rendered, documents as is |
| ``prompt``      | RL trainers (TRL GRPO/RLOO): conversational ``prompt`` + ``tools`` |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mixer.formats.common import Unrepresentable
from mixer.formats import llama_factory, openai, prompt, text, torchtune, trl


@dataclass(frozen=True)
class Format:
    """One output format: how a row converts, what file type holds it, its datasets features."""

    name: str
    suffix: str  # "parquet" or "jsonl"
    convert: Callable[..., dict[str, Any]] | None  # None: canonical rows pass through
    features: Callable[[], Any] | None = None


FORMATS: dict[str, Format] = {
    "canonical": Format("canonical", "parquet", None),
    "trl": Format("trl", "parquet", trl.convert, trl.features),
    "llama-factory": Format("llama-factory", "jsonl", llama_factory.convert, llama_factory.features),
    "openai": Format("openai", "jsonl", openai.convert, openai.features),
    "torchtune": Format("torchtune", "jsonl", torchtune.convert, torchtune.features),
    "text": Format("text", "parquet", text.convert, text.features),
    "prompt": Format("prompt", "parquet", prompt.convert, prompt.features),
}


@dataclass
class Exported:
    """Converted rows of one split and the rows the format could not carry."""

    rows: list[dict[str, Any]]
    rejects: list[dict[str, Any]] = field(default_factory=list)


def export(frame: pl.DataFrame, fmt: Format, **options: Any) -> Exported:
    """Convert each canonical row; rows that cannot be represented are collected with reasons."""
    assert fmt.convert is not None
    out = Exported(rows=[])
    for row in frame.iter_rows(named=True):
        try:
            out.rows.append(fmt.convert(row, **options))
        except Unrepresentable as exc:
            out.rejects.append({"source": row["source"], "id": row["id"], "stage": f"export:{fmt.name}",
                                "reason": str(exc), "n_tokens": row["n_tokens"]})
    return out


def dataset_card(name: str, fmt: Format, splits: list[str]) -> str:
    """A README.md whose YAML header tells ``datasets.load_dataset`` the features and splits, so
    JSON Lines with tool schemas that differ across rows load as ``Json`` values, not as a
    struct type inferred from the first rows."""
    import datasets
    import yaml

    header: dict[str, Any] = {}
    if fmt.features is not None:
        header["dataset_info"] = datasets.DatasetInfo(features=fmt.features())._to_yaml_dict()
    header["configs"] = [{"config_name": "default",
                          "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}]
    return ("---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
            f"# {name}\n\nBuilt by mixer in the `{fmt.name}` format. `manifest.json` lists every source, "
            "its share and every file's sha256.\n")


__all__ = ["dataset_card", "FORMATS", "Exported", "Format", "Unrepresentable", "export"]
