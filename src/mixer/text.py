"""Text normalization, tokens and word n-gram hashes for dedup and decontamination.

Normalization: NFKC (applied to the rows that contain compatibility characters, the only ones
it changes apart from rare composed accents), lower case, and any run of spaces, tabs or
newlines treated as one separator. Tokens are the whitespace-separated words; hashes are
computed in bulk with Polars and numpy and compared only within one process, so they need
not be stable across library versions.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# Characters NFKC rewrites that occur in real text: NBSP and odd spaces, ligatures, full-width
# forms, super/subscripts, ellipsis, circled numbers, combining accents.
_COMPAT = (r"[\x{00A0}\x{00A8}\x{00AA}\x{00AF}\x{00B2}-\x{00B5}\x{00B8}-\x{00BA}\x{00BC}-\x{00BE}"
           r"\x{0300}-\x{036F}\x{2000}-\x{200A}\x{2024}-\x{2026}\x{202F}\x{2033}-\x{2037}\x{205F}"
           r"\x{2070}-\x{209F}\x{2100}-\x{218F}\x{2460}-\x{24FF}\x{3000}\x{FB00}-\x{FB4F}\x{FF00}-\x{FFEF}]")
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
    Runs are halved by literal passes (a regex is 5x slower); the first passes, the separators,
    the lower-casing and the search for characters NFKC would change run as one Polars query
    on the streaming engine, which spreads the rows over every core; the few texts with such a
    character are normalized again from their NFKC form, and those with a run still left are
    finished apart.
    """
    texts = texts.fill_null("")
    s = pl.col("s")
    found = (pl.LazyFrame({"s": texts})
             .select(_normal(s), odd=(s.str.len_bytes() != s.str.len_chars()) & s.str.contains(_COMPAT))
             .collect(engine="streaming"))
    norm = found.get_column("s")
    odd = np.flatnonzero(found.get_column("odd").to_numpy())
    if len(odd):
        norm = norm.scatter(odd, pl.select(_normal(pl.lit(texts.gather(odd).str.normalize("NFKC")))).to_series())
    spaced = np.flatnonzero(norm.str.contains("  ", literal=True).to_numpy())
    if len(spaced):  # a run longer than 2**_PASSES spaces
        runs = norm.gather(spaced)
        while runs.str.contains("  ", literal=True).any():
            runs = runs.str.replace_all("  ", " ", literal=True)
        norm = norm.scatter(spaced, runs)
    return norm.str.strip_chars(" ").hash(seed=seed).to_numpy()


def _normal(text: pl.Expr) -> pl.Expr:
    """Separators as spaces, runs of up to 2**_PASSES spaces made one, lower case."""
    single = text.str.replace_many(["\r", "\n", "\t"], [" ", " ", " "])
    for _ in range(_PASSES):
        single = single.str.replace_all("  ", " ", literal=True)
    return single.str.to_lowercase()


_PASSES = 2  # literal halvings in the streaming query: runs of up to 4 spaces become one


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
