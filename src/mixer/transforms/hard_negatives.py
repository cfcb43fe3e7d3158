"""Hard negatives for the ``tools`` transform: tools whose parameter slots *fit* the request.

Models tend to call a tool whenever the request's attributes fit its parameters, even when the
tool serves no legitimate goal (a ``send_email(to, body)`` beside a request to write a threat
letter, a bank transfer beside a scam). Unrelated tools never test that; these do. The kept
answer uses none of them, so the row teaches "fits, and still not called".

How a tool is chosen, so every pick can be explained:

1. **Intents** (:data:`INTENTS`): each has *cues* (words in a request) and *slots* (parameter
   names a tool needs to serve it) plus *verbs* (words in the tool's name or description).
2. At prepare time, a catalog tool fits an intent when one of its parameter names matches a
   slot and its name or description matches a verb (e.g. ``send_email`` with ``to`` and
   ``body`` fits "send a message"; a weather tool with ``location`` fits no intent).
3. Per row, the intents whose cues appear in the user turns are found; with probability
   ``hard_negatives`` the row gets one more tool: an intent drawn among those found, then a
   fitting tool drawn among that intent's tools (never one the row already has). The relevance
   guard does not apply to it: fitting is the point.
4. ``meta`` records why: ``"aug.N.hard_negatives": [{"tool": id, "intent": ..., "cue": word
   found in the request, "slot": the parameter that fits}]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from mixer.pools.catalog import Catalog

#: intent -> (request cues, parameter-name slots, tool verbs); all matched as whole words, case-insensitive.
INTENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "send a message": (
        ("email", "e-mail", "message", "letter", "text him", "text her", "threaten", "threat", "harass", "spam",
         "write to", "dm", "sms", "tell him", "tell her", "contact"),
        ("to", "recipient", "recipients", "body", "message", "text", "subject", "phone_number", "channel"),
        ("send", "email", "message", "sms", "post", "notify", "reminder", "draft")),
    "move money": (
        ("money", "pay", "payment", "bank", "transfer", "steal", "scam", "wire", "cash", "credit card", "launder",
         "bitcoin", "loan", "rob", "fraud"),
        ("amount", "account_id", "account", "iban", "currency", "payment_method", "card", "customer_id"),
        ("payment", "transfer", "refund", "invoice", "charge", "payout", "bank", "balance")),
    "find a person or place": (
        ("address", "where does", "where is", "locate", "track", "stalk", "location", "phone number", "lives",
         "find out where", "find someone", "home of"),
        ("address", "location", "query", "name", "email", "phone", "latitude", "longitude", "place"),
        ("search", "find", "lookup", "locate", "geocode", "nearby", "contacts", "employees", "directions")),
    "publish or share": (
        ("post", "share", "publish", "spread", "rumor", "rumour", "online", "social media", "tweet", "leak", "upload",
         "photos", "pictures", "expose"),
        ("text", "content", "file_id", "file", "channel", "audience", "visibility", "path", "message"),
        ("post", "share", "upload", "publish", "announcement", "message")),
    "get into data": (
        ("hack", "password", "delete", "erase", "records", "database", "spy", "private", "someone's account",
         "read her", "read his", "break into"),
        ("file_id", "path", "record_id", "query", "database", "table", "user_id", "patient_id", "employee_id"),
        ("delete", "query", "records", "search", "read", "export", "download", "get")),
    "buy or order": (
        ("buy", "purchase", "order", "gun", "drugs", "weapon", "poison", "get some", "sell"),
        ("product_id", "quantity", "sku", "item", "items", "cart_id", "order_id", "shipping_address"),
        ("order", "cart", "checkout", "purchase", "product", "shipment")),
}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9_]+", text.lower()))


def _any_word(options: tuple[str, ...], words: set[str], text: str) -> str | None:
    for option in options:
        if (" " in option or "-" in option or "'" in option) and option in text:
            return option
        if option in words:
            return option
    return None


@dataclass(frozen=True)
class Fits:
    """Per intent: the catalog indices of the tools that fit it and the parameter that fits."""

    tools: dict[str, np.ndarray]
    slots: dict[str, list[str]]

    @property
    def count(self) -> dict[str, int]:
        return {intent: len(idx) for intent, idx in self.tools.items()}


def fits(catalog: Catalog) -> Fits:
    """Which catalog tools fit which intent (a parameter slot and a verb), at prepare time."""
    tools: dict[str, list[int]] = {intent: [] for intent in INTENTS}
    slots: dict[str, list[str]] = {intent: [] for intent in INTENTS}
    for i, spec in enumerate(catalog.specs):
        fn = json.loads(spec)["function"]
        params = fn.get("parameters") or {}
        names = list((params.get("properties") or {}).keys()) if isinstance(params, dict) else []
        about = f"{fn['name'].replace('_', ' ')} {fn.get('description') or ''}".lower()
        about_words = _words(about) | set(fn["name"].lower().split("_"))
        for intent, (_, slot_names, verbs) in INTENTS.items():
            slot = next((n for n in names if n.lower() in slot_names), None)
            if slot is not None and _any_word(verbs, about_words, about) is not None:
                tools[intent].append(i)
                slots[intent].append(slot)
    return Fits({k: np.array(v, dtype=np.int64) for k, v in tools.items()}, slots)


def cue_patterns() -> dict[str, str]:
    """One case-insensitive whole-word regex per intent, for Polars."""
    return {intent: r"(?i)\b(?:" + "|".join(re.escape(c) for c in cues) + r")\b"
            for intent, (cues, _, _) in INTENTS.items()}


def detect(user: pl.Series) -> np.ndarray:
    """(rows x intents) booleans: which intents' cues each user text contains."""
    frame = pl.DataFrame({"u": user.fill_null("")})
    cols = frame.select(pl.col("u").str.contains(p).alias(i) for i, p in cue_patterns().items())
    return cols.to_numpy().astype(bool)


def cue_in(text: str, intent: str) -> str | None:
    """The cue of ``intent`` a request contains (for the record of why a tool fits)."""
    lowered = text.lower()
    return _any_word(INTENTS[intent][0], _words(lowered), lowered)
