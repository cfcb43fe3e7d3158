"""Near-duplicate clusters of text rows: MinHash signatures + LSH banding, vectorized.

Pipeline, each step over whole columns of a chunk of rows (no per-row Python):

1. Normalize (NFKC, lowercase) and split into words (``\\w+`` runs, so whitespace and
   punctuation differences vanish).
2. Shingle into word n-grams; hash each *distinct* word with blake2b and combine the n word
   hashes of a shingle positionally, finished by SplitMix64, so keys are stable across
   Polars/numpy versions (``pl.Expr.hash`` is not).
3. MinHash with ``permutations`` hash functions from the multiply-add-shift family
   ``h(x) = (a*x + b) >> 32`` on 32-bit shingle keys (2-independent; one multiply and one add
   per entry, which is what makes classic MinHash fast enough), computed in fixed-size
   blocks spread over threads.
4. LSH: rows sharing any band are candidates; a candidate pair is kept when the fraction of
   equal signature entries (the Jaccard estimate) reaches ``threshold``; kept pairs are merged
   by a vectorized union-find whose roots are the smallest row index.

Edge cases: null, empty and word-less texts have no shingles and stay alone. A text with
fewer than ``ngram`` words is one shingle (its whole word sequence), so two such texts
cluster exactly when their normalized words are identical.

Candidate recall follows the LSH S-curve ``1 - (1 - s**r)**bands`` with
``r = permutations // bands``; its midpoint ``(1/bands)**(1/r)`` (0.42 for the defaults)
should sit well below ``threshold``.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from mixer.rng import splitmix64 as _mix

__all__ = ["check_params", "clusters", "near_duplicate_clusters", "signatures"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_COMBINE = np.uint64(0x100000001B3)  # odd multiplier making the n-gram combine order-aware
_SHIFT32 = np.uint64(32)

_CHUNK_BYTES = 1 << 25  # text processed per pass; bounds the word/shingle arrays in memory
_BLOCK_BYTES = 1 << 22  # MinHash block (permutations x shingles x 8 B): measured sweet spot
_WINDOW = 16  # in an LSH bucket, compare each row with this many predecessors (and the first)
_VERIFY_PAIRS = 16_384  # candidate pairs verified per numpy step (bounds memory)


def near_duplicate_clusters(texts: pl.Series, *, threshold: float = 0.8, ngram: int = 5,
                            permutations: int = 128, bands: int = 32, seed: int = 0) -> np.ndarray:
    """Return an int64 array ``cluster`` of ``len(texts)``.

    Rows i and j share a cluster when they are (transitively) near-duplicates: their estimated
    Jaccard similarity of word ``ngram`` shingles is ``>= threshold``. A cluster's id is its
    smallest row index, so a row without near-duplicates has ``cluster[i] == i``.
    ``seed`` picks the MinHash functions; the result is deterministic for a given seed,
    whatever the thread count.

    This is :func:`signatures` then :func:`clusters`; a build that holds one chunk of rows at
    a time calls them separately (signatures per chunk, clusters on the signature table).
    """
    check_params(threshold, ngram, permutations, bands)
    signed, table = signatures(texts, ngram=ngram, permutations=permutations, seed=seed)
    return clusters(signed, table, threshold=threshold, bands=bands)


def signatures(texts: pl.Series, *, ngram: int = 5, permutations: int = 128,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row-local step: which rows have shingles (bool per row) and their MinHash signatures,
    shape ``(signed rows, permutations)`` uint32, in row order.

    A row's signature depends on its text alone, so signing a chunk at a time gives the rows
    of signing everything at once.
    """
    texts = _as_strings(texts)
    signed = np.zeros(len(texts), dtype=bool)
    parts: list[np.ndarray] = []
    for lo, hi in _row_chunks(texts):  # bounded memory: only signatures outlive a chunk
        lengths, word_hashes = _word_hashes(texts.slice(lo, hi - lo))
        keys, counts = _shingle_keys(lengths, word_hashes, ngram)
        rows = np.flatnonzero(counts)  # rows with at least one shingle; the others stay alone
        if len(rows):
            signed[rows + lo] = True
            parts.append(_minhash(keys, counts[rows], permutations, seed))
    table = np.concatenate(parts) if parts else np.empty((0, permutations), dtype=np.uint32)
    return signed, table


def clusters(signed: np.ndarray, table: np.ndarray, *, threshold: float = 0.8, bands: int = 32) -> np.ndarray:
    """Global step: the cluster of every row (smallest member index) from the signature table.

    ``signed`` marks the rows that have a signature; ``table`` holds those rows' signatures in
    row order (an array or a memory map). Rows without one stay alone.
    """
    cluster = np.arange(len(signed), dtype=np.int64)
    rows = np.flatnonzero(signed)
    if len(rows) < 2:
        return cluster
    roots = _lsh_components(table, threshold, bands)
    cluster[rows] = rows[roots]  # roots are the smallest member, and rows is increasing
    return cluster


def check_params(threshold: float, ngram: int, permutations: int, bands: int) -> None:
    """Reject parameters that would silently give meaningless clusters."""
    for name, value in (("ngram", ngram), ("permutations", permutations), ("bands", bands)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if permutations % bands:
        raise ValueError(
            f"permutations ({permutations}) must be a multiple of bands ({bands}) "
            "so every band has the same number of signature rows")


def _blake64(data: bytes) -> int:
    """A stable 64-bit hash of bytes (blake2b; unlike ``hash()``, the same in every process)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _as_strings(texts: pl.Series) -> pl.Series:
    """The texts as a String Series named ``t``; anything but text is a caller error."""
    if not isinstance(texts, pl.Series):
        raise TypeError(f"texts must be a polars Series, got {type(texts).__name__}")
    if texts.dtype == pl.Null or isinstance(texts.dtype, (pl.Categorical, pl.Enum)):
        texts = texts.cast(pl.String)
    if texts.dtype != pl.String:
        raise TypeError(f"texts must be a String Series, got {texts.dtype}")
    return texts.rename("t")


def _row_chunks(texts: pl.Series) -> list[tuple[int, int]]:
    """Consecutive row ranges of about ``_CHUNK_BYTES`` of text each (at least one row)."""
    if len(texts) == 0:
        return []
    ends = np.cumsum(texts.str.len_bytes().fill_null(0).to_numpy().astype(np.int64))
    cuts = np.searchsorted(ends, np.arange(_CHUNK_BYTES, ends[-1], _CHUNK_BYTES), side="right")
    bounds = np.unique(np.concatenate(([0], cuts, [len(texts)])))
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def _word_hashes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Normalize and tokenize; return (words per row, stable uint64 hash of every word in order).

    NFKC runs only on rows with non-ASCII characters (it is the identity on ASCII and the
    slowest step otherwise). Only distinct words are hashed in Python.
    """
    non_ascii = texts.str.contains(r"[^\x00-\x7F]").fill_null(False)
    if non_ascii.any():
        idx = non_ascii.arg_true()
        texts = texts.clone().scatter(idx, texts.gather(idx).str.normalize("NFKC"))
    # The streaming engine splits the regex work over threads and keeps row order.
    words = (texts.to_frame().lazy()
             .select(pl.col("t").str.to_lowercase().str.extract_all(r"\w+"))
             .collect(engine="streaming").to_series())
    lengths = words.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = words.explode(empty_as_null=False, keep_nulls=False)
    if len(flat) == 0:
        return lengths, np.empty(0, dtype=np.uint64)
    vocab = flat.unique(maintain_order=True)
    vocab_hashes = np.fromiter((_blake64(w.encode("utf-8")) for w in vocab.to_list()),
                               dtype=np.uint64, count=len(vocab))
    word_hashes = flat.replace_strict(vocab, pl.Series(vocab_hashes, dtype=pl.UInt64),
                                      return_dtype=pl.UInt64).to_numpy()
    return lengths, word_hashes


def _shingle_keys(lengths: np.ndarray, word_hashes: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit keys (held in uint64) of every row's word n-grams, rows contiguous; and counts.

    A shingle's key is ``mix(sum_j word_j * K**(n-1-j))``: the polynomial makes it
    position-aware (reordered words differ) at two array passes per word, and the final
    SplitMix64 spreads it before the top 32 bits are kept. A row with ``0 < length < ngram``
    words gets one shingle of all its words.
    """
    counts = np.where(lengths >= ngram, lengths - ngram + 1, np.minimum(lengths, 1))
    total_words = len(word_hashes)
    row_ends = np.cumsum(lengths)
    # Every word position starts a candidate n-gram; slices instead of gathers keep it cheap.
    h = np.zeros(total_words, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(min(ngram, total_words)):
            m = total_words - j
            h[:m] *= _COMBINE
            h[:m] += word_hashes[j:]
    # A position starts a full n-gram when at least ngram words of its row remain.
    remaining = np.repeat(row_ends, lengths) - np.arange(total_words)
    keys = h[remaining >= ngram]

    short_rows = np.flatnonzero((lengths > 0) & (lengths < ngram))
    if len(short_rows):
        starts = row_ends[short_rows] - lengths[short_rows]
        short = np.zeros(len(short_rows), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(ngram - 1):
                live = lengths[short_rows] > j
                short[live] = short[live] * _COMBINE + word_hashes[starts[live] + j]
        # Each short row owns one slot in row order; long rows' keys fill the rest in order.
        slots = np.cumsum(counts) - counts
        is_short = np.zeros(int(counts.sum()), dtype=bool)
        is_short[slots[short_rows]] = True
        merged = np.empty(len(is_short), dtype=np.uint64)
        merged[is_short] = short
        merged[~is_short] = keys
        keys = merged
    return _mix(keys) >> _SHIFT32, counts


def _hash_params(permutations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-permutation (a odd, b) for ``(a*x + b) >> 32``, derived from the seed with blake2b."""
    base = np.uint64(_blake64(repr(("mixer.neardup", int(seed))).encode("utf-8")))
    k = np.arange(2 * permutations, dtype=np.uint64)
    with np.errstate(over="ignore"):
        params = _mix(k * _GOLDEN ^ base)
    return params[:permutations] | np.uint64(1), params[permutations:]


def _minhash(keys: np.ndarray, counts: np.ndarray, permutations: int, seed: int) -> np.ndarray:
    """MinHash signatures, shape (rows, permutations) uint32, for rows with ``counts > 0``.

    Shingles are cut into fixed blocks (a long row may span several); each block computes all
    permutations as one (permutations x block) array, so numpy makes few, large calls and
    ``reduceat`` runs over contiguous memory. A row's
    first block owns its output slot; partial minima of rows continuing from an earlier block
    are merged afterwards, so threads never write the same slot.
    """
    a, b = _hash_params(permutations, seed)
    n_rows = len(counts)
    row_starts = np.cumsum(counts) - counts
    block = max(64, _BLOCK_BYTES // (8 * permutations))
    cuts = np.arange(0, len(keys), block)
    signatures = np.empty((n_rows, permutations), dtype=np.uint32)

    def work(block_ids: range) -> list[tuple[int, np.ndarray]]:
        # (permutations x block) so reduceat reduces contiguous runs, its fast path.
        buf = np.empty((permutations, block), dtype=np.uint64)
        carried: list[tuple[int, np.ndarray]] = []
        for i in block_ids:
            lo = int(cuts[i])
            hi = min(lo + block, len(keys))
            first = int(np.searchsorted(row_starts, lo, side="right")) - 1
            last = int(np.searchsorted(row_starts, hi, side="left"))  # rows first..last-1
            seg = np.maximum(row_starts[first:last], lo) - lo
            out = buf[:, : hi - lo]
            with np.errstate(over="ignore"):
                np.multiply(a[:, None], keys[lo:hi], out=out)
                out += b[:, None]
            mins = (np.minimum.reduceat(out, seg, axis=1) >> _SHIFT32).astype(np.uint32).T
            if row_starts[first] < lo:  # continues a row owned by an earlier block
                carried.append((first, mins[0]))
                signatures[first + 1: last] = mins[1:]
            else:
                signatures[first:last] = mins
        return carried

    n_blocks = len(cuts)
    workers = max(1, min(os.cpu_count() or 1, pl.thread_pool_size(), n_blocks))
    chunks = [range(n_blocks * w // workers, n_blocks * (w + 1) // workers) for w in range(workers)]
    if workers == 1:
        carried = work(chunks[0])
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            carried = [item for part in pool.map(work, chunks) for item in part]
    for row, partial in carried:
        np.minimum(signatures[row], partial, out=signatures[row])
    return signatures


def _band_keys(signatures: np.ndarray, band: int, rows_per_band: int) -> np.ndarray:
    """One uint64 per row summarizing its signature entries in ``band``."""
    h = np.zeros(len(signatures), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(band * rows_per_band, (band + 1) * rows_per_band):
            h = _mix(h * _COMBINE + signatures[:, c])
    return h


def _bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (u < v) among rows with equal band keys.

    Each bucket member is paired with its ``_WINDOW`` predecessors (by row index) and with
    the bucket's first row: all pairs for small buckets, linear work for huge ones (those are
    copies of one text, which the star edge to the first row already links).
    """
    order = np.argsort(keys, kind="stable")  # stable: members ascend by row within a bucket
    sorted_keys = keys[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    shared = np.zeros(len(keys), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    members = order[shared]
    new_bucket = np.ones(len(members), dtype=bool)
    new_bucket[1:] = sorted_keys[shared][1:] != sorted_keys[shared][:-1]
    pos = np.arange(len(members))
    start = np.maximum.accumulate(np.where(new_bucket, pos, 0))
    us: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    for d in range(1, _WINDOW + 1):
        sel = pos - d >= start
        if not sel.any():
            break
        us.append(members[pos[sel] - d])
        vs.append(members[pos[sel]])
    far = pos - start > _WINDOW
    us.append(members[start[far]])
    vs.append(members[far])
    return np.concatenate(us).astype(np.int64), np.concatenate(vs).astype(np.int64)


def _union(labels: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Merge the components of each (u, v) in place; every label ends as its component's minimum.

    Labels are kept fully compressed (each points at its root, roots point at themselves and
    are never larger than their members): hook the larger root under the smaller, then pointer-
    jump until compressed again; repeat while an edge still spans two roots.
    """
    while True:
        lu, lv = labels[u], labels[v]
        apart = lu != lv
        if not apart.any():
            return
        u, v, lu, lv = u[apart], v[apart], lu[apart], lv[apart]
        np.minimum.at(labels, np.maximum(lu, lv), np.minimum(lu, lv))
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels[:] = jumped


def _lsh_components(signatures: np.ndarray, threshold: float, bands: int) -> np.ndarray:
    """Component root (smallest member index) of every signature row under verified LSH pairs."""
    n, permutations = signatures.shape
    rows_per_band = permutations // bands
    needed = math.ceil(threshold * permutations - 1e-9)  # equal entries for estimate >= threshold
    labels = np.arange(n, dtype=np.int64)
    rejected = np.empty(0, dtype=np.int64)  # sorted u * n + v of pairs that failed verification
    for band in range(bands):
        u, v = _bucket_pairs(_band_keys(signatures, band, rows_per_band))
        if len(u) == 0:
            continue
        fresh = labels[u] != labels[v]  # already linked: nothing to learn
        u, v = u[fresh], v[fresh]
        pair_keys = u * n + v
        seen = np.isin(pair_keys, rejected, assume_unique=False)
        u, v, pair_keys = u[~seen], v[~seen], pair_keys[~seen]
        if len(u) == 0:
            continue
        ok = np.empty(len(u), dtype=bool)
        for lo in range(0, len(u), _VERIFY_PAIRS):
            hi = lo + _VERIFY_PAIRS
            equal = (signatures[u[lo:hi]] == signatures[v[lo:hi]]).sum(axis=1)
            ok[lo:hi] = equal >= needed
        rejected = np.union1d(rejected, pair_keys[~ok])
        _union(labels, u[ok], v[ok])
    return labels
