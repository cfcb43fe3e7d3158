"""Budgets in the target model's tokens: a tokenizer.json (the tokenizers library) instead of tiktoken."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from conftest import chats, write_jsonl, write_recipe
from mixer import pipeline, schema, tokens
from mixer.errors import RecipeError

tokenizers = pytest.importorskip("tokenizers", reason="the tokenizers package is not installed")


def train_tokenizer(folder: Path, texts: list[str]) -> Path:
    """A small BPE trained on the test's own text, saved as a model folder would hold it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]", "<s>"]))
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def test_a_model_tokenizer_counts_each_turn_like_tiktoken_does(tmp_path: Path) -> None:
    path = train_tokenizer(tmp_path / "model", ["hello there friend", "be brief and kind", "the answer is yes"])
    enc = tokens.encoding(str(path))
    assert isinstance(enc, tokens.ModelTokenizer) and "sha256" in enc.name
    assert tokens.encoding(str(tmp_path / "model")).name == enc.name  # the folder works too
    message = {"role": "user", "content": "hello there friend", "tool_calls": None, "tool_call_id": None, "name": None}
    reply = {**message, "role": "assistant", "content": "the answer is yes"}
    frame = pl.DataFrame([{"id": "s/0", "source": "s", "kind": "chat", "system": "be brief", "messages": [message, reply],
                           "tools": [], "text": None, "meta": "{}", "n_tokens": 0}], schema=schema.SCHEMA)
    direct = tokenizers.Tokenizer.from_file(str(path))
    n = lambda s: len(direct.encode(s, add_special_tokens=False).ids)  # noqa: E731
    want = n("be brief") + n("hello there friend") + n("the answer is yes") + 3 * tokens.MESSAGE_OVERHEAD
    assert tokens.count(frame, enc).get_column("n_tokens").to_list() == [want]


def test_a_recipe_budgets_in_the_model_tokens_relative_to_the_recipe(tmp_path: Path) -> None:
    rows = chats(200)
    write_jsonl(tmp_path / "a.jsonl", rows)
    train_tokenizer(tmp_path / "tok", [m["content"] for r in rows for m in r["messages"]])
    recipe = write_recipe(tmp_path / "r.toml", 'tokenizer = "tok/tokenizer.json"\nunit = "tokens"\ntotal = 2000\n'
                                               '[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    m = pipeline.build(recipe)
    assert str(tmp_path / "tok" / "tokenizer.json") in m.manifest["tokenizer"]["resolved"]
    model_total = m.manifest["totals"]["train"]["tokens"]
    tiktoken_total = int(tokens.count(m.splits["train"], tokens.encoding("cl100k_base"))["n_tokens"].sum())
    assert abs(model_total - 2000) <= 40 and model_total != tiktoken_total


def test_a_missing_or_broken_tokenizer_file_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="is not a tokenizer.json or a folder holding one"):
        tokens.encoding(str(tmp_path / "nope" / "tokenizer.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"not": "a tokenizer"}))
    with pytest.raises(RecipeError, match="is not a tokenizer.json the tokenizers library can load"):
        tokens.encoding(str(tmp_path / "bad.json"))
