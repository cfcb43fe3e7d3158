"""Every input format, output format and transform is declared once, in its own module, and
everything that lists them (recipe choices, CLI choices, detection, the audit, the owned side
files) reads that one declaration. Reject reasons are counted by their structured reason, not
parsed out of messages."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import click
import pytest

from conftest import chat, write_jsonl
from mixer import audit, formats, recipe, transforms, writers
from mixer.cli import main
from mixer.sources import formats as input_formats
from mixer.sources.read import read_source
from mixer.specs import Source


def _choices(command: str, option: str) -> tuple[str, ...]:
    param = next(p for p in main.commands[command].params if p.name == option)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_output_format_names_come_from_the_format_modules() -> None:
    assert recipe.OUTPUT_FORMATS == formats.NAMES == _choices("convert", "to")
    for name, fmt in formats.FORMATS.items():
        module = importlib.import_module(f"mixer.formats.{name.replace('-', '_')}")
        assert module.FORMAT is fmt
    assert audit.CHAT_FORMATS == tuple(f.name for f in formats.FORMATS.values() if f.read_back is not None)
    assert "text" not in audit.CHAT_FORMATS and "llama-factory" in audit.CHAT_FORMATS
    assert "dataset_info.json" in writers.OWN_ENTRIES  # a format's side file is the output folder's own


def test_input_format_names_come_from_the_format_modules() -> None:
    assert recipe.FORMATS == input_formats.NAMES == _choices("convert", "from_format")
    assert set(input_formats.FORMATS) >= {"canonical", "openai", "sharegpt", "alpaca", "hh-rlhf", "document", "prompt"}


def test_a_module_that_declares_format_is_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding an output format takes: one module declaring FORMAT."""
    package = tmp_path / "extra"
    package.mkdir()
    (package / "upper.py").write_text(textwrap.dedent('''
        from mixer.formats.common import Format

        def convert(row):
            return {"text": row["messages"][-1]["content"].upper()}

        FORMAT = Format("upper", "jsonl", convert, "shouting")
    '''))
    monkeypatch.setattr(formats, "__path__", [*formats.__path__, str(package)])
    found = formats._discover()
    assert "upper" in found and found["upper"].convert({"messages": [{"content": "hi"}]}) == {"text": "HI"}
    sys.modules.pop("mixer.formats.upper", None)


def test_a_format_key_is_refused_for_other_formats(tmp_path: Path) -> None:
    from mixer.errors import RecipeError

    text = ('name = "m"\nseed = 0\nunit = "examples"\ntotal = 1\n[sources.s]\npath = "d.jsonl"\nweight = 1\n'
            '[output]\nformat = "trl"\nchat_template = "chatml"\n')
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(RecipeError, match=r'output\.chat_template: only used with format = "text"'):
        recipe.load(tmp_path / "r.toml")


def test_detection_follows_the_declared_order_and_the_source_kind() -> None:
    src = Source(name="s", path="x")
    assert input_formats.detect({"messages", "text"}, src) == "openai"
    assert input_formats.detect({"messages", "text"}, Source(name="s", path="x", kind="document")) == "document"
    assert input_formats.detect({"text"}, Source(name="s", path="x", kind="chat")) is None
    assert input_formats.detect({"prompt", "completion"}, src) is None
    assert input_formats.detect({"id", "source", "kind", "system", "messages", "tools", "text", "meta"}, src) == "canonical"


def test_the_same_problem_at_different_positions_is_counted_once(tmp_path: Path) -> None:
    records = [
        {"messages": [{"role": "bot", "content": "x"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "bot", "content": "c"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": ""}, {"role": "assistant", "content": "d"}]},
        chat("fine", "ok"),
    ]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    with path.open("ab") as fh:
        fh.write(b'{"messages": "\xff"}\n{"messages": [1, "\xfe"]}\n{oops\n[1, 2\n')
    _, report = read_source(Source(name="s", path=str(path), on_error="skip"))
    assert dict(report.rejected) == {
        "unknown role 'bot' (expected system, user, assistant or tool)": 2,
        "empty assistant turn": 1, "empty user turn": 1,
        "not valid UTF-8 (re-encode the file as UTF-8)": 2,
        "malformed JSON: Expecting property name enclosed in double quotes": 1,
        "malformed JSON: Expecting ',' delimiter": 1,
    }
    reasons = sorted(r.reason for r in report.rejects)
    assert "messages[0]: unknown role 'bot' (expected system, user, assistant or tool)" in reasons
    assert "messages[2]: unknown role 'bot' (expected system, user, assistant or tool)" in reasons
    assert "empty user turn at position 2" in reasons
    assert any(r.startswith("not valid UTF-8 (re-encode the file as UTF-8) at byte ") for r in reasons)


def test_transforms_are_found_in_their_modules() -> None:
    assert set(transforms.REGISTRY) >= {"system_prompt", "tools", "drop_system", "to_prompt", "documents_to_chat",
                                        "filter", "irrelevance"}
    for name in transforms.REGISTRY:
        assert callable(getattr(transforms, name))  # the library form, under the recipe name
