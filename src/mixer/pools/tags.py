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
    "language:de": "German (checked: German function words outnumber English ones)",
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


def _words(lang: str) -> str:
    return r"(?i)\b(?:" + "|".join(_FUNCTION_WORDS[lang].split()) + r")\b"


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


def _json(answers: pl.Series) -> np.ndarray:
    stripped = answers.str.strip_chars()
    out = np.zeros(len(answers), dtype=bool)
    for i in np.flatnonzero(stripped.str.contains(r"^[\[{]").fill_null(False).to_numpy()):
        try:
            json.loads(stripped[int(i)])
            out[i] = True
        except ValueError:
            pass
    return out


def _language(lang: str) -> Callable[[pl.Series], np.ndarray]:
    def met(answers: pl.Series) -> np.ndarray:
        own = answers.str.count_matches(_words(lang)).to_numpy()
        english = answers.str.count_matches(_words("en")).to_numpy()
        return (own >= 3) & (own > 2 * english)
    return met


def _japanese(answers: pl.Series) -> np.ndarray:
    kana = answers.str.count_matches(r"[\p{Hiragana}\p{Katakana}]").to_numpy()
    latin = answers.str.count_matches(r"[A-Za-z]").to_numpy()
    return (kana >= 10) & (kana > latin)


def _sentences(answers: pl.Series) -> np.ndarray:
    stripped = answers.str.strip_chars()
    ends = stripped.str.count_matches(_SENTENCE_END).to_numpy().astype(np.int64)
    open_tail = (~stripped.str.contains(r"[.!?…。！？][\"'”’)\]]*$")).to_numpy() & (stripped.str.len_chars() > 0).to_numpy()
    return ends + open_tail


def _never(answers: pl.Series) -> np.ndarray:
    return np.zeros(len(answers), dtype=bool)


def _always(answers: pl.Series) -> np.ndarray:
    return np.ones(len(answers), dtype=bool)


_CHECKS: dict[str, Callable[[pl.Series], np.ndarray]] = {
    "format:json": _json,
    "format:yaml": _never,
    "format:markdown": _never,
    "format:plain": lambda a: ~a.str.contains(_MARKDOWN).to_numpy(),
    "format:no_exclamation": lambda a: ~a.str.contains("!", literal=True).to_numpy(),
    "format:custom": _never,
    "language:user": _always,
    "language:local": _never,
    "language:de": _language("de"),
    "language:es": _language("es"),
    "language:fr": _language("fr"),
    "language:ja": _japanese,
    "length:brief": lambda a: a.str.count_matches(r"\S+").to_numpy() <= 100,
}


def satisfied(tag: str, answers: pl.Series) -> np.ndarray:
    """Per answer, whether it meets ``tag`` (``answers`` has no nulls)."""
    param = _PARAM.match(tag)
    if param is None:
        return np.asarray(_CHECKS[tag](answers), dtype=bool)
    what, limit = param.group(1), int(param.group(2))
    if what == "chars":
        size = answers.str.len_chars().to_numpy()
    elif what == "words":
        size = answers.str.count_matches(r"\S+").to_numpy()
    elif what == "bullets":
        size = answers.str.count_matches(_BULLET).to_numpy()
    else:
        size = _sentences(answers)
    return np.asarray(size <= limit, dtype=bool)
