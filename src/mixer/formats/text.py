"""Plain text for pretraining-style trainers and synthetic-document finetuning.

Documents pass through as they are; chats are rendered with a chat template: the built-in
ChatML, a Jinja template file, or the ``chat_template`` of a ``tokenizer_config.json``. Templates
run in Jinja's immutable sandbox, as transformers runs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixer.errors import RecipeError
from mixer.formats import trl

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% if message['tool_calls'] %}{% for call in message['tool_calls'] %}"
    "{{ '<tool_call>\n' + (call['function'] | tojson) + '\n</tool_call>' }}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
)


class Template:
    """A compiled chat template and the special tokens it may refer to."""

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
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        return self.template.render(messages=messages, tools=tools or None, add_generation_prompt=False,
                                    bos_token=self.bos_token, eos_token=self.eos_token)


def _raise(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def load_template(spec: str | None, base_dir: Path) -> Template:
    """``None`` or ``"chatml"``: built-in; a ``.json`` path: a tokenizer config; else a Jinja file."""
    if spec in (None, "chatml"):
        return Template(CHATML)
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise RecipeError(f"output.chat_template: {path} does not exist (give \"chatml\", a .jinja file or a "
                          "tokenizer_config.json)")
    if path.suffix == ".json":
        config = json.loads(path.read_text(encoding="utf-8"))
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: use "default"
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        if not isinstance(template, str):
            raise RecipeError(f"output.chat_template: {path} has no chat_template")

        def token(key: str) -> str:
            value = config.get(key) or ""
            return value.get("content", "") if isinstance(value, dict) else value

        return Template(template, token("bos_token"), token("eos_token"))
    return Template(path.read_text(encoding="utf-8"))


def convert(row: dict[str, Any], template: Template | None = None) -> dict[str, Any]:
    if row["kind"] == "document":
        return {"text": row["text"]}
    from jinja2.exceptions import TemplateError

    from mixer.formats.common import Unrepresentable

    rendered = trl.convert(row)
    try:
        return {"text": (template or Template(CHATML)).render(rendered["messages"], rendered["tools"])}
    except TemplateError as exc:
        raise Unrepresentable(f"chat template refused the row: {exc}") from None


def features() -> Any:
    import datasets

    return datasets.Features({"text": datasets.Value("string")})
