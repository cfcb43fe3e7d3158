"""TRL GRPOTrainer on mixer's `prompt` output: what prompt text the model is actually given.

GRPO renders each prompt with the chat template and ``tools=None`` (its ``tools`` argument is for
callables it executes, not per-row specs); a ``tools`` column only reaches the reward functions.
So a row's tools are visible to the model only if the `prompt` format puts them inside the
prompt's own turns. The rendered prompts are read off the trainer's own tokenization.
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
def prompt_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hh(tmp_path_factory.mktemp("prompt"), "prompt")


def grpo_on(train: Any, out: Path) -> tuple[Any, list[list[dict[str, Any]]], list[str], list[Any]]:
    """One GRPO step; returns the trainer, the prompts it rendered, their decoded text and the reward's tools."""
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = tiny_tokenizer([s for r in train for s in row_texts(r["prompt"], r["tools"])],
                               template("qwen2.5-instruct.jinja"))
    rewarded_tools: list[Any] = []

    # README: TRL GRPOTrainer, a reward function -- begin
    def brevity(completions: list[Any], tools: list[Any], **_: Any) -> list[float]:
        rewarded_tools.extend(tools)  # the `tools` column arrives here, beside the completions
        return [-float(len(c[0]["content"])) for c in completions]
    # README: TRL GRPOTrainer, a reward function -- end

    model = tiny_qwen2(tokenizer)
    # README: TRL GRPOTrainer, the trainer -- begin
    args = GRPOConfig(output_dir=str(out), max_steps=1, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, report_to="none", save_strategy="no", use_cpu=True, seed=0)
    trainer = GRPOTrainer(model=model, reward_funcs=brevity, args=args, train_dataset=train,
                          processing_class=tokenizer)
    # README: TRL GRPOTrainer, the trainer -- end
    seen: list[list[dict[str, Any]]] = []
    rendered: list[str] = []
    tokenize_prompts = trainer._tokenize_prompts

    def recording(prompts: list[Any]) -> Any:
        result = tokenize_prompts(prompts)
        seen.extend(prompts)
        rendered.extend(tokenizer.decode(ids) for ids in result[0])
        return result

    trainer._tokenize_prompts = recording
    assert trainer.train().global_step == 1
    return trainer, seen, rendered, rewarded_tools


def prompt_format_folds_tools() -> bool:
    """Whether this checkout's `prompt` format puts a row's tools inside the prompt's turns."""
    import json

    from mixer.formats import prompt

    spec = {"type": "function", "function": {"name": "zz_probe_tool", "description": "d",
                                             "parameters": {"type": "object", "properties": {}}}}
    row = {"kind": "chat", "system": "s", "tools": [json.dumps(spec)],
           "messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}
    try:
        return "zz_probe_tool" in json.dumps(prompt.convert(row)["prompt"])
    except Exception:  # noqa: BLE001 - a reshaped convert(): run the test as expected to fail; strict says if not
        return False


@pytest.mark.xfail(not prompt_format_folds_tools(), strict=True,
                   reason="prompt format folds tools into the system turn: lands with the formats branch")
def test_grpo_renders_each_prompts_system_prompt_and_tools(prompt_out: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    # README: TRL GRPOTrainer, the data -- begin
    train = load_dataset(str(prompt_out), split="train")  # columns: prompt, tools
    # README: TRL GRPOTrainer, the data -- end
    assert len(train) == rows_written(prompt_out)
    train = train.filter(lambda r: bool(r["tools"]) and system_of(r["prompt"]) is not None)
    assert len(train) >= 4
    by_turns = {str([m["content"] for m in r["prompt"][1:]]): r for r in train}

    _, seen, rendered, rewarded_tools = grpo_on(train, tmp_path)
    assert seen and len(seen) == len(rendered)
    assert rewarded_tools and all(rewarded_tools)
    for prompt, text in zip(seen, rendered, strict=True):
        row = by_turns[str([m["content"] for m in prompt[1:]])]
        assert system_of(row["prompt"]) in text or system_of(row["prompt"]).split("\n\n")[0] in text
        assert text.endswith("<|im_start|>assistant\n")  # rendered for generation
        missing = [n for n in tool_names(row["tools"]) if n not in text]
        assert not missing, f"tools the model never sees in its GRPO prompt: {missing}\n{text[:600]}"
