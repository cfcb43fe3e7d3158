"""All randomness in mixer comes from here: stable hashes of (seed, purpose, row).

Nothing draws from a global RNG. A row's draw for a purpose is a pure function of the recipe
seed, a salt naming the purpose (e.g. ``"select"``, ``"split"``, ``"order"``), the row's
content hash and, where it matters, a repeat index. That is what makes selection nested,
independent of other sources, and identical whatever the batch size or thread count.

Hashes are blake2b (content) and SplitMix64 (mixing), both stable across library versions,
unlike ``pl.Expr.hash``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import numpy as np
import polars as pl

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def content_hash(text: str) -> str:
    """16 hex characters of blake2b: the stable content part of a row id."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def content_hashes(texts: pl.Series) -> pl.Series:
    """:func:`content_hash` of every (non-null) string of a column, hashed from the column's
    UTF-8 bytes in place: no Python string is made or encoded per row (twice as fast)."""
    from mixer.pyexpr import utf8_buffer

    offsets, view = utf8_buffer(texts)
    bounds = offsets.tolist()
    blake2b = hashlib.blake2b
    digests = pl.Series([blake2b(view[a:b], digest_size=8).digest() for a, b in zip(bounds, bounds[1:])],
                        dtype=pl.Binary)
    return pl.select(pl.when(texts.is_not_null()).then(digests.bin.encode("hex"))).to_series().alias(texts.name)


def salt(*parts: object) -> np.uint64:
    """A 64-bit constant from the seed and purpose names, e.g. ``salt(seed, "select")``."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def generator(seed: int, *purpose: object) -> np.random.Generator:
    """A NumPy generator for draws that are not per row (e.g. a sweep's Dirichlet weights),
    seeded from the seed and purpose names like every other draw."""
    return np.random.default_rng(int(salt(seed, *purpose)))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer, vectorized: a bijective, well-mixed uint64 -> uint64."""
    return _mixed(np.array(x, dtype=np.uint64, copy=True))


def _mixed(z: np.ndarray) -> np.ndarray:
    """:func:`splitmix64` of ``z`` in place (``z`` returned): one scratch array for the shifts,
    where each ``z >> k`` was a temporary of its own (80 MB each at 10M rows)."""
    scratch = np.empty_like(z)
    with np.errstate(over="ignore"):
        z += _GOLDEN
        z ^= np.right_shift(z, np.uint64(30), out=scratch)
        z *= _M1
        z ^= np.right_shift(z, np.uint64(27), out=scratch)
        z *= _M2
        z ^= np.right_shift(z, np.uint64(31), out=scratch)
    return z


def row_keys(ids: pl.Series | Iterable[str]) -> np.ndarray:
    """The uint64 content key of each canonical id (``source/hex16``, ``source/hex16.k``).

    ``.k`` numbers identical rows within a source; a ``#r`` repeat suffix is ignored.

    The key ignores the source name, so renaming a source does not change its selection.
    """
    ids = ids if isinstance(ids, pl.Series) else pl.Series(list(ids), dtype=pl.String)
    if len(ids) > _KEY_SLICE:  # the parse makes two string columns of every id: a slice at a time
        return _sliced(row_keys, ids)
    # "hex16", "hex16.k", "hex16#r" or "hex16.k#r": what follows the source name's slash
    tail = pl.select(pl.lit(ids).str.slice(pl.lit(ids).str.find("/", literal=True).fill_null(-1) + 1)).to_series()
    base = tail.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64).to_numpy()
    dotted = tail.str.slice(16, 1) == "."
    occurrence = np.zeros(len(ids), dtype=np.uint64)
    if dotted.any():  # most ids have no .k: skip the parse
        number = tail.str.slice(17).str.split("#").list.first().cast(pl.UInt64, strict=False).fill_null(0)
        occurrence = (number * dotted.cast(pl.UInt64)).to_numpy()
    with np.errstate(over="ignore"):
        return splitmix64(base ^ splitmix64(occurrence))


_KEY_SLICE = 1_000_000  # ids parsed at once by row_keys and repeat_index


def _sliced(parse: Callable[[pl.Series], np.ndarray], ids: pl.Series) -> np.ndarray:
    return np.concatenate([parse(ids.slice(i, _KEY_SLICE)) for i in range(0, len(ids), _KEY_SLICE)])


def repeat_index(ids: pl.Series) -> np.ndarray:
    """The repeat number of each id: 0 for a first copy, r for ``...#r`` (an upsampled copy)."""
    if len(ids) > _KEY_SLICE:
        return _sliced(repeat_index, ids)
    if not ids.str.contains("#", literal=True).any():
        return np.zeros(len(ids), dtype=np.uint64)
    suffix = ids.str.split("#").list.get(1, null_on_oob=True)
    return suffix.cast(pl.UInt64).fill_null(0).to_numpy()


def draw(keys: np.ndarray, seed_salt: np.uint64, repeat: np.ndarray | int = 0) -> np.ndarray:
    """Per-row uint64 draws for one purpose; ``repeat`` gives upsampled copies fresh draws."""
    with np.errstate(over="ignore"):
        rep = np.asarray(repeat, dtype=np.uint64)
        z = np.array(keys, dtype=np.uint64, copy=True)  # one fresh array, mixed in place
        z ^= seed_salt
        z = _mixed(z)
        if rep.any():  # adding 0 changes nothing: no temporary for first copies
            z += rep * _GOLDEN
        return _mixed(z)


def uniform(draws: np.ndarray) -> np.ndarray:
    """Map uint64 draws to floats in [0, 1) using the top 53 bits."""
    return (draws >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
