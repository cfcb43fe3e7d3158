"""Near-duplicate clustering (MinHash + LSH): what clusters, what must not, and stability."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mixer import neardup
from mixer.neardup import near_duplicate_clusters

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def vocabulary(size: int = 5000, seed: int = 0) -> np.ndarray:
    """Distinct pseudo-words of 3-9 letters (a fixed vocabulary for synthetic texts)."""
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(LETTERS, int(rng.integers(3, 10)))))
    return np.array(sorted(words))


VOCAB = vocabulary()


def random_words(rng: np.random.Generator, n: int) -> np.ndarray:
    return VOCAB[rng.integers(0, len(VOCAB), n)]


def substitute(words: np.ndarray, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``words`` with the given positions replaced by different vocabulary words."""
    out = words.copy()
    for p in positions:
        while out[p] == words[p]:
            out[p] = VOCAB[rng.integers(0, len(VOCAB))]
    return out


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Exact Jaccard of word n-gram sets, for stating a test's premise."""
    def shingles(t: str) -> set[tuple[str, ...]]:
        w = t.split()
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def text(words: np.ndarray) -> str:
    return " ".join(words)


@pytest.fixture(scope="module")
def planted() -> tuple[pl.Series, np.ndarray]:
    """2,000 distinct 100-word texts, then 100 near-copies (3 of 100 words substituted).

    Returns the texts and, for each copy (rows 2000..2099), the row of its source.
    """
    rng = np.random.default_rng(0)
    distinct = [random_words(rng, 100) for _ in range(2000)]
    sources = rng.choice(2000, 100, replace=False)
    copies = [substitute(distinct[s], rng.choice(100, 3, replace=False), rng) for s in sources]
    return pl.Series([text(w) for w in distinct + copies]), sources


def recall_and_false_merges(cluster: np.ndarray, sources: np.ndarray) -> tuple[int, int]:
    copies = np.arange(2000, 2100)
    recalled = int((cluster[copies] == cluster[sources]).sum())
    distinct_merged = int((cluster[:2000] != np.arange(2000)).sum())  # sources come first
    wrong_source = int(((cluster[copies] != sources) & (cluster[copies] != copies)).sum())
    return recalled, distinct_merged + wrong_source


# --- basic behaviour -----------------------------------------------------------------------


def test_exact_copies_and_one_word_edits_cluster_but_unrelated_text_does_not() -> None:
    rng = np.random.default_rng(1)
    base = random_words(rng, 100)
    edited = substitute(base, np.array([50]), rng)
    other = random_words(rng, 100)
    texts = pl.Series([text(base), text(other), text(base), text(edited)])
    assert jaccard(text(base), text(edited)) == pytest.approx(91 / 101)  # premise: J ~ 0.9
    cluster = near_duplicate_clusters(texts, threshold=0.8)
    assert cluster.dtype == np.int64
    assert cluster.tolist() == [0, 1, 0, 0]


def test_cluster_id_is_the_smallest_row_index_even_when_the_copy_comes_first() -> None:
    rng = np.random.default_rng(2)
    base = random_words(rng, 80)
    texts = pl.Series([text(random_words(rng, 80)), text(substitute(base, np.array([3]), rng)),
                       text(random_words(rng, 80)), text(base)])
    assert near_duplicate_clusters(texts).tolist() == [0, 1, 2, 1]


def test_many_exact_copies_larger_than_an_lsh_bucket_window_all_join_one_cluster() -> None:
    rng = np.random.default_rng(3)
    base = text(random_words(rng, 60))
    texts = []
    for _ in range(60):
        texts += [base, text(random_words(rng, 60))]
    cluster = near_duplicate_clusters(pl.Series(texts))
    assert (cluster[0::2] == 0).all()
    assert (cluster[1::2] == np.arange(1, 120, 2)).all()


def test_near_duplicates_are_merged_transitively_along_a_chain() -> None:
    rng = np.random.default_rng(4)
    chain = [random_words(rng, 100)]
    positions = rng.permutation(np.arange(5, 95, 10))  # spread out: each edit kills 5 shingles
    for p in positions[:5]:
        chain.append(substitute(chain[-1], np.array([p]), rng))
    first, last = text(chain[0]), text(chain[-1])
    assert jaccard(first, last) < 0.65  # premise: the ends alone are not near-duplicates
    assert near_duplicate_clusters(pl.Series([first, last])).tolist() == [0, 1]
    assert near_duplicate_clusters(pl.Series([text(w) for w in chain])).tolist() == [0] * 6


# --- normalization -----------------------------------------------------------------------


def test_case_whitespace_and_unicode_compatibility_variants_cluster() -> None:
    rng = np.random.default_rng(8)
    words = ["fi" + w for w in random_words(rng, 100)]  # every word can take the "ﬁ" ligature
    fullwidth = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyz"}  # NFKC -> ASCII
    variant_words = []
    for i, w in enumerate(words):
        w = w.replace("fi", "\ufb01", 1)
        if i % 3 == 0:
            w = "".join(fullwidth.get(c, c) for c in w)
        if i % 2 == 0:
            w = w.upper()
        variant_words.append(w)
    seps = ["\u00a0", "  ", "\t", "\n ", "\u2003"]
    variant = "".join(w + seps[i % len(seps)] for i, w in enumerate(variant_words))
    plain = " ".join(words)
    # Every variant word differs from its plain form before normalization, so without
    # NFKC + lowercasing no shingle would match.
    assert not set(variant.split()) & set(words)
    unrelated = text(random_words(rng, 100))
    cluster = near_duplicate_clusters(pl.Series([plain, unrelated, variant]), threshold=0.95)
    assert cluster.tolist() == [0, 1, 0]


def test_punctuation_differences_do_not_prevent_clustering() -> None:
    rng = np.random.default_rng(5)
    words = random_words(rng, 60)
    punctuated = ", ".join(words[:30]) + "! " + "; ".join(words[30:]) + "?"
    assert near_duplicate_clusters(pl.Series([text(words), punctuated]), threshold=0.95).tolist() == [0, 0]


# --- what must not cluster ---------------------------------------------------------------


@pytest.mark.parametrize("replaced", ["every_other_word", "second_half", "last_quarter"])
def test_texts_with_clearly_lower_similarity_do_not_cluster(replaced: str) -> None:
    rng = np.random.default_rng(6)
    base = random_words(rng, 100)
    positions = {"every_other_word": np.arange(0, 100, 2), "second_half": np.arange(50, 100),
                 "last_quarter": np.arange(75, 100)}[replaced]
    changed = substitute(base, positions, rng)
    assert jaccard(text(base), text(changed)) < 0.65  # premise (last_quarter: J ~ 0.59)
    assert near_duplicate_clusters(pl.Series([text(base), text(changed)]), threshold=0.8).tolist() == [0, 1]


def test_long_texts_are_compared_over_all_their_shingles() -> None:
    # 5,000 words spans several MinHash blocks; sharing only the first 1,000 words (J ~ 0.11)
    # must not look like a duplicate, while a one-word edit deep inside still does.
    rng = np.random.default_rng(7)
    long = random_words(rng, 5000)
    same_start = np.concatenate([long[:1000], random_words(rng, 4000)])
    edited_late = substitute(long, np.array([4321]), rng)
    cluster = near_duplicate_clusters(pl.Series([text(long), text(same_start), text(edited_late)]))
    assert cluster.tolist() == [0, 1, 0]


# --- planted duplicates ------------------------------------------------------------------


def test_planted_near_copies_are_found_with_few_false_merges(planted: tuple[pl.Series, np.ndarray]) -> None:
    texts, sources = planted
    # 3 substitutions kill up to 15 of 96 five-word shingles: true Jaccard is ~0.73-0.8, so
    # 0.8 would be the wrong bar; 0.6 leaves a margin of >3 standard errors of a 128-hash estimate.
    true_j = [jaccard(texts[int(s)], texts[2000 + i]) for i, s in enumerate(sources)]
    assert min(true_j) > 0.72
    recalled, false_merges = recall_and_false_merges(near_duplicate_clusters(texts, threshold=0.6), sources)
    assert recalled >= 95
    assert false_merges < 5


def test_planted_near_copies_with_smaller_shingles_at_the_default_threshold(
        planted: tuple[pl.Series, np.ndarray]) -> None:
    texts, sources = planted
    # With 2-word shingles, 3% substitutions leave a true Jaccard of ~0.89, above 0.8.
    recalled, false_merges = recall_and_false_merges(near_duplicate_clusters(texts, ngram=2), sources)
    assert recalled >= 95
    assert false_merges < 5


# --- degenerate rows ---------------------------------------------------------------------


def test_null_empty_and_wordless_texts_stay_alone() -> None:
    texts = pl.Series([None, "", "   ", "!!! ...", None, "", "!!! ..."], dtype=pl.String)
    assert near_duplicate_clusters(texts).tolist() == list(range(7))


def test_short_texts_cluster_only_with_identical_normalized_words() -> None:
    # Fewer than ngram words form one shingle, so identical word sequences (after
    # normalization) are duplicates and any difference is not.
    texts = pl.Series(["hello there", "Hello,  THERE!", "hello", "there hello", "hello there you",
                       None, "hello there"])
    assert near_duplicate_clusters(texts).tolist() == [0, 0, 2, 3, 4, 5, 0]


def test_empty_and_all_null_series() -> None:
    assert near_duplicate_clusters(pl.Series([], dtype=pl.String)).tolist() == []
    assert near_duplicate_clusters(pl.Series([None, None])).tolist() == [0, 1]
    assert near_duplicate_clusters(pl.Series(["only one text here at all"])).tolist() == [0]


# --- determinism -------------------------------------------------------------------------


def test_repeated_calls_give_identical_arrays(planted: tuple[pl.Series, np.ndarray]) -> None:
    texts, _ = planted
    first = near_duplicate_clusters(texts, threshold=0.6)
    second = near_duplicate_clusters(texts, threshold=0.6)
    np.testing.assert_array_equal(first, second)


def test_another_seed_still_finds_the_planted_duplicates(planted: tuple[pl.Series, np.ndarray]) -> None:
    texts, sources = planted
    for seed in (1, 12345):
        recalled, false_merges = recall_and_false_merges(
            near_duplicate_clusters(texts, threshold=0.6, seed=seed), sources)
        assert recalled >= 95
        assert false_merges < 5


def test_result_does_not_depend_on_polars_thread_count(planted: tuple[pl.Series, np.ndarray],
                                                      tmp_path: Path) -> None:
    texts, _ = planted
    # Borderline threshold, so any nondeterminism in signatures would likely show.
    expected = near_duplicate_clusters(texts, threshold=0.75)
    texts.to_frame("t").write_parquet(tmp_path / "texts.parquet")
    script = (
        "import sys, numpy as np, polars as pl\n"
        "from mixer.neardup import near_duplicate_clusters\n"
        "t = pl.read_parquet(sys.argv[1])['t']\n"
        "np.save(sys.argv[2], near_duplicate_clusters(t, threshold=0.75))\n"
    )
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "texts.parquet"), str(tmp_path / "out.npy")],
                   env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


@pytest.mark.parametrize("setting, value", [
    ("_CHUNK_BYTES", 20_000),  # ~30 texts per pass instead of one pass
    ("_BLOCK_BYTES", 8 * 128 * 40),  # 40-shingle MinHash blocks: every row spans several
])
def test_result_does_not_depend_on_internal_work_sizes(planted: tuple[pl.Series, np.ndarray],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       setting: str, value: int) -> None:
    texts, _ = planted
    expected = near_duplicate_clusters(texts, threshold=0.75)
    monkeypatch.setattr(neardup, setting, value)
    np.testing.assert_array_equal(near_duplicate_clusters(texts, threshold=0.75), expected)


# --- parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0.0}, {"threshold": -0.5}, {"threshold": 1.01}, {"threshold": float("nan")},
    {"ngram": 0}, {"ngram": -1}, {"ngram": 2.5},
    {"permutations": 0}, {"bands": 0}, {"permutations": 128, "bands": 30},
    {"permutations": 10, "bands": 20},
])
def test_bad_parameters_raise_value_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        near_duplicate_clusters(pl.Series(["a b c"]), **kwargs)


def test_non_string_input_is_rejected() -> None:
    with pytest.raises(TypeError):
        near_duplicate_clusters(pl.Series([1, 2, 3]))
