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

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mixer.formats.common import Unrepresentable, decode_json, has_json_feature
from mixer.formats import common, llama_factory, openai, prompt, text, torchtune, trl


@dataclass(frozen=True)
class Format:
    """One output format: how a row converts, what file type holds it, its datasets features."""

    name: str
    suffix: str  # "parquet" or "jsonl"
    convert: Callable[..., dict[str, Any]] | None  # None: canonical rows pass through
    features: Callable[[], Any] | None = None
    tool_name: re.Pattern[str] | None = None  # the rule tool names must follow, if the format has one


FORMATS: dict[str, Format] = {
    "canonical": Format("canonical", "parquet", None),
    "trl": Format("trl", "parquet", trl.convert, trl.features),
    "llama-factory": Format("llama-factory", "jsonl", llama_factory.convert, llama_factory.features),
    "openai": Format("openai", "jsonl", openai.convert, openai.features, openai.NAME),
    "torchtune": Format("torchtune", "jsonl", torchtune.convert, torchtune.features),
    "text": Format("text", "parquet", text.convert, text.features),
    "prompt": Format("prompt", "parquet", prompt.convert, prompt.features),
}


@dataclass
class Exported:
    """Converted rows of one split and the rows the format could not carry."""

    rows: list[dict[str, Any]]
    rejects: list[dict[str, Any]] = field(default_factory=list)
    renamed: list[dict[str, Any]] = field(default_factory=list)  # rows whose tools were renamed: source, id, names


def export(frame: pl.DataFrame, fmt: Format, rename_tools: bool = False, **options: Any) -> Exported:
    """Convert each canonical row; rows that cannot be represented are collected with reasons.

    With ``rename_tools``, tool names that break the format's rule are renamed to fit it first
    (:func:`common.rename_tools`), and each renamed row is recorded."""
    assert fmt.convert is not None
    out = Exported(rows=[])
    for row in frame.iter_rows(named=True):
        if rename_tools and fmt.tool_name is not None and row["kind"] == "chat":
            names = common.rename_tools(row, fmt.tool_name)
            if names:
                out.renamed.append({"source": row["source"], "id": row["id"], "names": names})
        try:
            out.rows.append(fmt.convert(row, **options))
        except Unrepresentable as exc:
            out.rejects.append({"source": row["source"], "id": row["id"], "stage": f"export:{fmt.name}",
                                "reason": str(exc), **({"detail": exc.detail} if exc.detail else {}),
                                "n_tokens": row["n_tokens"]})
    return out


def dataset_card(name: str, fmt: Format, files: list[Any]) -> str:
    """A README.md whose YAML header tells ``datasets.load_dataset`` the features and the exact files.

    The features make JSON Lines with tool schemas that differ across rows load as ``Json`` values,
    not as a struct type inferred from the first rows. The files are listed by name, never by glob,
    and the config's ``description`` carries a fingerprint of their sha256: ``datasets`` (4.x and
    5.x) keys its cache for a local folder on a hash of the card's configs and infos, so a glob card
    would give a rebuilt folder (or another folder of the same name) the cache of an older build,
    and ``load_dataset(out)`` would return the old rows. With the fingerprint, new bytes mean a new
    cache entry, always. ``files`` are :class:`mixer.writers.OutputFile` (path, split, sha256).
    """
    import yaml

    header: dict[str, Any] = {}
    features = fmt.features() if fmt.features is not None else None
    if features is not None:
        header["dataset_info"] = features_yaml(features)
    by_split: dict[str, list[str]] = {}
    for f in sorted(files, key=lambda f: f.path):
        by_split.setdefault(f.split, []).append(f.path)
    header["configs"] = [{"config_name": "default", "description": f"mixer build {fingerprint(files)}",
                          "data_files": [{"split": s, "path": paths} for s, paths in sorted(by_split.items())]}]
    return ("---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n"
            f"# {name}\n\nBuilt by mixer in the `{fmt.name}` format. `manifest.json` lists every source, "
            "its share and every file's sha256.\n")


def fingerprint(files: list[Any]) -> str:
    """sha256 over the output files' paths and content hashes: the identity of a build's data."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def features_yaml(features: Any) -> dict[str, Any]:
    """The ``dataset_info`` YAML of a card: the features as ``datasets`` itself writes them."""
    import datasets

    return datasets.DatasetInfo(features=features)._to_yaml_dict()


__all__ = ["dataset_card", "decode_json", "fingerprint", "has_json_feature", "FORMATS", "Exported", "Format", "Unrepresentable", "export"]
