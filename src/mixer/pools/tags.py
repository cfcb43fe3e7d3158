"""Constraint tags of system-prompt entries: what a prompt demands of the answer, and a check.

A system prompt that says "respond only with valid JSON" or "antworte auf Deutsch", attached
to a row whose English prose answer is kept, teaches the model to ignore its system prompt.
Built-in entries carry ``tags`` naming each constraint they impose on the *answer* (format,
language, length); user pool files may carry a ``tags`` column with the same vocabulary.
``system_prompt`` then gives a row with a kept assistant turn only prompts whose every tag
that answer meets (see :func:`satisfied`).

A tag's check errs on the side of "broken": when a property cannot be verified cheaply and
reliably (a YAML layout, a language decided by a random country), the tag is never met by a
kept answer, so such prompts go only to prompt-only rows.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable

import numpy as np
import polars as pl

from mixer.errors import RecipeError

KINDS = ("format", "language", "length")

#: tag -> what it demands of the answer, and how a kept answer is checked (``mixer pools``).
TAGS: dict[str, str] = {
    "format:json": "only a JSON value (checked: the answer parses as JSON)",
    "format:yaml": "only a YAML document (never met by a kept answer)",
    "format:markdown": "a prescribed Markdown layout (never met by a kept answer)",
    "format:plain": "plain text: no Markdown, no emoji (checked: no headings, bullets, emphasis, code, links, emoji)",
    "format:no_exclamation": "no exclamation marks (checked)",
    "format:custom": "a task-specific layout, labels or sign-off (never met by a kept answer)",
    "language:user": "the user's language (met: source answers are taken to follow their user's language)",
    "language:local": "the language of a country filled in at random (never met by a kept answer)",
    "language:de": "German (checked: 3 or more German function words, over twice the English ones)",
    "language:es": "Spanish (checked as for German)",
    "language:fr": "French (checked as for German)",
    "language:ja": "Japanese (checked: more kana than Latin letters)",
    "length:brief": "brief (checked: at most 100 words)",
    "length:chars<=N": "at most N characters (checked)",
    "length:words<=N": "at most N words (checked)",
    "length:sentences<=N": "at most N sentences (checked; abbreviations count as sentence ends)",
    "length:bullets<=N": "at most N bullet or numbered lines (checked)",
}

_PARAM = re.compile(r"^length:(chars|words|sentences|bullets)<=(\d+)$")

_MARKDOWN = (r"(?m)^\s{0,3}(?:#{1,6}\s|[-*+•]\s|\d+[.)]\s|>|```|\|.*\|)|\*\*|__|`[^`\n]+`"
             r"|\[[^\]\n]+\]\([^)\n]+\)|\p{Extended_Pictographic}")
_BULLET = r"(?m)^\s*(?:[-*+•]|\d+[.)])\s"
_SENTENCE_END = r"[.!?…。！？]+(?:[\s\"'”’)\]]|$)"
_FUNCTION_WORDS = {
    "en": "the and is are you to of that it for with this not have be was what your can",
    "de": "der die das und ist nicht ich sie ein eine zu mit auf für den es sich auch wie",
    "es": "el los las y es no que un una por para con del se lo como pero está",
    "fr": "le les et est pas je vous une des du pour que dans il elle sont avec ce",
}


def check(tag: str, where: str = "tags") -> str:
    """``tag`` if it is in the vocabulary (``length:*<=N`` with any N), else a RecipeError."""
    if tag in TAGS and "<=N" not in tag or _PARAM.match(tag):
        return tag
    close = difflib.get_close_matches(tag, list(TAGS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise RecipeError(f"{where}: unknown constraint tag {tag!r}{hint}; known: {', '.join(TAGS)}")


def matches(tag: str, pattern: str) -> bool:
    """Whether ``tag`` is selected by ``pattern``: the same tag, or its kind (``"language"``)."""
    return tag == pattern or tag.split(":", 1)[0] == pattern


def check_pattern(pattern: str, where: str) -> str:
    """A tag or a tag kind, as recipes give them in ``tags`` / ``exclude_tags``."""
    if pattern in KINDS:
        return pattern
    close = difflib.get_close_matches(pattern, list(KINDS), n=1)
    if close and ":" not in pattern:
        raise RecipeError(f"{where}: unknown tag kind {pattern!r} (did you mean {close[0]!r}?); "
                          f"kinds: {', '.join(KINDS)}, or a full tag such as format:json")
    return check(pattern, where)


class _Answers:
    """Answers plus the measures several tags share, each computed once on first use."""

    def __init__(self, answers: pl.Series) -> None:
        self.text = answers
        self._cache: dict[str, np.ndarray] = {}

    def measure(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = _MEASURES[name](self)
        return self._cache[name]


def _function_words(lang: str) -> Callable[[_Answers], np.ndarray]:
    """How many of a language's function words an answer holds (whole words between spaces:
    one Aho-Corasick pass, no regex)."""
    words = [f" {w} " for w in _FUNCTION_WORDS[lang].split()]

    def count(a: _Answers) -> np.ndarray:
        padded = " " + a.text.str.replace_all("\n", " ", literal=True) + " "
        return padded.str.extract_many(words, overlapping=True, ascii_case_insensitive=True).list.len().to_numpy()
    return count


def _json(a: _Answers) -> np.ndarray:
    stripped = a.text.str.strip_chars()
    out = np.zeros(len(stripped), dtype=bool)
    for i in np.flatnonzero(stripped.str.contains(r"^[\[{]").fill_null(False).to_numpy()):
        try:
            json.loads(stripped[int(i)])
            out[i] = True
        except ValueError:
            pass
    return out


def _kana(a: _Answers) -> np.ndarray:
    """Kana characters per answer, counted only in answers that are not pure ASCII."""
    out = np.zeros(len(a.text), dtype=np.int64)
    rows = np.flatnonzero((a.text.str.len_bytes() != a.text.str.len_chars()).to_numpy())
    if len(rows):
        out[rows] = a.text.gather(rows).str.count_matches(r"[\p{Hiragana}\p{Katakana}]").to_numpy()
    return out


def _sentences(a: _Answers) -> np.ndarray:
    stripped = a.text.str.strip_chars()
    ends = stripped.str.count_matches(_SENTENCE_END).to_numpy().astype(np.int64)
    open_tail = (~stripped.str.contains(r"[.!?…。！？][\"'”’)\]]*$")).to_numpy() & (stripped.str.len_chars() > 0).to_numpy()
    return ends + open_tail


_MEASURES: dict[str, Callable[[_Answers], np.ndarray]] = {
    "chars": lambda a: a.text.str.len_chars().to_numpy(),
    "words": lambda a: a.text.str.count_matches(r"\S+").to_numpy(),
    "sentences": _sentences,
    "bullets": lambda a: a.text.str.count_matches(_BULLET).to_numpy(),
    "latin": lambda a: a.text.str.count_matches(r"[A-Za-z]").to_numpy(),
    "kana": _kana,
    "json": _json,
    "markdown": lambda a: a.text.str.contains(_MARKDOWN).to_numpy(),
    "exclamation": lambda a: a.text.str.contains("!", literal=True).to_numpy(),
    **{f"words_{lang}": _function_words(lang) for lang in _FUNCTION_WORDS},
}


def _language(lang: str) -> Callable[[_Answers], np.ndarray]:
    def met(a: _Answers) -> np.ndarray:
        own, english = a.measure(f"words_{lang}"), a.measure("words_en")
        return (own >= 3) & (own > 2 * english)
    return met


def _japanese(a: _Answers) -> np.ndarray:
    kana = a.measure("kana")
    return (kana >= 10) & (kana > a.measure("latin")) if kana.any() else np.zeros(len(kana), dtype=bool)


def _never(a: _Answers) -> np.ndarray:
    return np.zeros(len(a.text), dtype=bool)


def _always(a: _Answers) -> np.ndarray:
    return np.ones(len(a.text), dtype=bool)


_CHECKS: dict[str, Callable[[_Answers], np.ndarray]] = {
    "format:json": lambda a: a.measure("json"),
    "format:yaml": _never,
    "format:markdown": _never,
    "format:plain": lambda a: ~a.measure("markdown"),
    "format:no_exclamation": lambda a: ~a.measure("exclamation"),
    "format:custom": _never,
    "language:user": _always,
    "language:local": _never,
    "language:de": _language("de"),
    "language:es": _language("es"),
    "language:fr": _language("fr"),
    "language:ja": _japanese,
    "length:brief": lambda a: a.measure("words") <= 100,
}


def satisfied_all(tags: list[str] | set[str], answers: pl.Series) -> dict[str, np.ndarray]:
    """Per tag, whether each answer meets it (``answers`` has no nulls); measures shared by
    several tags (word counts, sentence counts, ...) are computed once."""
    a = _Answers(answers)
    out = {}
    for tag in tags:
        param = _PARAM.match(tag)
        if param is None:
            out[tag] = np.asarray(_CHECKS[tag](a), dtype=bool)
        else:
            out[tag] = np.asarray(a.measure(param.group(1)) <= int(param.group(2)), dtype=bool)
    return out


def satisfied(tag: str, answers: pl.Series) -> np.ndarray:
    """Per answer, whether it meets ``tag`` (``answers`` has no nulls)."""
    return satisfied_all([tag], answers)[tag]
