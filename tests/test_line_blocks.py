"""JSON Lines split in bulk (numpy + Polars) gives exactly the lines, numbers, texts and
refusals of reading the file line by line in Python."""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixer.errors import DataError
from mixer.sources import files
from mixer.sources.files import Unreadable


def line_by_line(path: Path, limit_mb: float, array_ok: bool = False) -> list[tuple[int, object]]:
    """The reader as it was: Python's own line iteration (the specification)."""
    limit = int(limit_mb * 1_000_000)
    out: list[tuple[int, object]] = []
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if len(raw) > limit:
                out.append((lineno, ("too large", f"{len(raw) / 1e6:.1f} MB")))
                continue
            if not raw.strip():
                continue
            if lineno == 1 and raw.lstrip().startswith(b"[") and not array_ok:
                raise DataError("array")
            out.append((lineno, raw))
    return out


def in_bulk(path: Path, limit_mb: float, array_ok: bool = False) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    for block in files.line_blocks(path, limit_mb=limit_mb, array_ok=array_ok):
        for piece in block.slices(3):
            for number, text in zip(piece.numbers.tolist(), piece.texts.to_list()):
                raw = piece.raw(number)
                if isinstance(raw, Unreadable):
                    assert text is None
                    out.append((number, ("too large", raw.where)))
                    continue
                try:
                    assert text == raw.decode("utf-8")
                except UnicodeDecodeError:
                    assert text is None  # not UTF-8: left to the adapter, which says where
                out.append((number, raw))
    return out


pieces = st.sampled_from([b"\n", b"\r\n", b" ", b"\t", b"\x0b", b"{", b"[", b"\"a\"", b"\xff", b"\xc3\xa9", b"\xe2\x80\xa8",
                          b"\xef\xbb\xbf", b"x" * 30, b"\x00", b"\n\n"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.lists(pieces, max_size=40).map(b"".join), block=st.integers(1, 64), bom=st.booleans(),
       array_ok=st.booleans())
def test_bulk_split_gives_what_line_by_line_reading_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          content: bytes, block: int, bom: bool, array_ok: bool) -> None:
    monkeypatch.setattr(files, "LINE_BLOCK", block)  # lines longer than a block, blocks of one line
    path = tmp_path / "f.jsonl"
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + content)
    limit_mb = 40 / 1e6  # lines over 40 bytes are too large
    try:
        expected = line_by_line(path, limit_mb, array_ok)
    except DataError:
        with pytest.raises(DataError, match="holds a JSON array, not JSON Lines"):
            in_bulk(path, limit_mb, array_ok)
        return
    assert in_bulk(path, limit_mb, array_ok) == expected
    assert [(n, r if isinstance(r, bytes) else ("too large", r.where)) for n, r in files.raw_lines(
        path, limit_mb=limit_mb, array_ok=array_ok)] == expected


def test_a_gzipped_file_splits_across_blocks_with_its_line_numbers(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "LINE_BLOCK", 1000)
    lines = [f'{{"n": {i}, "pad": "{"p" * (i % 97)}"}}' for i in range(2000)]
    lines[10] = "   "
    path = tmp_path / "f.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(("\n".join(lines)).encode())  # no newline after the last line
    got = [(n, t) for b in files.line_blocks(path) for n, t in zip(b.numbers.tolist(), b.texts.to_list())]
    assert len(got) == 1999 and got[10] == (12, lines[11] + "\n") and got[-1] == (2000, lines[-1])


def test_even_pieces_of_a_block_never_leave_a_sliver() -> None:
    import numpy as np
    import polars as pl

    n = 10_300
    block = files.LineBlock(b"", np.arange(1, n + 1), np.zeros(n, np.int64), np.zeros(n, np.int64),
                            pl.Series([""] * n), {})
    assert [len(p.numbers) for p in block.slices(10_000)] == [5150, 5150]
    assert sorted({len(p.numbers) for p in block.slices(3)}) == [2, 3]
    assert sum(len(p.numbers) for p in block.slices(3)) == n
