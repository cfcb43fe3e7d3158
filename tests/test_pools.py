"""Built-in pools are well-formed; user pools and real catalogs load; templates are safe."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import re

import polars as pl

from conftest import SHARED, TOOL_SPECS, needs_shared
from mixer.errors import RecipeError
from mixer.pools import builtin_records, tags
from mixer.pools.catalog import generated_entries, load_catalog
from mixer.pools.generator import DOMAINS, VERBS
from mixer.pools.prompts import load_bank
from mixer.pools.templates import SLOTS, faker, fill, slots


def test_builtin_tools_are_many_valid_json_schemas_across_domains() -> None:
    records = builtin_records("tools")
    assert len(records) >= 150 and len({r["domain"] for r in records}) >= 15
    names = [r["function"]["name"] for r in records]
    assert len(set(names)) == len(names)
    for r in records:
        params = r["function"]["parameters"]
        jsonschema.Draft7Validator.check_schema(params)
        assert params["type"] == "object" and r["function"]["description"]
        assert set(params.get("required", [])) <= set(params["properties"])


def test_builtin_system_prompts_are_varied_and_use_only_allowed_slots() -> None:
    records = builtin_records("system_prompts")
    assert len(records) >= 60 and len({r["style"] for r in records}) >= 8
    assert sum(r["text"].startswith("You are") for r in records) <= len(records) / 2
    for r in records:
        assert "{" not in fill(r["text"], faker("en_US", 0)), r["id"]  # every brace was a slot


def test_generated_tools_are_valid_varied_and_deterministic() -> None:
    one, two = generated_entries(200, seed=3), generated_entries(200, seed=3)
    assert one == two and generated_entries(200, seed=4) != one
    for _, _, spec, _ in one:
        params = json.loads(spec)["function"]["parameters"]
        jsonschema.Draft202012Validator.check_schema(params)
        assert set(params["required"]) <= set(params["properties"])  # every required field is declared
    many = generated_entries(30_000, seed=0)
    assert len({spec for _, _, spec, _ in many}) >= 10_000  # at least 10k distinct specs per seed


def test_generated_tools_read_like_apis_not_lorem() -> None:
    specs = [json.loads(spec)["function"] for _, _, spec, _ in generated_entries(300, seed=1)]
    for fn in specs:
        verb = fn["name"].split("_")[0] if not fn["name"].startswith(tuple(f"{d}_" for d in DOMAINS)) \
            else fn["name"].split("_")[1]
        assert verb in VERBS, fn["name"]
        assert fn["description"][0].isupper() and fn["description"].endswith(".")
    ids = [p for fn in specs for p in fn["parameters"]["properties"] if p.endswith("_id")]
    assert ids and all(re.fullmatch(r"[a-z_]+_id", p) for p in ids)


@pytest.mark.parametrize("template", ["{0.__class__}", "{company.__init__}", "{city!r}", "{date:%Y}",
                                      "{__import__('os')}", "{company[0]}", "{unknown_slot}"])
def test_template_tricks_are_left_literal(template: str) -> None:
    assert fill(f"Hi {template} there", faker("en_US", 1)) == f"Hi {template} there"


def test_allowed_slots_are_filled_deterministically() -> None:
    text = "At {company} in {city}, {person} on {date}"
    assert slots(text) == ["company", "city", "person", "date"]
    a, b = fill(text, faker("en_US", 7)), fill(text, faker("en_US", 7))
    assert a == b and "{" not in a and a != fill(text, faker("en_US", 8))
    assert set(SLOTS) >= {"company", "person", "city", "date", "job", "product"}


def test_unknown_locale_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="unknown Faker locale 'xx_XX'"):
        faker("xx_XX", 0)


def test_prompt_pools_from_txt_jsonl_and_csv_mix_by_weight(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first prompt\n\nsecond prompt at {company}\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "x", "system_prompt": "from jsonl"}) + "\n")
    (tmp_path / "c.csv").write_text("act,prompt\nCritic,from csv\n")
    bank = load_bank(["a.txt", {"path": "b.jsonl", "weight": 2}, {"path": "c.csv", "column": "prompt"}],
                     seed=0, position=0, variants=4, base_dir=tmp_path)
    assert "from jsonl" in bank.texts and "from csv" in bank.texts and "first prompt" in bank.texts
    assert bank.probs[bank.texts.index("from jsonl")] == pytest.approx(0.5)
    assert sum("{company}" not in t and t.startswith("second prompt at ") for t in bank.texts) == 4


def test_missing_pool_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="pool file .*nope.txt does not exist"):
        load_bank("nope.txt", seed=0, position=0, base_dir=tmp_path)


def test_catalog_accepts_wrapped_and_bare_specs(tmp_path: Path) -> None:
    bare = {"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {}}}
    wrapped = {"type": "function", "function": {**bare, "name": "lookup2"}}
    (tmp_path / "t.jsonl").write_text(json.dumps(bare) + "\n" + json.dumps(wrapped) + "\n")
    (tmp_path / "t.json").write_text(json.dumps([bare]))
    cat = load_catalog(["t.jsonl", "t.json"], seed=0, base_dir=tmp_path)
    assert cat.names == ["lookup", "lookup2", "lookup"]
    assert all(json.loads(s)["type"] == "function" for s in cat.specs)


@needs_shared
def test_real_tool_catalogs_load() -> None:
    cat = load_catalog([str(TOOL_SPECS / "bfcl_tools.jsonl.gz"), str(TOOL_SPECS / "seal_tools.jsonl.gz")], seed=0)
    assert len(cat) == 3526 + 4076
    assert cat.ids[0].startswith("bfcl_tools.jsonl.gz:bfcl-")


# --------------------------------------------------------------------------- length cap, row filters, escapes

PROMPTS_CSV = SHARED / "awesome_chatgpt_prompts" / "prompts.csv.gz"


def test_entries_over_max_chars_are_skipped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("short\n" + "long " * 2000 + "\n" + "y" * 50 + "\n")
    bank = load_bank("p.txt", seed=0, position=0, base_dir=tmp_path)
    assert bank.texts == ["short", "y" * 50] and bank.report["p.txt"]["skipped"] == {"over max_chars = 8000": 1}
    capped = load_bank({"path": "p.txt", "max_chars": 10}, seed=0, position=0, base_dir=tmp_path)
    assert capped.texts == ["short"] and capped.report["p.txt"]["skipped"] == {"over max_chars = 10": 2}
    assert len(load_bank({"path": "p.txt", "max_chars": 0}, seed=0, position=0, base_dir=tmp_path)) == 3


def test_a_pool_with_every_entry_over_the_cap_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x" * 9000 + "\n")
    with pytest.raises(RecipeError, match="no entries left .*over max_chars = 8000: 1"):
        load_bank("p.txt", seed=0, position=0, base_dir=tmp_path)


@needs_shared
def test_real_prompt_collection_drops_image_rows_and_overlong_entries() -> None:
    rows = pl.read_csv(PROMPTS_CSV)
    bank = load_bank({"path": str(PROMPTS_CSV), "column": "prompt", "exclude": {"type": "IMAGE"}},
                     seed=0, position=0, variants=1)
    images = rows.with_row_index("line", offset=2).filter(pl.col("type") == "IMAGE").get_column("line").to_list()
    overlong = rows.filter((pl.col("type") != "IMAGE") & (pl.col("prompt").str.len_chars() > 8000)).height
    report = bank.report["prompts.csv.gz"]
    assert report["skipped"] == {"exclude type = IMAGE": len(images), "over max_chars = 8000": overlong}
    assert report["entries"] == rows.height - len(images) - overlong
    assert max(map(len, bank.texts)) <= 8000 + 200  # filled slots may add a few characters
    assert not {f"prompts.csv.gz:{line}" for line in images} & {i.split("~")[0] for i in bank.ids}
    only_text = load_bank({"path": str(PROMPTS_CSV), "include": {"type": "TEXT"}, "max_chars": 0},
                          seed=0, position=0, variants=1)
    assert only_text.report["prompts.csv.gz"]["entries"] == rows.filter(pl.col("type") == "TEXT").height


def test_row_filters_apply_to_builtin_catalogs_too() -> None:
    cat = load_catalog({"name": "builtin", "include": {"domain": ["travel", "finance"]}}, seed=0)
    domains = {r["id"]: r["domain"] for r in builtin_records("tools")}
    assert cat.ids and {domains[i.split(":", 1)[1]] for i in cat.ids} <= {"travel", "finance"}
    assert sum(cat.report["builtin"]["skipped"].values()) == len(domains) - len(cat)


@pytest.mark.parametrize("template, expected", [
    ("Write {{company}} where the name goes.", "Write {company} where the name goes."),
    ("{{company}} vs {company}", None),
    ("Keep {{unknown}} and {{ company }} as they are.", "Keep {{unknown}} and {{ company }} as they are."),
])
def test_double_braces_escape_a_literal_slot(template: str, expected: str | None) -> None:
    out = fill(template, faker("en_US", 3))
    if expected is not None:
        assert out == expected
    else:
        assert out.startswith("{company} vs ") and "{company}" not in out[len("{company} vs "):]
    assert slots("{{company}} only") == []


def test_escaped_slots_reach_the_bank_literally(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Reply as {{company}}.\nAt {company}, say {{person}}.\n")
    bank = load_bank("p.txt", seed=0, position=0, variants=3, base_dir=tmp_path)
    assert bank.texts[0] == "Reply as {company}." and len(bank) == 4
    assert all(t.startswith("At ") and t.endswith(", say {person}.") and "{company}" not in t for t in bank.texts[1:])


# --------------------------------------------------------------------------- constraint tags

CONSTRAINED = re.compile(r"JSON|YAML|Markdown|plain text|Deutsch|français|Japanese|language|under \d+|"
                         r"no more than|sentences|brief|concise|words", re.I)


#: Entries whose wording trips CONSTRAINED but that impose no format, language or length rule on
#: the answer (read one by one): "plain language", "plain words", "passwords", "the local
#: language" of the user's situation, "match the reading level", a soft "polite and concise",
#: a persona's "short salty sentences", paragraph advice for email drafts.
REVIEWED_UNTAGGED = {"sp-012", "sp-028", "sp-034", "sp-038", "sp-046", "sp-050", "sp-065", "sp-080", "sp-081"}


def test_every_builtin_prompt_with_a_format_language_or_length_rule_is_tagged() -> None:
    records = builtin_records("system_prompts")
    for r in records:
        assert isinstance(r["tags"], list) and all(tags.check(t) == t for t in r["tags"]), r["id"]
        if CONSTRAINED.search(r["text"]) and r["id"] not in REVIEWED_UNTAGGED:
            assert r["tags"], f"{r['id']} states a rule but has no tag: {r['text'][:80]}"
    assert sum(bool(r["tags"]) for r in records) >= 11  # at least the ~13% the issue counted


def test_tag_checks_on_answers() -> None:
    answers = pl.Series(['{"answer": "x", "confidence": 0.9}', "Plain words here. Two sentences.",
                         "**Bold** and\n- a bullet", "Das ist nicht die Antwort, die ich für dich habe und es ist gut.",
                         "日本語で回答します。ありがとうございます。よろしくお願いします。", "Wow! Great."])
    got = {tag: tags.satisfied(tag, answers).tolist() for tag in
           ("format:json", "format:plain", "format:no_exclamation", "language:de", "language:ja",
            "length:sentences<=2", "length:bullets<=0", "format:yaml", "language:user")}
    assert got["format:json"] == [True, False, False, False, False, False]
    assert got["format:plain"] == [True, True, False, True, True, True]
    assert got["format:no_exclamation"] == [True, True, True, True, True, False]
    assert got["language:de"] == [False, False, False, True, False, False]
    assert got["language:ja"] == [False, False, False, False, True, False]
    assert got["length:sentences<=2"][1] and got["length:sentences<=2"][5]
    assert got["length:bullets<=0"] == [True, True, False, True, True, True]
    assert not any(got["format:yaml"]) and all(got["language:user"])


def _answer_breaks(tag: str, answer: str) -> bool:
    """An independent reading of each tag, per answer in plain Python."""
    kind, _, rest = tag.partition(":")
    if tag == "format:json":
        try:
            json.loads(answer)
            return False
        except ValueError:
            return True
    if tag == "format:plain":
        return bool(re.search(r"\*\*|`|^\s*(#|[-*+]\s|\d+[.)]\s)", answer, re.M)) or any(ord(c) >= 0x1F300 for c in answer)
    if tag == "format:no_exclamation":
        return "!" in answer
    if tag == "language:user":
        return False
    if kind == "length":
        words = len(answer.split())
        if rest == "brief":
            return words > 100
        what, limit = rest.split("<=")
        size = {"chars": len(answer), "words": words,
                "sentences": len([s for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s]),
                "bullets": len(re.findall(r"^\s*(?:[-*+•]|\d+[.)])\s", answer, re.M))}[what]
        return size > int(limit)
    return True  # yaml, markdown, custom, local, and other languages: English prose never meets them


@needs_shared
def test_default_system_prompts_never_contradict_the_kept_hh_answer() -> None:
    from mixer import transforms
    from mixer.recipe import Source
    from mixer.sources.read import read_source

    hh = read_source(Source(name="hh", path=str(SHARED / "hh_rlhf_harmless_base")))[0]
    tags_of = {r["id"]: r["tags"] for r in builtin_records("system_prompts")}

    def broken(out: pl.DataFrame) -> list[tuple[str, str]]:
        bad = []
        for meta, turns in zip(out.get_column("meta").to_list(), out.get_column("messages").to_list()):
            ident = json.loads(meta).get("aug.0.system_prompt")
            if ident is None or turns[-1]["role"] != "assistant":
                continue
            for tag in tags_of[ident.split(":", 1)[1].split("~")[0]]:
                if _answer_breaks(tag, turns[-1]["content"]):
                    bad.append((ident, tag))
        return bad

    default = transforms.system_prompt(hh, p=1.0, seed=1)
    assert default.get_column("system").is_not_null().all()
    assert broken(default) == []
    used = {json.loads(m)["aug.0.system_prompt"].split("~")[0] for m in default.get_column("meta").to_list()}
    assert any(tags_of[u.split(":")[1]] for u in used)  # tagged prompts still go to answers that meet them
    assert len(broken(transforms.system_prompt(hh, p=1.0, seed=1, constraints="any"))) > 50  # the old behaviour
    # Prompt-only rows (after to_prompt) may draw every prompt, JSON and German ones included.
    prompts = transforms.system_prompt(transforms.to_prompt(hh), p=1.0, seed=1)
    drawn = {json.loads(m)["aug.0.system_prompt"].split("~")[0] for m in prompts.get_column("meta").to_list()}
    assert {"builtin:sp-053", "builtin:sp-059", "builtin:sp-060"} <= drawn


def test_styles_and_tags_choose_entries() -> None:
    from mixer.pools.prompts import Selection

    styles = {r["id"]: r["style"] for r in builtin_records("system_prompts")}
    tags_of = {r["id"]: r["tags"] for r in builtin_records("system_prompts")}

    def ids(select: Selection) -> set[str]:
        bank = load_bank("builtin", seed=0, position=0, variants=1, select=select)
        return {i.split(":")[1].split("~")[0] for i in bank.ids}

    assert {styles[i] for i in ids(Selection(styles=("terse", "persona")))} == {"terse", "persona"}
    assert "scenario" not in {styles[i] for i in ids(Selection(exclude_styles=("scenario",)))}
    assert not any(t.startswith("language:") for i in ids(Selection(exclude_tags=("language",))) for t in tags_of[i])
    assert all("format:json" in tags_of[i] for i in ids(Selection(tags=("format:json",))))
    bank = load_bank("builtin", seed=0, position=0, variants=1, select=Selection(exclude_tags=("format",)))
    assert sum(bank.report["builtin"]["skipped"].values()) == sum(
        any(t.startswith("format:") for t in ts) for ts in tags_of.values())


def test_mixer_pools_documents_every_constraint_tag() -> None:
    from click.testing import CliRunner

    from mixer.cli import main

    result = CliRunner().invoke(main, ["pools"])
    assert result.exit_code == 0
    for tag, meaning in tags.TAGS.items():
        assert tag in result.output and meaning in result.output
    assert "constraints = \"compatible\"" in result.output and "8,000 characters" in result.output


def test_user_pool_tags_are_checked_and_honoured(tmp_path: Path) -> None:
    from mixer import transforms
    from mixer.recipe import Source
    from mixer.sources.read import read_source

    from conftest import chats, write_jsonl

    write_jsonl(tmp_path / "pool.jsonl", [{"id": "json", "text": "Reply only in JSON.", "tags": ["format:json"]},
                                          {"id": "free", "text": "Be helpful.", "tags": []}])
    frame = read_source(Source(name="s", path=str(write_jsonl(tmp_path / "c.jsonl", chats(200)))))[0]
    out = transforms.system_prompt(frame, pool="pool.jsonl", base_dir=tmp_path, seed=0)
    assert set(out.get_column("system")) == {"Be helpful."}
    prompts = transforms.system_prompt(transforms.to_prompt(frame), pool="pool.jsonl", base_dir=tmp_path, seed=0)
    assert set(prompts.get_column("system")) == {"Be helpful.", "Reply only in JSON."}
    write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "text": "Hi.", "tags": ["format:jason"]}])
    with pytest.raises(RecipeError, match=r"bad.jsonl:x: tags: unknown constraint tag 'format:jason' \(did you mean 'format:json'"):
        load_bank("bad.jsonl", seed=0, position=0, base_dir=tmp_path)


def test_builtin_tool_enums_are_strings_so_every_trainer_can_render_them() -> None:
    """LLaMA-Factory's default tool format joins enum values as strings (a number raised TypeError)."""
    from mixer.pools import builtin_records

    def enums(schema):
        if isinstance(schema, dict):
            yield from ([schema["enum"]] if "enum" in schema else [])
            for value in schema.values():
                yield from enums(value)

    for record in builtin_records("tools"):
        for values in enums(record["function"].get("parameters")):
            assert all(isinstance(v, str) for v in values), record["id"]
