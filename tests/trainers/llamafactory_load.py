"""Run inside a LLaMA-Factory environment: load a mixer output through LLaMA-Factory's own data code.

Usage: python llamafactory_load.py DATASET_DIR DATASET_NAME
       python llamafactory_load.py --tools FILE   (each line a ``tools`` string: the default format's error or null)

Reads ``DATASET_DIR/dataset_info.json`` with LLaMA-Factory's parser, loads and aligns the named
dataset with its loader and sharegpt converter (``_get_merged_dataset``, the step of ``get_dataset``
before tokenization), renders each row's tools with its tool formatter (default and qwen formats),
and prints one JSON object per aligned row: ``_prompt``, ``_response``, ``_system``, ``_tools`` and
``tools_rendered`` (per tool format: the text, or ``{"error": ...}``).

``llamafactory.data``'s package ``__init__`` imports the multimodal plugin, which imports torchaudio
at module level; torchaudio has no build for torch 2.12 or newer (PyPI's newest is 2.11), so beside
torch 2.13 that import fails. The package is therefore registered without running its ``__init__``,
and its real modules (parser, loader, converter, formatter) load from their files as usual.
Nothing of LLaMA-Factory is replaced.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path


def main(dataset_dir: str, name: str) -> None:
    _register_data_package()
    from transformers import Seq2SeqTrainingArguments

    from llamafactory.data.formatter import ToolFormatter
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import DataArguments, ModelArguments

    # README: LLaMA-Factory -- begin
    data_args = DataArguments(dataset=name, dataset_dir=dataset_dir)
    # README: LLaMA-Factory -- end
    aligned = _get_merged_dataset([name], ModelArguments(model_name_or_path="unused-by-data-loading"), data_args,
                                  Seq2SeqTrainingArguments(output_dir=dataset_dir, report_to="none"), stage="sft")
    formatters = {f: ToolFormatter(tool_format=f) for f in ("default", "qwen")}
    for row in aligned:
        print(json.dumps({k: row[k] for k in ("_prompt", "_response", "_system", "_tools")}
                         | {"tools_rendered": {f: _render(fmt, row["_tools"]) for f, fmt in formatters.items()}},
                         ensure_ascii=False))


def render_tools(specs_file: str) -> None:
    """``--tools FILE``: each line of FILE (a written row's ``tools`` string) rendered by the default
    tool format; prints one JSON value a line: null where it renders, else the error."""
    _register_data_package()
    from llamafactory.data.formatter import ToolFormatter

    formatter = ToolFormatter(tool_format="default")
    for line in Path(specs_file).read_text(encoding="utf-8").splitlines():
        got = _render(formatter, json.loads(line))
        print(json.dumps(got if isinstance(got, dict) else None))


def _register_data_package() -> None:
    """``llamafactory.data`` without its ``__init__`` (see the module docstring)."""
    import llamafactory

    data = types.ModuleType("llamafactory.data")
    data.__path__ = [str(Path(llamafactory.__file__).parent / "data")]
    sys.modules["llamafactory.data"] = data


def _render(formatter: object, tools: str) -> str | dict[str, str]:
    """The tools text LLaMA-Factory's template puts in the system turn, or the error it raises."""
    if not tools:
        return ""
    try:
        return formatter.apply(content=tools)[0]
    except Exception as e:  # noqa: BLE001 - reported to the test, which says which rows fail and why
        return {"error": f"{type(e).__name__}: {e}"}


if __name__ == "__main__":
    render_tools(sys.argv[2]) if sys.argv[1] == "--tools" else main(*sys.argv[1:])
