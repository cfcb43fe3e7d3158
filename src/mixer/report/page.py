"""The HTML page: one self-contained file with inline CSS and inline SVG, and no script.

A Content-Security-Policy meta tag forbids every fetch (``default-src 'none'``), so even a
URL inside an example row can never make the page reach the network: it is opened on
air-gapped clusters. Everything from the data is escaped by Jinja's autoescape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup

from mixer.report.blocks import Section

TRUNCATE = 700  # characters of one turn, system prompt or document shown in an example


@dataclass
class Part:
    """A titled group of sections: the mixture itself, or one stage of a staged build."""

    id: str
    title: str
    sections: list[Section]
    scope: str = ""  # the manifest this part's cell keys refer to, relative to the report's folder
    subtitle: str = ""


@dataclass
class Page:
    title: str
    subtitle: str
    parts: list[Part] = field(default_factory=list)
    intro: list[Section] = field(default_factory=list)


def _clip(value: Any, limit: int = TRUNCATE) -> str:
    value = "" if value is None else str(value)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… [{len(value) - limit:,} more characters]"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_TEMPLATE = r"""{% macro section(s, prefix, scope, level) -%}
<section id="{{ prefix ~ '-' if prefix else '' }}{{ s.id }}"{% if s.scope %} data-scope="{{ s.scope }}"{% endif %}>
<h{{ level }}>{{ s.title }}</h{{ level }}>
{% for b in s.blocks %}
{% if b.kind == "chart" %}{{ b.svg|safe }}{% if b.caption %}<p class="note">{{ b.caption }}</p>{% endif %}
{% elif b.kind == "note" %}<p class="note">{{ b.text }}</p>
{% elif b.kind == "table" %}<div class="scroll"><table{% if b.cls %} class="{{ b.cls }}"{% endif %}>{% if b.caption %}<caption>{{ b.caption }}</caption>{% endif %}
{% if b.headers|select|list %}<tr>{% for h in b.headers %}<th>{{ h }}</th>{% endfor %}</tr>{% endif %}
{% for row in b.rows %}<tr>{% for c in row %}<td{% if c.cls %} class="{{ c.cls }}"{% endif %}{% if c.key %} data-key="{{ c.key }}" data-value="{{ value(c.value) }}"{% endif %}>{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% elif b.kind == "examples" %}{% for source, rows in b.rows.items() %}<p class="src">{{ source }}</p>
{% for r in rows %}{{ example(r) }}{% endfor %}{% endfor %}
{% endif %}
{% endfor %}
</section>
{%- endmacro %}
{% macro example(r) -%}
<div class="ex"><div class="exhead">{{ r.id }}{% if r.origin %} · {{ r.origin }}{% endif %}{% if r.n_tokens is not none %} · {{ "{:,}".format(r.n_tokens) }} tokens{% endif %}
{% for a in r.augmentations %} <span class="tag inj">{{ a }}</span>{% endfor %}</div>
{% if r.system %}<div class="sys{% if r.system_injected %} inj{% endif %}"><span class="tag{% if r.system_injected %} inj{% endif %}">{% if r.system_injected %}injected system prompt · {{ r.system_injected }}{% else %}system prompt{% endif %}</span>{{ clip(r.system) }}</div>{% endif %}
{% if r.tools %}<div class="tools{% if r.tools_injected %} inj{% endif %}"><span class="tag{% if r.tools_injected %} inj{% endif %}">{{ r.tools_count }} tool{{ "s" if r.tools_count != 1 }}{% if r.tools_injected %} · {{ r.tools_injected|length }} injected{% endif %}</span>
<ul>{% for t in r.tools %}<li>{{ t }}</li>{% endfor %}{% if r.tools_hidden %}<li>… {{ r.tools_hidden }} more</li>{% endif %}</ul></div>{% endif %}
{% if r.text is not none %}<div class="doc">{{ clip(r.text) }}</div>{% endif %}
{% for t in r.turns %}<div class="turn {{ t.role }}">{% if t.role != "user" %}<span class="role">{{ t.role }}</span>{% endif %}<div class="b">{{ clip(t.content) }}{% if t.tool_calls %}<pre class="call">{{ clip(t.tool_calls, 400) }}</pre>{% endif %}</div>{% if t.role == "user" %}<span class="role">user</span>{% endif %}</div>
{% endfor %}{% if r.turns_hidden %}<p class="note">… {{ r.turns_hidden }} more turn{{ "s" if r.turns_hidden != 1 }} not shown</p>{% endif %}</div>
{%- endmacro %}
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mixer report">
<title>{{ page.title }}: mixer report</title>
<style>
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--inj:#d9730d;--injbg:#fff4e5}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:#fff}
header{padding:18px 28px;border-bottom:1px solid var(--line);background:var(--bg)}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:var(--muted)}
nav{padding:8px 28px;border-bottom:1px solid var(--line);font-size:13px;position:sticky;top:0;background:#fff;z-index:1}
nav a{margin-right:14px;color:#0969da;text-decoration:none}nav b{margin-right:10px}
main{padding:0 28px 40px;max-width:1180px}
h2{font-size:19px;margin:30px 0 6px;padding-top:6px;border-top:3px solid var(--ink)}
h3{font-size:16px;margin:26px 0 8px}
svg.chart{width:100%;height:auto;display:block;margin:6px 0}
table{border-collapse:collapse;margin:8px 0 4px;font-size:13px}th,td{border-bottom:1px solid var(--line);padding:3px 10px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:12px;padding-top:4px}
.note{color:var(--muted);font-size:13px;max-width:900px}
.scroll{overflow-x:auto}td.step{font-weight:600}table.kv td.num{text-align:left}table.kv td:first-child{color:var(--muted);white-space:nowrap}
.src{margin:14px 0 4px;font-weight:600}
.ex{border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:8px 0 14px;max-width:900px;background:#fff}
.exhead{font-size:12px;color:var(--muted);margin-bottom:6px;word-break:break-all}
.tag{display:inline-block;font-size:11px;font-weight:600;padding:0 6px;border-radius:9px;margin-right:6px;background:#eef1f4;color:var(--muted)}
.tag.inj{background:var(--inj);color:#fff}
.sys,.tools{border:1px dashed var(--line);border-radius:6px;padding:6px 9px;margin:4px 0 8px;font-size:13px;background:var(--bg)}
.sys.inj,.tools.inj{border:2px solid var(--inj);background:var(--injbg)}
.tools ul{margin:4px 0 0;padding-left:20px;columns:2}
.turn{display:flex;margin:6px 0}.turn .b{max-width:78%;padding:7px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;font-size:13px}
.turn.user{justify-content:flex-end}.turn.user .b{background:#0969da;color:#fff;border-bottom-right-radius:3px}
.turn.assistant .b{background:#eef1f4;border-bottom-left-radius:3px}
.turn.tool .b{background:#fff8c5;font-family:ui-monospace,monospace;font-size:12px}
.role{font-size:11px;color:var(--muted);margin:0 6px;align-self:flex-end}
.doc{white-space:pre-wrap;font-size:13px;background:var(--bg);border-radius:6px;padding:8px 10px;max-height:none}
pre.call{margin:4px 0 0;font-size:11px;white-space:pre-wrap;background:rgba(0,0,0,.06);padding:4px;border-radius:4px}
.stage{font-size:13px;color:var(--muted);margin:0 0 6px}
</style></head>
<body>
<header><h1>{{ page.title }}</h1><p>{{ page.subtitle }}</p></header>
<nav>{% for part in page.parts %}{% if page.parts|length > 1 %}<b><a href="#{{ part.id }}">{{ part.title }}</a></b>{% endif %}{% if page.parts|length == 1 %}{% for s in part.sections %}<a href="#{{ part.id }}-{{ s.id }}">{{ s.title }}</a>{% endfor %}{% endif %}{% endfor %}</nav>
<main>
{% for s in page.intro %}{{ section(s, "", "", 2) }}{% endfor %}
{% for part in page.parts %}
{% if page.parts|length > 1 %}<h2 id="{{ part.id }}">{{ part.title }}</h2>{% if part.subtitle %}<p class="stage">{{ part.subtitle }}</p>{% endif %}{% endif %}
<div data-scope="{{ part.scope }}">
{% for s in part.sections %}{{ section(s, part.id, part.scope, 3 if page.parts|length > 1 else 2) }}{% endfor %}
</div>
{% endfor %}
</main></body></html>
"""

_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_ENV.globals.update(clip=_clip, value=_value)


def render(page: Page) -> str:
    """The page as one HTML string (deterministic: no timestamps, no random ids)."""
    return _ENV.from_string(_TEMPLATE).render(page=page).lstrip()


__all__ = ["Markup", "Page", "Part", "render"]
