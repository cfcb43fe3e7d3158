"""Augmentation pools: system prompts, tool catalogs and document requests.

Built-in pools ship as package data under ``pools/data`` (written by the mixer team and
versioned with the package); users add their own files. Pools are loaded once per build and
turned into arrays that transforms gather from, so no per-row Python runs on the hot path.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

BUILTIN_FILES = {
    "system_prompts": "system_prompts.jsonl",
    "tools": "tools.jsonl",
    "requests": "requests.jsonl",
    "no_call_answers": "no_call_answers.jsonl",
}


def builtin_records(name: str) -> list[dict[str, Any]]:
    """The records of a built-in pool file, in file order."""
    text = resources.files("mixer.pools").joinpath("data", BUILTIN_FILES[name]).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def version() -> str:
    """A short fingerprint of the built-in pools, recorded in the manifest."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(BUILTIN_FILES):
        digest.update(resources.files("mixer.pools").joinpath("data", BUILTIN_FILES[name]).read_bytes())
    return digest.hexdigest()[:16]
