"""Shared pieces of the `trainers` tier: mixer builds of the real HH slice, a tiny tokenizer and model.

The tier runs the real consumers (TRL, LLaMA-Factory, torchtune) on mixer's outputs. Nothing here
is a stand-in for a trainer: helpers only build inputs (an output folder, a BPE tokenizer trained on
it, a 2-layer model) the way a user would before handing them to the trainer.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import HH, REPO, SHARED
from mixer.cli import main

TEMPLATES = SHARED / "chat_templates"
DIVERSIFIED = REPO / "recipes" / "harmlessness-diversified.toml"

needs_templates = pytest.mark.skipif(
    not (TEMPLATES / "qwen2.5-instruct.jinja").exists(),
    reason="../shared/data/chat_templates (real model-family chat templates) is not beside this checkout",
)

# Special tokens of the Qwen2.5 template's ChatML framing, plus its end-of-text padding token.
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_hh(parent: Path, fmt: str, total: int = 30_000, *sets: str) -> Path:
    """The harmlessness-diversified recipe on the HH slice, with system prompts and tools, in ``fmt``.

    The folder gets a unique name: ``datasets`` caches a folder's load under its base name, so
    two builds named alike (across test sessions too) could load each other's rows (issue 12,
    item 1). Callers check the loaded row count against the manifest.
    """
    out = parent / f"{fmt}-{total}-{uuid.uuid4().hex[:8]}"
    args = ["build", str(DIVERSIFIED), "--out", str(out), "-q",
            "--set", f"sources.harmless.path={HH}", "--set", f"total={total}",
            "--set", f"output.format={fmt}"]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def rows_written(out: Path, split: str = "train") -> int:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["export"]["rows"][split]


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def tiny_tokenizer(texts: list[str], chat_template: str, specials: list[str] = QWEN_SPECIALS,
                   eos: str = "<|im_end|>", pad: str = "<|endoftext|>") -> Any:
    """A byte-level BPE trained on ``texts`` with the template's special tokens, as a transformers tokenizer.

    Byte-level, so decoding the trainer's token ids gives back the rendered text exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=2000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, pad_token=pad, chat_template=chat_template)


def tiny_qwen2(tokenizer: Any) -> Any:
    """A 2-layer Qwen2 with random weights, sized for a few CPU steps."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16_384,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return Qwen2ForCausalLM(config)


def row_texts(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[str]:
    """Every string of a row a tokenizer should learn from: turns and tool specs."""
    return [m["content"] for m in messages if m.get("content")] + [json.dumps(t) for t in tools or []]


def system_of(messages: list[dict[str, Any]]) -> str | None:
    return messages[0]["content"] if messages and messages[0]["role"] == "system" else None


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    return [t["function"]["name"] for t in tools or []]
