"""Plain text for pretraining-style trainers and synthetic-document finetuning.

Documents pass through as they are; chats are rendered with a chat template: the built-in
ChatML, a Jinja template file, a saved tokenizer folder, or a ``tokenizer_config.json`` (whose
template is either inside it or, as current transformers saves it, in ``chat_template.jinja``
beside it). Templates run in Jinja's immutable sandbox, as transformers runs them.

Tools never vanish. A template that renders ``tools`` (Qwen2.5, Llama 3.1, ...) gets them as
its ``tools`` argument. A template that ignores ``tools`` (the built-in ChatML, Llama 3, Zephyr,
Phi-3, Gemma, Mistral v1 ...; found once per template by rendering a probe tool) gets them
folded into the system turn as the documented tools block (:func:`render_tools_block`, the
wording Qwen2.5 uses), the same block the ``torchtune`` and ``prompt`` formats write. We fold
rather than reject because the tools are the augmentation the recipe asked for: rejecting
would remove exactly the augmented rows. After rendering, every row is checked: its system
prompt, each tool name and each tool call's name must appear in the text, else the row is
counted as unrepresentable with the reason (never written without them); so is a row with
tool-call turns under a template that does not render tool calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from mixer.errors import RecipeError
from mixer.formats import trl
from mixer.formats.common import (Format, Unrepresentable, lines_of, openai_messages, per_spec, render_tools_block, spec,
                                  system_with_tools, tools)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% if message['tool_calls'] %}{% for call in message['tool_calls'] %}"
    "{{ '<tool_call>\n' + (call['function'] | tojson) + '\n</tool_call>' }}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
)

_PROBE = "mixer_probe_tool_7f3c1a"


class Template:
    """A compiled chat template, the special tokens it may refer to, and whether it renders tools."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        try:
            self.template = env.from_string(source)
        except TemplateError as exc:
            raise RecipeError(f"output.chat_template: not a valid Jinja template: {exc}") from None
        self.source = source
        self.bos_token, self.eos_token = bos_token, eos_token
        self.renders_tools = self._probe_tools()
        self.renders_tool_calls = self._probe_tool_calls()

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        return self.template.render(messages=messages, tools=tools or None, add_generation_prompt=False,
                                    bos_token=self.bos_token, eos_token=self.eos_token)

    def _probe_tools(self) -> bool:
        """True when a tool passed as ``tools`` shows up in the rendered text."""
        spec = {"type": "function", "function": {"name": _PROBE, "description": "probe",
                                                 "parameters": {"type": "object", "properties": {}}}}
        chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        try:
            return _PROBE in self.render(chat, [spec])
        except Exception:  # a template that cannot render the probe at all does not render tools
            return False


    def _probe_tool_calls(self) -> bool:
        """True when an assistant tool call shows up in the rendered text."""
        call = {"id": "call_0", "type": "function", "function": {"name": _PROBE, "arguments": {}}}
        chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
        try:
            return _PROBE in self.render(chat, [])
        except Exception:
            return False


def _raise(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def load_template(spec: str | None, base_dir: Path) -> Template:
    """``None`` or ``"chatml"``: built-in; a folder: a saved tokenizer; a ``.json``: a tokenizer
    config (template inside it or in ``chat_template.jinja`` beside it); else a Jinja file."""
    if spec in (None, "chatml"):
        return Template(CHATML)
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_dir():
        config = path / "tokenizer_config.json"
        if config.is_file():
            return _from_tokenizer_config(config)
        if (path / "chat_template.jinja").is_file():
            return Template((path / "chat_template.jinja").read_text(encoding="utf-8"))
        raise RecipeError(f"output.chat_template: {path} is a folder without tokenizer_config.json or "
                          "chat_template.jinja (give a saved tokenizer folder, a .jinja file or \"chatml\")")
    if not path.is_file():
        raise RecipeError(f"output.chat_template: {path} does not exist (give \"chatml\", a .jinja file, a "
                          "saved tokenizer folder or a tokenizer_config.json)")
    if path.suffix == ".json":
        return _from_tokenizer_config(path)
    return Template(path.read_text(encoding="utf-8"))


def _from_tokenizer_config(path: Path) -> Template:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecipeError(f"output.chat_template: {path} is not valid JSON ({exc})") from None
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: use "default"
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if template is None:  # transformers >= 4.47 saves the template beside the config
        beside = path.parent / "chat_template.jinja"
        if beside.is_file():
            template = beside.read_text(encoding="utf-8")
        elif (path.parent / "chat_template.json").is_file():
            template = json.loads((path.parent / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    if not isinstance(template, str):
        raise RecipeError(f"output.chat_template: {path} has no chat_template, and there is no "
                          "chat_template.jinja beside it")

    def token(key: str) -> str:
        value = config.get(key) or ""
        return value.get("content", "") if isinstance(value, dict) else value

    return Template(template, token("bos_token"), token("eos_token"))


def convert(row: dict[str, Any], template: Template | None = None) -> dict[str, Any]:
    if row["kind"] == "document":
        return {"text": row["text"]}
    from mixer.formats.common import require_answer

    require_answer(row, "text")
    from jinja2.exceptions import TemplateError

    template = template or Template(CHATML)
    messages, rendered = template_inputs(row, template)
    specs = tools(row)
    try:
        text = template.render(messages, rendered)
    except TemplateError as exc:
        raise Unrepresentable(f"chat template refused the row: {exc}") from None
    _check(text, row, specs, messages, template)
    return {"text": text}


def convert_frame(frame: pl.DataFrame, template: Template | None = None) -> tuple[Any, pl.Series] | None:
    """The rows :func:`convert` writes with the built-in ChatML, rendered at once by Polars string
    expressions (the same text, tools folded into the system turn as the same block), and which
    rows those are: documents, and chats ending on an assistant turn without tool calls whose
    tool names appear in their specs' JSON as they are (the check :func:`convert` makes). None
    (row by row, Jinja) for any other template."""
    if template is not None and (template.source != CHATML or template.bos_token or template.eos_token):
        return None
    turn = pl.element().struct
    calls = turn.field("tool_calls")
    named = per_spec(frame, _name_shown)
    document = pl.col("kind") == "document"
    chat = ((pl.col("kind") == "chat") & (pl.col("messages").list.last().struct.field("role") == "assistant")
            & ~pl.col("messages").list.eval(calls.is_not_null() & (calls != "")).list.any()
            & ~pl.col("tools").list.eval(named.is_null()).list.any())
    converted = frame.select(((document & pl.col("text").is_not_null()) | chat).fill_null(False)).to_series()

    def rendered(rows: pl.DataFrame) -> pl.Expr:
        system = system_with_tools(rows)
        framed = pl.concat_str(pl.lit("<|im_start|>"), turn.field("role"), pl.lit("\n"),
                               turn.field("content").fill_null(""), pl.lit("<|im_end|>\n"))
        chat_text = pl.concat_str(
            pl.concat_str(pl.lit("<|im_start|>system\n"), system, pl.lit("<|im_end|>\n")).fill_null(""),
            pl.col("messages").list.eval(framed).list.join(""),
            pl.when(pl.col("kind") == "chat").then(pl.lit("")))  # null for a document, whose text is its own
        return pl.coalesce(chat_text, pl.col("text")).alias("text")

    texts = lines_of(frame.filter(converted), rendered)
    return pl.DataFrame({"text": texts}).to_arrow().cast(features().arrow_schema), converted


def _name_shown(text: str) -> str | None:
    """A spec's name, or None when its JSON does not show the name as it is (a quote or backslash
    escaped): :func:`convert` refuses such a row, and says why."""
    name = spec(text)["function"]["name"]
    return name if name in json.dumps(spec(text), ensure_ascii=False) else None


def template_inputs(row: dict[str, Any], template: Template) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages and the tools a chat is rendered with: the row's tools as the template's
    ``tools`` argument when it renders them, else folded into the system turn as the tools block
    (transformers' ``apply_chat_template`` given these renders the same text: tested)."""
    messages, specs = _messages(row), tools(row)
    if template.renders_tools or not specs:
        return messages, specs
    block = render_tools_block(specs)
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{block}"
    else:
        messages.insert(0, {"role": "system", "content": block})
    return messages, []


def _messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-style messages with only the keys each turn uses and tool-call arguments as dicts,
    which is what transformers hands a template."""
    out = openai_messages(row)
    for m in out:
        for call in m.get("tool_calls", []):
            call["function"] = {**call["function"], "arguments": trl._arguments(call["function"]["arguments"])}
    return out


def _check(text: str, row: dict[str, Any], specs: list[dict[str, Any]], messages: list[dict[str, Any]],
           template: Template) -> None:
    """The row's system prompt, tools and tool calls must be in the rendered text."""
    system = row.get("system")
    if system and system.strip() not in text:
        raise Unrepresentable("chat template dropped the system prompt")
    missing = [s["function"]["name"] for s in specs if s["function"]["name"] not in text]
    if missing:
        raise Unrepresentable(f"chat template dropped tool specs ({', '.join(missing[:3])})")
    calls = [c["function"]["name"] for m in messages for c in m.get("tool_calls", [])]
    if calls and not template.renders_tool_calls:
        raise Unrepresentable("chat template does not render tool calls")
    if any(name not in text for name in calls):
        raise Unrepresentable("chat template dropped tool calls")


def features() -> Any:
    import datasets

    return datasets.Features({"text": datasets.Value("string")})


def options(output: Any, base_dir: Path) -> dict[str, Any]:
    """The recipe's ``chat_template``, loaded once per build."""
    return {"template": load_template(output.chat_template, base_dir)}


# no read_back: the rows are rendered already, there is nothing left for an audit to render
FORMAT = Format("text", "parquet", convert, "plain-text trainers: chat template rendered, documents as is",
                features, keys=("chat_template",), options=options, order=70, convert_frame=convert_frame)
