"""Property tests over the adapters: valid records round-trip, junk never crashes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mixer.recipe import Source
from mixer.sources.formats import FORMATS
from mixer.sources.adapters import RowError

SRC = Source(name="p", path="/x")
text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["messages", "conversations", "instruction", "output", "input", "chosen", "rejected",
                        "text", "system", "tools", "history", "role", "content", "from", "value"])
junk_records = st.dictionaries(keys | st.text(max_size=8), json_values, max_size=6)


@st.composite
def openai_records(draw):
    turns = draw(st.lists(st.tuples(text, text), min_size=1, max_size=4))
    system = draw(st.none() | text)
    messages = ([{"role": "system", "content": system}] if system else [])
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}, system, turns


@given(openai_records())
@settings(max_examples=150, deadline=None)
def test_openai_records_round_trip(case) -> None:
    record, system, turns = case
    row = FORMATS["openai"].adapt(record, SRC)
    assert row["system"] == system
    assert [(m["role"], m["content"]) for m in row["messages"]] == [
        (role, content) for pair in turns for role, content in zip(("user", "assistant"), pair)]


@given(st.lists(st.tuples(text, text), min_size=1, max_size=4), st.none() | text)
@settings(max_examples=150, deadline=None)
def test_sharegpt_records_round_trip(turns, system) -> None:
    convo = [{"from": f, "value": v} for pair in turns for f, v in zip(("human", "gpt"), pair)]
    record = {"conversations": convo, **({"system": system} if system else {})}
    row = FORMATS["sharegpt"].adapt(record, SRC)
    assert row["system"] == system
    assert [m["content"] for m in row["messages"]] == [v for pair in turns for v in pair]


@given(st.lists(st.tuples(text, text), min_size=1, max_size=4))
@settings(max_examples=100, deadline=None)
def test_hh_rlhf_transcripts_round_trip(turns) -> None:
    turns = [(u.replace("\n\n", " "), a.replace("\n\n", " ")) for u, a in turns]
    turns = [(u, a) for u, a in turns if "Human:" not in u + a and "Assistant:" not in u + a and u.strip() and a.strip()]
    if not turns:
        return
    transcript = "".join(f"\n\nHuman: {u}\n\nAssistant: {a}" for u, a in turns)
    row = FORMATS["hh-rlhf"].adapt({"chosen": transcript, "rejected": transcript}, SRC)
    assert [m["content"] for m in row["messages"]] == [x for pair in turns for x in pair]


@given(junk_records)
@settings(max_examples=400, deadline=None)
def test_junk_never_crashes_any_adapter(record) -> None:
    for name, fmt in FORMATS.items():
        adapt = fmt.adapt
        try:
            row = adapt(record, SRC)
        except RowError:
            continue
        assert row["kind"] in ("chat", "document"), name
        json.dumps(row)  # whatever is accepted is serializable
        for message in row["messages"]:
            assert message["role"] in ("user", "assistant", "tool") and isinstance(message["content"], str)
