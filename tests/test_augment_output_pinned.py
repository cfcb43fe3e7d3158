"""Augmentation output is pinned byte for byte: speed work on ``system_prompt`` and ``tools``
(the relevance guard, the draws, the meta notes) must not change a single output value.

The digests below were recorded from the code before the throughput work of issue 13 (item 4),
on the real HH-RLHF slice (with upsampled ``#r`` repeats) and on junk rows (empty turns,
unicode, mixed case, rows whose user text names catalog tools so the guard fires, rows that
already carry tools or a system prompt, refusals, JSON answers, documents). Each configuration
pins every column, the per-step counts and the manifest info separately, so a failure names
what changed. If an output change is *intended*, regenerate with
``python tests/test_augment_output_pinned.py`` and say why in the commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import HH, needs_shared, write_jsonl  # noqa: E402
from mixer import rng, transforms  # noqa: E402
from mixer.recipe import Source  # noqa: E402
from mixer.sources.read import read_source  # noqa: E402

EMPTY = "@@empty@@"  # the reader refuses empty turns; a library caller's frame may have them (see frames)
OWN = {"type": "function", "function": {"name": "get_weather", "description": "mine", "parameters": {"type": "object"}}}
CALL = [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]


def junk_records() -> list[dict[str, Any]]:
    """Edge cases for the guard, the draws and the notes."""
    u = lambda text: {"role": "user", "content": text}  # noqa: E731
    a = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    texts = [
        EMPTY, EMPTY + "space", EMPTY + "newlines", "?", "a", "ab", "abc", "ACT", "act", "Ｗｅａｔｈｅｒ", "WEATHER in Paris?", "weather",
        "What's the weather like tomorrow in Berlin? Also book a flight.", "getWeatherForecast please",
        "send_email to bob", "Send an E-Mail", "calendar.create_event", "İstanbul ıi KELVIN \u212aelvin straße ß",
        "naïve café résumé — “quotes” ‘single’", "日本語のテキスト、天気は？", "emoji 🌦️🌧️ weather 🙂",
        "zero\u200bwidth\u200bweather", "combining e\u0301vent", "tab\tseparated\tcalendar", "x" * 3000,
        "word " * 400, "0123456789 12345 abcde ABCDE", "re-schedule my meeting", "translate this to german",
        "\u0000nul byte weather", "currency EUR to USD conversion", "stock price of AAPL",
    ]
    records: list[dict[str, Any]] = []
    answers = ["I'm sorry, but I can't help with that.", "I\u2019m not able to do that.", "Sure, here it is.",
               "Can you tell me more?", json.dumps({"answer": "x"}), EMPTY, "Das ist gut so. Wirklich.",
               "  Sorry — I won\u2019t do that  ", "A" * 500 + "?"]
    for i, text in enumerate(texts):
        answer = answers[i % len(answers)]
        records.append({"messages": [u(text), a(answer)]})
        records.append({"messages": [u(text), a("ok"), u(texts[-1 - i]), a(answer)]})  # several user turns
        records.append({"messages": [u(text)]})  # prompt only
        records.append({"messages": [{"role": "system", "content": f"Existing {i}."}, u(text), a(answer)]})
        records.append({"messages": [u(text), a(answer)], "tools": [OWN]})  # already has a catalog name
        records.append({"messages": [u(text), {"role": "assistant", "content": "", "tool_calls": CALL},
                                     {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, a(answer)],
                        "tools": [OWN]})
    return records


def frames(tmp: Path) -> dict[str, pl.DataFrame]:
    """The pinned inputs: junk (always) and the HH slice with repeats (when ../shared/data is there)."""
    chats = read_source(Source(name="junk", path=str(write_jsonl(tmp / "junk.jsonl", junk_records()))))[0]
    blank = {EMPTY: "", EMPTY + "space": " ", EMPTY + "newlines": "\n\n"}
    content = pl.element().struct.field("content")
    chats = chats.with_columns(pl.col("messages").list.eval(pl.element().struct.with_fields(
        content.replace(list(blank), list(blank.values())))))
    docs = read_source(Source(name="junk", path=str(write_jsonl(tmp / "docs.jsonl", [{"text": "weather doc"},
                                                                                   {"text": "doc two"}])),
                              kind="document"))[0]
    junk = pl.concat([chats, docs, chats.head(40).with_columns(pl.col("id") + "#1"),
                      chats.head(40).with_columns(pl.col("id") + "#2")])
    out = {"junk": junk}
    if HH.exists():
        hh = read_source(Source(name="hh", path=str(HH / "test.jsonl.gz"), format="hh-rlhf"))[0]
        out["hh"] = pl.concat([hh, hh.head(300).with_columns(pl.col("id") + "#1"),
                               hh.head(300).with_columns(pl.col("id") + "#3")])
        out["hh-plain"] = hh  # answers all but distinct: the paths that do not group texts
    return out


BENCH = ({"type": "system_prompt", "p": 0.8}, {"type": "tools", "p": 0.6, "count": [1, 6]})
CONFIGS: dict[str, tuple[dict[str, Any], ...]] = {
    "bench": BENCH,
    "bench-noguard": (BENCH[0], {**BENCH[1], "guard": False}),
    "bench-small-slices": (BENCH[0], {**BENCH[1], "_chunk": 97}),
    "prompt-prepend-any": ({"type": "system_prompt", "p": 0.9, "mode": "prepend", "constraints": "any"},),
    "prompt-append-replace": ({"type": "system_prompt", "p": 0.5, "mode": "append", "separator": " | "},
                              {"type": "system_prompt", "p": 0.5, "mode": "replace"}),
    "tools-many": ({"type": "tools", "p": 1.0, "count": 8, "catalog": ["builtin", "generated"]},),
    "tools-zero-lo": ({"type": "tools", "p": 0.7, "count": [0, 3]},),
    "tools-system": ({"type": "system_prompt", "p": 0.5}, {"type": "tools", "p": 0.8, "count": [1, 4], "render": "system"}),
    "tools-both-block": ({"type": "tools", "p": 0.8, "count": [2, 3], "render": "both", "block": 2},),
    "tools-user": ({"type": "tools", "p": 0.8, "count": [1, 3], "render": "user"},),
    "tools-mask": ({"type": "tools", "p": 0.8, "count": [1, 5], "mask_names": True, "render": "both"},),
    "tools-hard": ({"type": "tools", "p": 0.9, "count": [1, 3], "hard_negatives": 0.7},),
}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=False).encode("utf-8")).hexdigest()[:16]


def fingerprint(frame: pl.DataFrame, specs: tuple[dict[str, Any], ...], seed: int) -> dict[str, str]:
    """Per output column, the steps' counts and the prepared info: one digest each."""
    chunk = {i: spec["_chunk"] for i, spec in enumerate(specs) if "_chunk" in spec}  # not a recipe option
    prepared = transforms.prepare(tuple({k: v for k, v in spec.items() if k != "_chunk"} for spec in specs),
                                  seed=seed, source="s")
    prepared = dataclasses.replace(prepared, steps=tuple(
        dataclasses.replace(step, applier=dataclasses.replace(step.applier, _chunk=chunk[i])) if i in chunk else step
        for i, step in enumerate(prepared.steps)))
    out, steps = prepared.apply(frame)
    prints = {f"column {name}": digest(out.get_column(name).to_list()) for name in out.columns}
    prints["steps"] = digest([[s.position, s.type, s.rows_in, s.rows_out, s.augmented] for s in steps])
    prints["info"] = digest(prepared.info)
    return prints


def record(tmp: Path) -> dict[str, dict[str, str]]:
    got = {}
    for data, frame in frames(tmp).items():
        got[f"{data} input"] = {"rows": digest(frame.to_dicts()), "keys": digest(rng.row_keys(frame["id"]).tolist())}
        for name, specs in CONFIGS.items():
            got[f"{data} {name}"] = fingerprint(frame, specs, seed=11)
    return got


#: Recorded from the code at main 3158e00 (before the speed work), seed 11.
EXPECTED: dict[str, dict[str, str]] = {'junk input': {'rows': '3ae3e2ae94904dd5', 'keys': '33dc95e93e941194'},
 'junk bench': {'column id': '071a2126c435490f',
                'column source': 'd2b4df92ec523110',
                'column kind': '194b1224a1a8c5af',
                'column system': 'bb0e30001719a1b0',
                'column messages': 'e1c085dd761e4455',
                'column tools': 'c76c3eb626efcd90',
                'column text': 'b4b47341f68addf2',
                'column meta': 'c8e1a50b1074a4a2',
                'column n_tokens': 'ef944cd173daa077',
                'steps': 'd5ed8efc829043c2',
                'info': 'a1c6029b7bc32dc4'},
 'junk bench-noguard': {'column id': '071a2126c435490f',
                        'column source': 'd2b4df92ec523110',
                        'column kind': '194b1224a1a8c5af',
                        'column system': 'bb0e30001719a1b0',
                        'column messages': 'e1c085dd761e4455',
                        'column tools': '5d3fd5227855962f',
                        'column text': 'b4b47341f68addf2',
                        'column meta': 'a5620aada3b1907e',
                        'column n_tokens': 'ef944cd173daa077',
                        'steps': 'd5ed8efc829043c2',
                        'info': 'a1c6029b7bc32dc4'},
 'junk bench-small-slices': {'column id': '071a2126c435490f',
                             'column source': 'd2b4df92ec523110',
                             'column kind': '194b1224a1a8c5af',
                             'column system': 'bb0e30001719a1b0',
                             'column messages': 'e1c085dd761e4455',
                             'column tools': 'c76c3eb626efcd90',
                             'column text': 'b4b47341f68addf2',
                             'column meta': 'c8e1a50b1074a4a2',
                             'column n_tokens': 'ef944cd173daa077',
                             'steps': 'd5ed8efc829043c2',
                             'info': 'a1c6029b7bc32dc4'},
 'junk prompt-prepend-any': {'column id': '071a2126c435490f',
                             'column source': 'd2b4df92ec523110',
                             'column kind': '194b1224a1a8c5af',
                             'column system': 'ec6cadd485ac8b8e',
                             'column messages': 'e1c085dd761e4455',
                             'column tools': 'f30ed55bbd05e0d4',
                             'column text': 'b4b47341f68addf2',
                             'column meta': '7642176e00d0fb06',
                             'column n_tokens': 'ef944cd173daa077',
                             'steps': '2be20011af4c0206',
                             'info': '1e055eb5c3ae481a'},
 'junk prompt-append-replace': {'column id': '071a2126c435490f',
                                'column source': 'd2b4df92ec523110',
                                'column kind': '194b1224a1a8c5af',
                                'column system': '15cb1871d2e190e4',
                                'column messages': 'e1c085dd761e4455',
                                'column tools': 'f30ed55bbd05e0d4',
                                'column text': 'b4b47341f68addf2',
                                'column meta': '2101bc534b80de14',
                                'column n_tokens': 'ef944cd173daa077',
                                'steps': '6b555a05412bdb85',
                                'info': '44ca4bf605a1b7c1'},
 'junk tools-many': {'column id': '071a2126c435490f',
                     'column source': 'd2b4df92ec523110',
                     'column kind': '194b1224a1a8c5af',
                     'column system': '727cfd883a9331a8',
                     'column messages': 'e1c085dd761e4455',
                     'column tools': '24226fb84c322b70',
                     'column text': 'b4b47341f68addf2',
                     'column meta': '64b57d8d3c170e43',
                     'column n_tokens': 'ef944cd173daa077',
                     'steps': '860babd312d457fe',
                     'info': '36cad3172ee536f4'},
 'junk tools-zero-lo': {'column id': '071a2126c435490f',
                        'column source': 'd2b4df92ec523110',
                        'column kind': '194b1224a1a8c5af',
                        'column system': '727cfd883a9331a8',
                        'column messages': 'e1c085dd761e4455',
                        'column tools': '44b27ce3ac1eb913',
                        'column text': 'b4b47341f68addf2',
                        'column meta': '5119bff2047788d1',
                        'column n_tokens': 'ef944cd173daa077',
                        'steps': '373d9d35448c6b38',
                        'info': '6c08f692b369dd5a'},
 'junk tools-system': {'column id': '071a2126c435490f',
                       'column source': 'd2b4df92ec523110',
                       'column kind': '194b1224a1a8c5af',
                       'column system': '64e0fe19cc17c414',
                       'column messages': 'e1c085dd761e4455',
                       'column tools': 'f30ed55bbd05e0d4',
                       'column text': 'b4b47341f68addf2',
                       'column meta': 'ba4126baa6b2ecce',
                       'column n_tokens': 'ef944cd173daa077',
                       'steps': '51dbe4cabae4e9e3',
                       'info': 'da1e33e30616f4fa'},
 'junk tools-both-block': {'column id': '071a2126c435490f',
                           'column source': 'd2b4df92ec523110',
                           'column kind': '194b1224a1a8c5af',
                           'column system': '7b7b6841affe6edd',
                           'column messages': 'e1c085dd761e4455',
                           'column tools': '6037c488fa6e9e08',
                           'column text': 'b4b47341f68addf2',
                           'column meta': '90202714373aa9dd',
                           'column n_tokens': 'ef944cd173daa077',
                           'steps': '6782ddb28e98b660',
                           'info': '32a8912db4cf2d19'},
 'junk tools-user': {'column id': '071a2126c435490f',
                     'column source': 'd2b4df92ec523110',
                     'column kind': '194b1224a1a8c5af',
                     'column system': '727cfd883a9331a8',
                     'column messages': 'b70ec0bc2bb67da4',
                     'column tools': 'f30ed55bbd05e0d4',
                     'column text': 'b4b47341f68addf2',
                     'column meta': 'e8eb5c447c7ee255',
                     'column n_tokens': 'ef944cd173daa077',
                     'steps': '6782ddb28e98b660',
                     'info': 'adfe93018e75bc8e'},
 'junk tools-mask': {'column id': '071a2126c435490f',
                     'column source': 'd2b4df92ec523110',
                     'column kind': '194b1224a1a8c5af',
                     'column system': 'e66bdb68d51926a7',
                     'column messages': 'e1c085dd761e4455',
                     'column tools': 'a274a166ef004b72',
                     'column text': 'b4b47341f68addf2',
                     'column meta': '082029d78f5d7334',
                     'column n_tokens': 'ef944cd173daa077',
                     'steps': '6782ddb28e98b660',
                     'info': '0a3bcf9ddbd040ce'},
 'junk tools-hard': {'column id': '071a2126c435490f',
                     'column source': 'd2b4df92ec523110',
                     'column kind': '194b1224a1a8c5af',
                     'column system': '727cfd883a9331a8',
                     'column messages': 'e1c085dd761e4455',
                     'column tools': 'f241bc3cc8dd3afc',
                     'column text': 'b4b47341f68addf2',
                     'column meta': '806485c8e9d08bf8',
                     'column n_tokens': 'ef944cd173daa077',
                     'steps': '998b52d0a28f4399',
                     'info': '262dc80a6c56c093'},
 'hh input': {'rows': '2b1ba282d02605b3', 'keys': '7f9b2b19ed382f9b'},
 'hh bench': {'column id': 'e8fedbdd625a27e4',
              'column source': '9872728ffadf2ccf',
              'column kind': '5e5dbc798b9a76e7',
              'column system': 'e1cc5b94f0f59757',
              'column messages': '4bc936fac783a7bb',
              'column tools': '96dd75b62c37b567',
              'column text': '38f0e0ff50d7a025',
              'column meta': '6990f4c9dc3a7025',
              'column n_tokens': 'e16c481cb55eeca1',
              'steps': '3c724139ea6b8e43',
              'info': 'a1c6029b7bc32dc4'},
 'hh bench-noguard': {'column id': 'e8fedbdd625a27e4',
                      'column source': '9872728ffadf2ccf',
                      'column kind': '5e5dbc798b9a76e7',
                      'column system': 'e1cc5b94f0f59757',
                      'column messages': '4bc936fac783a7bb',
                      'column tools': '05474785387e9b28',
                      'column text': '38f0e0ff50d7a025',
                      'column meta': 'eb9b8e0b2efe75b2',
                      'column n_tokens': 'e16c481cb55eeca1',
                      'steps': '3c724139ea6b8e43',
                      'info': 'a1c6029b7bc32dc4'},
 'hh bench-small-slices': {'column id': 'e8fedbdd625a27e4',
                           'column source': '9872728ffadf2ccf',
                           'column kind': '5e5dbc798b9a76e7',
                           'column system': 'e1cc5b94f0f59757',
                           'column messages': '4bc936fac783a7bb',
                           'column tools': '96dd75b62c37b567',
                           'column text': '38f0e0ff50d7a025',
                           'column meta': '6990f4c9dc3a7025',
                           'column n_tokens': 'e16c481cb55eeca1',
                           'steps': '3c724139ea6b8e43',
                           'info': 'a1c6029b7bc32dc4'},
 'hh prompt-prepend-any': {'column id': 'e8fedbdd625a27e4',
                           'column source': '9872728ffadf2ccf',
                           'column kind': '5e5dbc798b9a76e7',
                           'column system': '2679e98810ed9df8',
                           'column messages': '4bc936fac783a7bb',
                           'column tools': '8f6c4ca9d19e71c2',
                           'column text': '38f0e0ff50d7a025',
                           'column meta': '4e9040adad7c6d5e',
                           'column n_tokens': 'e16c481cb55eeca1',
                           'steps': '638faa5c27f4cdee',
                           'info': '1e055eb5c3ae481a'},
 'hh prompt-append-replace': {'column id': 'e8fedbdd625a27e4',
                              'column source': '9872728ffadf2ccf',
                              'column kind': '5e5dbc798b9a76e7',
                              'column system': '6d603388392e70b4',
                              'column messages': '4bc936fac783a7bb',
                              'column tools': '8f6c4ca9d19e71c2',
                              'column text': '38f0e0ff50d7a025',
                              'column meta': 'b8ec7a704111ffe1',
                              'column n_tokens': 'e16c481cb55eeca1',
                              'steps': 'b60e7ee816929b84',
                              'info': '44ca4bf605a1b7c1'},
 'hh tools-many': {'column id': 'e8fedbdd625a27e4',
                   'column source': '9872728ffadf2ccf',
                   'column kind': '5e5dbc798b9a76e7',
                   'column system': '38f0e0ff50d7a025',
                   'column messages': '4bc936fac783a7bb',
                   'column tools': '87a1ec9b60ba6055',
                   'column text': '38f0e0ff50d7a025',
                   'column meta': 'c87556c973a0cb37',
                   'column n_tokens': 'e16c481cb55eeca1',
                   'steps': '507fafe726b11ad5',
                   'info': '36cad3172ee536f4'},
 'hh tools-zero-lo': {'column id': 'e8fedbdd625a27e4',
                      'column source': '9872728ffadf2ccf',
                      'column kind': '5e5dbc798b9a76e7',
                      'column system': '38f0e0ff50d7a025',
                      'column messages': '4bc936fac783a7bb',
                      'column tools': '82be5a23dda24d3a',
                      'column text': '38f0e0ff50d7a025',
                      'column meta': '28cd7aded75f59ba',
                      'column n_tokens': 'e16c481cb55eeca1',
                      'steps': 'c892b2d46fb9c037',
                      'info': '6c08f692b369dd5a'},
 'hh tools-system': {'column id': 'e8fedbdd625a27e4',
                     'column source': '9872728ffadf2ccf',
                     'column kind': '5e5dbc798b9a76e7',
                     'column system': 'a321555914df6fc7',
                     'column messages': '4bc936fac783a7bb',
                     'column tools': '8f6c4ca9d19e71c2',
                     'column text': '38f0e0ff50d7a025',
                     'column meta': '440a932cca25bf75',
                     'column n_tokens': 'e16c481cb55eeca1',
                     'steps': 'd01bd779987aab14',
                     'info': 'da1e33e30616f4fa'},
 'hh tools-both-block': {'column id': 'e8fedbdd625a27e4',
                         'column source': '9872728ffadf2ccf',
                         'column kind': '5e5dbc798b9a76e7',
                         'column system': 'd0cfe83f715fe732',
                         'column messages': '4bc936fac783a7bb',
                         'column tools': 'e221144b98ecc81a',
                         'column text': '38f0e0ff50d7a025',
                         'column meta': '1bc28ec69bf5be04',
                         'column n_tokens': 'e16c481cb55eeca1',
                         'steps': '4d1b526c541af419',
                         'info': '32a8912db4cf2d19'},
 'hh tools-user': {'column id': 'e8fedbdd625a27e4',
                   'column source': '9872728ffadf2ccf',
                   'column kind': '5e5dbc798b9a76e7',
                   'column system': '38f0e0ff50d7a025',
                   'column messages': '8a9971d97c627f42',
                   'column tools': '8f6c4ca9d19e71c2',
                   'column text': '38f0e0ff50d7a025',
                   'column meta': '4648105f69c14600',
                   'column n_tokens': 'e16c481cb55eeca1',
                   'steps': '4d1b526c541af419',
                   'info': 'adfe93018e75bc8e'},
 'hh tools-mask': {'column id': 'e8fedbdd625a27e4',
                   'column source': '9872728ffadf2ccf',
                   'column kind': '5e5dbc798b9a76e7',
                   'column system': '4ac58e2d7d677849',
                   'column messages': '4bc936fac783a7bb',
                   'column tools': 'ead894fd84d0375b',
                   'column text': '38f0e0ff50d7a025',
                   'column meta': '00fdaf2d68ed16d4',
                   'column n_tokens': 'e16c481cb55eeca1',
                   'steps': '4d1b526c541af419',
                   'info': '0a3bcf9ddbd040ce'},
 'hh tools-hard': {'column id': 'e8fedbdd625a27e4',
                   'column source': '9872728ffadf2ccf',
                   'column kind': '5e5dbc798b9a76e7',
                   'column system': '38f0e0ff50d7a025',
                   'column messages': '4bc936fac783a7bb',
                   'column tools': 'bd0de50aa3c78569',
                   'column text': '38f0e0ff50d7a025',
                   'column meta': '57bc530140898a6c',
                   'column n_tokens': 'e16c481cb55eeca1',
                   'steps': '2161e13eac0b4cf4',
                   'info': '262dc80a6c56c093'},
 'hh-plain input': {'rows': '22bf8a48732ec090', 'keys': '690f5f8f5a22a7fe'},
 'hh-plain bench': {'column id': '5a4e006557c8750e',
                    'column source': '57a0a340cbe1abfa',
                    'column kind': 'a0a5c617ed45867a',
                    'column system': 'fe557e34ccf3a9e7',
                    'column messages': '959669c9675ef249',
                    'column tools': '24a69652878b9046',
                    'column text': '7ff5d5825c3ee556',
                    'column meta': 'dc9272f7c715fe21',
                    'column n_tokens': '8c93b6681e44d039',
                    'steps': '6235ddf9715b5aa5',
                    'info': 'a1c6029b7bc32dc4'},
 'hh-plain bench-noguard': {'column id': '5a4e006557c8750e',
                            'column source': '57a0a340cbe1abfa',
                            'column kind': 'a0a5c617ed45867a',
                            'column system': 'fe557e34ccf3a9e7',
                            'column messages': '959669c9675ef249',
                            'column tools': 'ac006102a53880d0',
                            'column text': '7ff5d5825c3ee556',
                            'column meta': '61f3c30e3a19d8e1',
                            'column n_tokens': '8c93b6681e44d039',
                            'steps': '6235ddf9715b5aa5',
                            'info': 'a1c6029b7bc32dc4'},
 'hh-plain bench-small-slices': {'column id': '5a4e006557c8750e',
                                 'column source': '57a0a340cbe1abfa',
                                 'column kind': 'a0a5c617ed45867a',
                                 'column system': 'fe557e34ccf3a9e7',
                                 'column messages': '959669c9675ef249',
                                 'column tools': '24a69652878b9046',
                                 'column text': '7ff5d5825c3ee556',
                                 'column meta': 'dc9272f7c715fe21',
                                 'column n_tokens': '8c93b6681e44d039',
                                 'steps': '6235ddf9715b5aa5',
                                 'info': 'a1c6029b7bc32dc4'},
 'hh-plain prompt-prepend-any': {'column id': '5a4e006557c8750e',
                                 'column source': '57a0a340cbe1abfa',
                                 'column kind': 'a0a5c617ed45867a',
                                 'column system': '47ae0922cb4c52fd',
                                 'column messages': '959669c9675ef249',
                                 'column tools': '5863ef7bf481439b',
                                 'column text': '7ff5d5825c3ee556',
                                 'column meta': '712bfa42bb8eed3f',
                                 'column n_tokens': '8c93b6681e44d039',
                                 'steps': '83b65835d6d79d76',
                                 'info': '1e055eb5c3ae481a'},
 'hh-plain prompt-append-replace': {'column id': '5a4e006557c8750e',
                                    'column source': '57a0a340cbe1abfa',
                                    'column kind': 'a0a5c617ed45867a',
                                    'column system': '009b3721129febd2',
                                    'column messages': '959669c9675ef249',
                                    'column tools': '5863ef7bf481439b',
                                    'column text': '7ff5d5825c3ee556',
                                    'column meta': 'bda5d653b1fd1f2d',
                                    'column n_tokens': '8c93b6681e44d039',
                                    'steps': '4f125710b797b509',
                                    'info': '44ca4bf605a1b7c1'},
 'hh-plain tools-many': {'column id': '5a4e006557c8750e',
                         'column source': '57a0a340cbe1abfa',
                         'column kind': 'a0a5c617ed45867a',
                         'column system': '7ff5d5825c3ee556',
                         'column messages': '959669c9675ef249',
                         'column tools': 'c7993c7c76e68168',
                         'column text': '7ff5d5825c3ee556',
                         'column meta': '3d6cdd30962795bf',
                         'column n_tokens': '8c93b6681e44d039',
                         'steps': '42ffb32002345d36',
                         'info': '36cad3172ee536f4'},
 'hh-plain tools-zero-lo': {'column id': '5a4e006557c8750e',
                            'column source': '57a0a340cbe1abfa',
                            'column kind': 'a0a5c617ed45867a',
                            'column system': '7ff5d5825c3ee556',
                            'column messages': '959669c9675ef249',
                            'column tools': '847ad7c7a857d25e',
                            'column text': '7ff5d5825c3ee556',
                            'column meta': '6dd73653bc5986f3',
                            'column n_tokens': '8c93b6681e44d039',
                            'steps': '29160649513a0f93',
                            'info': '6c08f692b369dd5a'},
 'hh-plain tools-system': {'column id': '5a4e006557c8750e',
                           'column source': '57a0a340cbe1abfa',
                           'column kind': 'a0a5c617ed45867a',
                           'column system': '8366eab7e50b6093',
                           'column messages': '959669c9675ef249',
                           'column tools': '5863ef7bf481439b',
                           'column text': '7ff5d5825c3ee556',
                           'column meta': '18212734fd504b0c',
                           'column n_tokens': '8c93b6681e44d039',
                           'steps': '77dec239b75d4f5c',
                           'info': 'da1e33e30616f4fa'},
 'hh-plain tools-both-block': {'column id': '5a4e006557c8750e',
                               'column source': '57a0a340cbe1abfa',
                               'column kind': 'a0a5c617ed45867a',
                               'column system': 'd89ced19c7b7c6ff',
                               'column messages': '959669c9675ef249',
                               'column tools': 'a98aafb709b44044',
                               'column text': '7ff5d5825c3ee556',
                               'column meta': '7292ce16a49e28a5',
                               'column n_tokens': '8c93b6681e44d039',
                               'steps': 'b86e947ef7a2f55d',
                               'info': '32a8912db4cf2d19'},
 'hh-plain tools-user': {'column id': '5a4e006557c8750e',
                         'column source': '57a0a340cbe1abfa',
                         'column kind': 'a0a5c617ed45867a',
                         'column system': '7ff5d5825c3ee556',
                         'column messages': 'cbccae831a53cfca',
                         'column tools': '5863ef7bf481439b',
                         'column text': '7ff5d5825c3ee556',
                         'column meta': '2bb830ecc6153cde',
                         'column n_tokens': '8c93b6681e44d039',
                         'steps': 'b86e947ef7a2f55d',
                         'info': 'adfe93018e75bc8e'},
 'hh-plain tools-mask': {'column id': '5a4e006557c8750e',
                         'column source': '57a0a340cbe1abfa',
                         'column kind': 'a0a5c617ed45867a',
                         'column system': 'af3487e7cbe97bf2',
                         'column messages': '959669c9675ef249',
                         'column tools': '677882e02bfcaa58',
                         'column text': '7ff5d5825c3ee556',
                         'column meta': 'cecaf0dec6cb1b23',
                         'column n_tokens': '8c93b6681e44d039',
                         'steps': 'b86e947ef7a2f55d',
                         'info': '0a3bcf9ddbd040ce'},
 'hh-plain tools-hard': {'column id': '5a4e006557c8750e',
                         'column source': '57a0a340cbe1abfa',
                         'column kind': 'a0a5c617ed45867a',
                         'column system': '7ff5d5825c3ee556',
                         'column messages': '959669c9675ef249',
                         'column tools': '95028b8c27c472d1',
                         'column text': '7ff5d5825c3ee556',
                         'column meta': '4abd108e9ad2a277',
                         'column n_tokens': '8c93b6681e44d039',
                         'steps': 'afe7522c31078b0b',
                         'info': '262dc80a6c56c093'}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    return frames(tmp_path_factory.mktemp("pinned"))


def _check(inputs: dict[str, pl.DataFrame], data: str, name: str) -> None:
    frame = inputs[data]
    want_input = EXPECTED[f"{data} input"]
    assert {"rows": digest(frame.to_dicts()), "keys": digest(rng.row_keys(frame["id"]).tolist())} == want_input, \
        "the pinned input itself changed (reader or ids), so the output digests cannot be compared"
    got = fingerprint(frame, CONFIGS[name], seed=11)
    assert got["column meta"] != digest(frame.get_column("meta").to_list()), "the configuration augmented nothing"
    want = EXPECTED[f"{data} {name}"]
    changed = sorted(k for k in want if got.get(k) != want[k])
    assert not changed, f"{data} {name}: output changed in {changed}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_augmentation_of_junk_rows_is_byte_identical_to_the_pinned_output(inputs, name: str) -> None:
    _check(inputs, "junk", name)


@needs_shared
@pytest.mark.parametrize("data", ["hh", "hh-plain"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_augmentation_of_hh_rlhf_is_byte_identical_to_the_pinned_output(inputs, data: str, name: str) -> None:
    _check(inputs, data, name)


if __name__ == "__main__":  # print the EXPECTED table from the current code
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(record(Path(d)), indent=1))


def test_a_chain_parses_the_ids_once_and_equals_its_steps_applied_one_at_a_time(inputs, monkeypatch) -> None:
    """Steps of one chunk share the parsed row keys while the ids stay the same; a filter in
    between changes them, and the next step parses its own."""
    from mixer import rng as rng_mod

    frame = inputs["junk"]
    chain = (BENCH[0], BENCH[1], {"type": "filter", "exclude": "weather"}, {"type": "tools", "p": 0.9, "count": [1, 2]})
    one_by_one = frame
    for position, spec in enumerate(chain):  # each step alone, at its position in the chain
        applier = transforms.REGISTRY[spec["type"]](**{k: v for k, v in spec.items() if k != "type"},
                                                     seed=11, position=position)
        one_by_one = applier.apply(one_by_one)
    calls = []
    real = rng_mod.row_keys
    monkeypatch.setattr(rng_mod, "row_keys", lambda ids: calls.append(len(ids)) or real(ids))
    chained, steps = transforms.prepare(chain, seed=11, source="s").apply(frame)
    assert chained.equals(one_by_one)
    assert steps[2].rows_out < steps[2].rows_in and calls == [frame.height, steps[2].rows_out]


def test_the_guard_scanning_turns_one_by_one_finds_what_the_joined_turns_give(inputs) -> None:
    """The guard scans each distinct user turn once; a row's set is the union of its turns'
    sets, which equals scanning the turns joined by newlines (a stem never spans two turns),
    including turns that end and start mid-word and turns repeated across rows."""
    import importlib

    import numpy as np

    tools_mod = importlib.import_module("mixer.transforms.tools")
    prepared = transforms.prepare(({"type": "tools", "count": [1, 2]},), seed=0, source="s").steps[0].applier
    frame = inputs["junk"]
    split = frame.head(6).with_columns(pl.col("messages").list.eval(pl.element().struct.with_fields(
        pl.field("content").str.slice(0, 3) + "WEA")))  # every user turn ends with a partial stem
    frame = pl.concat([frame, split, frame.head(30)])
    for sub in (frame, frame.head(4)):  # turns repeating (scanned once each) and not
        rows = np.flatnonzero((sub.get_column("kind") == "chat").to_numpy())
        joined = prepared.guard.row_sets(tools_mod._user_text(sub).gather(rows))
        assert np.array_equal(prepared._relevant(sub, rows), joined) and joined.any()


def test_augmented_columns_keep_the_chunks_of_a_multi_chunk_frame(inputs, tmp_path: Path) -> None:
    """New columns are cut like the frame's (Polars rechunks a frame whose columns are cut
    differently on every later expression: at 1M rows that copied ``messages`` each time)."""
    frame = inputs["junk"]
    frame.write_parquet(tmp_path / "junk.parquet", row_group_size=100)  # read back as chunks of rows
    chunked = pl.read_parquet(tmp_path / "junk.parquet")
    assert len(set(chunked.n_chunks("all"))) == 1 and chunked.n_chunks() > 1
    for specs in (BENCH, CONFIGS["tools-user"], CONFIGS["prompt-append-replace"]):
        out, _ = transforms.prepare(specs, seed=11, source="s").apply(chunked)
        assert out.n_chunks("all") == chunked.n_chunks("all"), specs
        assert out.equals(transforms.prepare(specs, seed=11, source="s").apply(frame)[0])


def test_user_turns_read_from_arrow_are_each_rows_user_turns_in_order() -> None:
    """The guard's user turns come from the Arrow arrays under ``messages``: null lists, empty
    lists, null messages and null roles give no turn; sliced, multi-chunk columns keep their rows."""
    import importlib

    import numpy as np

    tools_mod = importlib.import_module("mixer.transforms.tools")
    kind = transforms_schema_messages()
    rows = [None, [], [{"role": "user", "content": "a"}, None, {"role": "assistant", "content": "b"},
                       {"role": "user", "content": None}],
            [{"role": None, "content": "x"}, {"role": "user", "content": "c"}, {"role": "user", "content": "d"}],
            [{"role": "system", "content": "s"}]]
    one = pl.DataFrame({"messages": rows}, schema={"messages": kind})
    frame = pl.concat([one, one.slice(1, 3), one.slice(2, 2)], rechunk=False)
    assert frame.n_chunks() == 3
    chosen = np.array([0, 2, 3, 5, 6, 7, 8])
    turns, owner = tools_mod._user_turns(frame, chosen)
    want = [(k, m["content"]) for k, i in enumerate(chosen) for m in (frame.row(int(i))[0] or [])
            if m is not None and m["role"] == "user"]
    assert list(zip(owner.tolist(), turns.to_list())) == want and len(want) == 10


def transforms_schema_messages() -> pl.DataType:
    from mixer.schema import SCHEMA

    return SCHEMA["messages"]
