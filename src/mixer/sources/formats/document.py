"""Plain documents: the ``text_field`` column becomes ``text``; ``title`` is kept in meta."""

from __future__ import annotations

from typing import Any

from mixer.specs import Source
from mixer.sources.adapters import Row, RowError
from mixer.sources.formats import InputFormat


def document(record: dict[str, Any], source: Source) -> Row:
    """A plain document: the ``text_field`` column becomes ``text``; ``title`` is kept in meta."""
    text = record.get(source.text_field)
    if not isinstance(text, str):
        raise RowError(f"document rows need a string {source.text_field!r} field")
    if not text.strip():
        raise RowError("empty document text")
    meta = {"title": record["title"]} if isinstance(record.get("title"), str) else {}
    return {"kind": "document", "system": None, "messages": [], "tools": [], "text": text, "meta": meta}


def _detect(columns: set[str], source: Source) -> bool:
    """A source declared ``kind = "document"`` is read as documents (only canonical comes first)."""
    return source.kind == "document" or source.text_field in columns


FORMAT = InputFormat("document", document, "{text_field!r}", _detect, order=50, kinds=("document",))
