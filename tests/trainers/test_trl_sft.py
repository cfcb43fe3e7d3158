"""TRL SFTTrainer trains on mixer's `trl` output: system prompts and tools reach the tokens it trains on.

A real build of the HH slice with varied system prompts and unrelated tools, a byte-level BPE
trained on that output, a 2-layer Qwen2 and the real Qwen2.5 chat template (tools rendered into
the system turn). The rendered text is read back from the trainer's own tokenized dataset and
collator batches, never re-rendered by the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the trainers tier needs torch: pip install torch==2.13.0 && pip install -e '.[trainers]'")
pytest.importorskip("trl", reason="the trainers tier needs TRL: pip install -e '.[trainers]'")

from conftest import needs_shared  # noqa: E402
from trainer_helpers import (  # noqa: E402
    build_hh, needs_templates, row_texts, rows_written, system_of, template, tiny_qwen2, tiny_tokenizer, tool_names,
)

pytestmark = [pytest.mark.trainers, needs_shared, needs_templates]


@pytest.fixture(scope="module")
def trl_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hh(tmp_path_factory.mktemp("trl"), "trl")


@pytest.fixture(scope="module")
def train_rows(trl_out: Path) -> Any:
    # README: TRL SFTTrainer, the data -- begin
    from datasets import load_dataset

    train = load_dataset(str(trl_out), split="train")  # columns: messages, tools
    # README: TRL SFTTrainer, the data -- end
    assert set(train.column_names) == {"messages", "tools"} and len(train) == rows_written(trl_out)
    return train


def sft_trainer(train: Any, out: Path, chat_template: str, **config: Any) -> Any:
    from trl import SFTConfig, SFTTrainer

    tokenizer = tiny_tokenizer([s for r in train for s in row_texts(r["messages"], r["tools"])], chat_template)
    model = tiny_qwen2(tokenizer)
    # README: TRL SFTTrainer, the trainer -- begin
    args = SFTConfig(output_dir=str(out), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                     report_to="none", save_strategy="no", logging_steps=1, use_cpu=True, seed=0,
                     dataloader_num_workers=0, **config)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    # README: TRL SFTTrainer, the trainer -- end
    return trainer


def assert_row_in(text: str, row: dict[str, Any]) -> None:
    system = system_of(row["messages"])
    if system is not None:
        assert system in text
    for name in tool_names(row["tools"]):
        assert f'"name": "{name}"' in text, f"tool {name} is not in the trained text"
    for m in row["messages"]:
        if m["role"] in ("user", "assistant"):
            assert m["content"] in text  # turns reach the tokens byte-identical


def test_sft_trains_on_system_prompts_and_tools_of_every_row(train_rows: Any, tmp_path: Path) -> None:
    with_system = sum(system_of(r["messages"]) is not None for r in train_rows)
    with_tools = sum(bool(r["tools"]) for r in train_rows)
    assert with_system > 10 and with_tools > 10 and with_tools < len(train_rows)  # both arms present

    trainer = sft_trainer(train_rows, tmp_path, template("qwen2.5-instruct.jinja"), max_length=None)
    tokenizer = trainer.processing_class
    tokenized = trainer.train_dataset
    assert len(tokenized) == len(train_rows)
    for row, ids in zip(train_rows, tokenized["input_ids"], strict=True):
        text = tokenizer.decode(ids)
        assert_row_in(text, row)
        if row["tools"]:  # Qwen2.5 renders the tools inside the system turn, after the row's system prompt
            system_turn = text.split("<|im_end|>")[0]
            assert "<tools>" in system_turn and all(n in system_turn for n in tool_names(row["tools"]))
            if system_of(row["messages"]) is not None:
                assert system_turn.startswith("<|im_start|>system\n" + system_of(row["messages"]))

    batch = next(iter(trainer.get_train_dataloader()))
    rendered = {tokenizer.decode(ids) for ids in tokenized["input_ids"]}
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
        assert tokenizer.decode(ids[mask.bool()]) in rendered  # the collator hands the model those same texts

    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0


def test_sft_assistant_only_loss_trains_on_assistant_turns_only(train_rows: Any, tmp_path: Path) -> None:
    from trl.chat_template_utils import qwen2_5_chat_template

    # TRL patches in `{% generation %}` markers only for the Qwen2.5 template as the model ships it
    # (byte-for-byte); the shared copy is reformatted, so first check both render mixer's rows alike.
    shared = tiny_tokenizer(["a"], template("qwen2.5-instruct.jinja"))
    for row in train_rows.select(range(10)):
        tools = row["tools"] or None
        assert (shared.apply_chat_template(row["messages"], tools=tools, tokenize=False)
                == shared.apply_chat_template(row["messages"], tools=tools, tokenize=False,
                                              chat_template=qwen2_5_chat_template))

    trainer = sft_trainer(train_rows, tmp_path, qwen2_5_chat_template, max_length=None, assistant_only_loss=True)
    tokenizer = trainer.processing_class
    for row, ex in zip(train_rows, trainer.train_dataset, strict=True):
        pairs = list(zip(ex["input_ids"], ex["labels"], strict=True))  # label -100: in the context, not trained on
        trained = tokenizer.decode([t for t, label in pairs if label != -100])
        context = tokenizer.decode([t for t, label in pairs if label == -100])
        assistant = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert trained == "".join(f"\n{a}<|im_end|>\n" for a in assistant)  # TRL's markers start after the role
        assert_row_in(context + trained, row)
        if system_of(row["messages"]):
            assert system_of(row["messages"]) in context  # seen, never trained on
    assert trainer.train().global_step == 2


def test_sft_packing_keeps_every_rows_system_prompt_and_tools(train_rows: Any, tmp_path: Path) -> None:
    longest = max(len(r["messages"]) for r in train_rows)
    assert longest > 2
    # rows longer than max_length are split across bins by bfd_split (by design), so a row's turns
    # would no longer be contiguous: max_length is above the longest row here
    trainer = sft_trainer(train_rows, tmp_path, template("qwen2.5-instruct.jinja"), packing=True,
                          packing_strategy="bfd_split", max_length=8192)
    tokenizer = trainer.processing_class
    packed = trainer.train_dataset
    assert len(packed) < len(train_rows)  # rows really were packed together
    everything = "".join(tokenizer.decode(ids) for ids in packed["input_ids"])
    for row in train_rows:
        assert_row_in(everything, row)
    assert trainer.train().global_step == 2
