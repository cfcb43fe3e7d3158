"""Text normalization, tokens and word n-gram hashes for dedup and decontamination.

Normalization: NFKC (applied to the rows that contain compatibility characters, the only ones
it changes apart from rare composed accents), lower case, and any run of spaces, tabs or
newlines treated as one separator. Tokens are the whitespace-separated words; hashes are
computed in bulk with Polars and numpy and compared only within one process, so they need
not be stable across library versions.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

# Characters NFKC rewrites that occur in real text: NBSP and odd spaces, ligatures, full-width
# forms, super/subscripts, ellipsis, circled numbers, combining accents (code point ranges).
_COMPAT_RANGES = np.array([(0xA0, 0xA0), (0xA8, 0xA8), (0xAA, 0xAA), (0xAF, 0xAF), (0xB2, 0xB5), (0xB8, 0xBA),
                           (0xBC, 0xBE), (0x300, 0x36F), (0x2000, 0x200A), (0x2024, 0x2026), (0x202F, 0x202F),
                           (0x2033, 0x2037), (0x205F, 0x205F), (0x2070, 0x209F), (0x2100, 0x218F),
                           (0x2460, 0x24FF), (0x3000, 0x3000), (0xFB00, 0xFB4F), (0xFF00, 0xFFEF)], dtype=np.int64)
_COMPAT = "[" + "".join(rf"\x{{{a:04X}}}" if a == b else rf"\x{{{a:04X}}}-\x{{{b:04X}}}"
                        for a, b in _COMPAT_RANGES.tolist()) + "]"
_BASE = np.uint64(0x100000001B3)  # FNV prime: the polynomial base for sequence hashes


def row_text(frame: pl.DataFrame, key: str = "conversation") -> pl.Expr:
    """The text of a canonical row that dedup and decontamination look at.

    ``conversation``: system prompt and every turn with its role; ``user``: user turns only;
    ``text``: the document body (chats fall back to their conversation).
    """
    turns = pl.col("messages").list.eval(
        pl.concat_str([pl.element().struct.field("role"), pl.element().struct.field("content")], separator=": ")
    ).list.join("\n")
    user = pl.col("messages").list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
    ).list.join("\n")
    conversation = pl.concat_str([pl.col("system").fill_null(""), turns], separator="\n")
    chat = {"conversation": conversation, "user": user, "text": conversation}[key]
    return pl.when(pl.col("kind") == "document").then(pl.col("text")).otherwise(chat).fill_null("")


def normalize(texts: pl.Series) -> pl.Series:
    """NFKC where it matters, lower case, tabs and newlines as spaces."""
    return _compat(texts).str.replace_many(["\r", "\n", "\t"], [" ", " ", " "]).str.to_lowercase()


def _compat(texts: pl.Series) -> pl.Series:
    """NFKC applied to the texts with a compatibility character; only non-ASCII texts (their
    byte and character lengths differ, a cheap test) are searched for one."""
    texts = texts.fill_null("")
    wide = np.flatnonzero((texts.str.len_bytes() != texts.str.len_chars()).to_numpy())
    if len(wide):
        odd = wide[texts.gather(wide).str.contains(_COMPAT).to_numpy()]
        if len(odd):
            texts = texts.scatter(odd, texts.gather(odd).str.normalize("NFKC"))
    return texts


def tokens(texts: pl.Series, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(row, token hash)`` for every whitespace-separated token of every normalized text."""
    words = (
        pl.DataFrame({"w": normalize(texts).str.split(" ")}).with_row_index("row")
        .explode("w").filter(pl.col("w").str.len_bytes() > 0)
    )
    return (words.get_column("row").to_numpy().astype(np.int64),
            words.get_column("w").hash(seed=seed).to_numpy())


def sequence_keys(texts: pl.Series, seed: int = 0) -> np.ndarray:
    """One uint64 per text identifying its token sequence (so spacing and case do not matter).

    The hash of the normalized text with runs of spaces made single and the ends trimmed:
    two texts get the same string exactly when their whitespace-separated tokens are equal.
    Worked on the texts' UTF-8 bytes with numpy, a few megabytes at a time (they stay in the
    CPU's cache, and numpy, Arrow and Polars let go of the GIL, so pieces run on every core):
    half the work of string passes (the keys of 500k conversations: 2.2 -> 1.1 CPU-seconds).
    """
    texts = texts.fill_null("")
    pieces = _pieces(texts)
    if len(pieces) == 1:
        return _piece_keys(pieces[0], seed)
    with ThreadPoolExecutor(max_workers=min(len(pieces), pl.thread_pool_size())) as pool:
        return np.concatenate(list(pool.map(lambda piece: _piece_keys(piece, seed), pieces)))


_PIECE_BYTES = 1 << 20  # text worked on at once by sequence_keys: its byte arrays stay in the cache (measured best)


def _pieces(texts: pl.Series) -> list[pl.Series]:
    """Consecutive slices of ``texts`` of about ``_PIECE_BYTES`` each (a longer text alone)."""
    ends = np.cumsum(texts.str.len_bytes().to_numpy(), dtype=np.int64)
    pieces, start = [], 0
    while start < len(texts) or not pieces:
        stop = max(start + 1, int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _PIECE_BYTES, "right")))
        pieces.append(texts.slice(start, stop - start))
        start = stop
    return pieces


def _piece_keys(texts: pl.Series, seed: int, compat: bool = True) -> np.ndarray:
    """:func:`sequence_keys` of one piece. The texts with a character NFKC would change are done
    again from their NFKC form; those with a character whose lower case is not ASCII's are
    lower-cased again by Polars (the bytes only had their ASCII letters lowered)."""
    squeezed, odd, cased = _squeezed(texts, compat)
    keys = squeezed.hash(seed=seed).to_numpy().copy()
    if cased.any():
        keys[cased] = squeezed.filter(pl.Series(cased)).str.to_lowercase().hash(seed=seed).to_numpy()
    if odd.any():
        keys[odd] = _piece_keys(texts.filter(pl.Series(odd)).str.normalize("NFKC"), seed, compat=False)
    return keys


def _squeezed(texts: pl.Series, compat: bool) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """The texts with separators as spaces, ASCII letters lowered, runs of spaces made one and
    the ends trimmed; and which rows have a character NFKC would change (``compat``) and which
    one whose lower case Polars would change (other than ASCII letters)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(texts)
    array = pc.ascii_lower(texts.str.replace_many(["\r", "\n", "\t"], [" ", " ", " "]).to_arrow()
                           .cast(pa.large_string()))
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset:array.offset + n + 1]
    buf = np.frombuffer(data, dtype=np.uint8)[bounds[0]:bounds[-1]] if data is not None else np.zeros(0, np.uint8)
    bounds = bounds - bounds[0]
    odd, cased = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    lead = np.flatnonzero(buf >= 0xC0)  # the first byte of each non-ASCII character
    if len(lead):
        points = _code_points(buf, lead)
        row = np.searchsorted(bounds, lead, side="right") - 1
        if compat:
            odd[row[_within(points, _COMPAT_RANGES)]] = True
        distinct, which = np.unique(points, return_inverse=True)
        chars = pl.Series([chr(c) for c in distinct.tolist()], dtype=pl.String)
        cased[row[(chars.str.to_lowercase() != chars).to_numpy()[which]]] = True
    space = buf == 32
    # a space goes when the byte before it is a space or it begins its row: a leading run goes,
    # any other run keeps its first space
    drop = np.empty_like(space)
    np.logical_and(space[1:], space[:-1], out=drop[1:])
    starts = bounds[:-1][bounds[:-1] < len(buf)]
    drop[starts] = space[starts]
    kept = buf[~drop]
    ends = bounds[1:] - np.cumsum(np.bincount(np.searchsorted(bounds, np.flatnonzero(drop), side="right") - 1,
                                              minlength=n))
    # a row that ended in spaces still ends in one: it goes too
    trailing = (ends > np.concatenate(([0], ends[:-1]))) & (kept[np.maximum(ends - 1, 0)] == 32) if len(kept) \
        else np.zeros(n, dtype=bool)
    if trailing.any():
        kept = np.delete(kept, ends[trailing] - 1)
        ends = ends - np.cumsum(trailing)
    squeezed = pa.LargeStringArray.from_buffers(n, pa.py_buffer(np.concatenate(([0], ends))), pa.py_buffer(kept))
    return pl.Series(texts.name, squeezed), odd, cased


def _code_points(buf: np.ndarray, lead: np.ndarray) -> np.ndarray:
    """The code points of the UTF-8 characters whose first bytes are at ``lead``."""
    last = len(buf) - 1
    follow = [buf[np.minimum(lead + i, last)].astype(np.int64) & 0x3F for i in (1, 2, 3)]
    first = buf[lead].astype(np.int64)
    two = ((first & 0x1F) << 6) | follow[0]
    three = ((first & 0x0F) << 12) | (follow[0] << 6) | follow[1]
    four = ((first & 0x07) << 18) | (follow[0] << 12) | (follow[1] << 6) | follow[2]
    return np.where(first < 0xE0, two, np.where(first < 0xF0, three, four))


def _within(points: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Which code points fall in one of the sorted, disjoint ``(first, last)`` ranges."""
    at = np.searchsorted(ranges[:, 0], points, side="right") - 1
    return (at >= 0) & (points <= ranges[np.maximum(at, 0), 1])


def ngram_hashes(texts: pl.Series, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(row, hash)`` for every n-token window inside one text (texts shorter than n give none)."""
    rows, h = tokens(texts, seed)
    if len(h) < n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    grams = _windows(h, n)
    count = len(grams)
    same_row = rows[:count] == rows[n - 1 :]
    return rows[:count][same_row], grams[same_row]


def _powers(k: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.cumprod(np.concatenate(([np.uint64(1)], np.full(k - 1, _BASE, dtype=np.uint64))), dtype=np.uint64)


def _windows(h: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash of every length-n window, by doubling: O(log n) passes, not n."""
    with np.errstate(over="ignore"):
        spans = {1: h}
        length = 1
        while length * 2 <= n:
            prev = spans[length]
            spans[length * 2] = prev[: len(prev) - length] * _powers(length + 1)[length] + prev[length:]
            length *= 2
        acc, size = None, 0
        for part in sorted(spans, reverse=True):
            if size + part > n:
                continue
            piece = spans[part]
            if acc is None:
                acc, size = piece, part
            else:
                acc = acc[: len(acc) - part] * _powers(part + 1)[part] + piece[size:]
                size += part
        assert acc is not None and size == n
        return acc
