"""torchtune's `chat_dataset(conversation_style="openai")` on mixer's `torchtune` output.

torchtune's messages have no tools, so the format folds each row's tool specs into the system
text; this checks that the tokens torchtune builds (its Qwen2.5 tokenizer over a BPE trained on
the output) carry every row's system prompt and tool names, and that with ``train_on_input=False``
the labels cover the assistant turns only. The expected system prompts and tools come from the
`trl` output of the same build (same rows, tools in their own column).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the trainers tier needs torch: pip install torch==2.13.0 && pip install -e '.[trainers]'")
pytest.importorskip("torchtune", reason="torchtune (with torchao 0.17) is not installed: pip install -e '.[trainers]'")

from conftest import needs_shared  # noqa: E402
from trainer_helpers import build_hh, rows_written, system_of, tool_names  # noqa: E402

pytestmark = [pytest.mark.trainers, needs_shared]


def turns(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(m["content"] for m in messages if m["role"] != "system")


def test_torchtune_chat_dataset_tokens_carry_system_prompts_and_tools(tmp_path: Path) -> None:
    from datasets import load_dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from torchtune.data import CROSS_ENTROPY_IGNORE_IDX
    from torchtune.datasets import chat_dataset
    from torchtune.models.qwen2_5 import qwen2_5_tokenizer

    out = build_hh(tmp_path, "torchtune")
    trl_out = build_hh(tmp_path, "trl")
    expected = {turns(r["messages"]): r for r in load_dataset(str(trl_out), split="train")}
    assert len(expected) == rows_written(trl_out)
    rows = [json.loads(line) for f in sorted((out / "data").glob("train-*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == rows_written(out) and {turns(r["messages"]) for r in rows} == set(expected)  # the same selection in both formats

    bpe = Tokenizer(models.BPE())  # a byte-level BPE trained on the output, saved as torchtune's Qwen2.5 files
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([m["content"] for r in rows for m in r["messages"]], trainers.BpeTrainer(
        vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    bpe.model.save(str(tokenizer_dir))

    # README: torchtune -- begin
    data_files = str(out / "data" / "train-00000-of-00001.jsonl")
    tokenizer = qwen2_5_tokenizer(path=str(tokenizer_dir / "vocab.json"),
                                  merges_file=str(tokenizer_dir / "merges.txt"))
    dataset = chat_dataset(tokenizer, source="json", data_files=data_files, split="train",
                           conversation_column="messages", conversation_style="openai", train_on_input=False)
    # README: torchtune -- end
    assert len(dataset) == len(rows)
    with_tools = 0
    for row, example in zip(rows, dataset, strict=True):
        want = expected[turns(row["messages"])]
        text = tokenizer.decode(example["tokens"], skip_special_tokens=False)
        trained = tokenizer.decode([t for t, label in zip(example["tokens"], example["labels"], strict=True)
                                    if label != CROSS_ENTROPY_IGNORE_IDX], skip_special_tokens=False)
        system = system_of(want["messages"])
        if system is not None:
            assert text.startswith(f"<|im_start|>system\n{system}") and system not in trained
        for name in tool_names(want["tools"]):
            assert f'"name": "{name}"' in text.split("<|im_end|>")[0]  # inside the system turn
        with_tools += bool(want["tools"])
        for m in want["messages"]:
            if m["role"] == "assistant":
                assert m["content"] in trained
            elif m["role"] == "user":
                assert m["content"] in text
                quoted = any(m["content"] in a["content"] for a in want["messages"] if a["role"] == "assistant")
                assert quoted or m["content"] not in trained  # an answer may quote the user ("James Brigden")
    assert with_tools > 10
