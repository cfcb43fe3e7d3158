"""``[output] audit``: a build renders what it wrote with the trainer's template and says where
system prompts and tools land; trainer formats keep each written row's source and id in
rows.parquet so audit and diff report per source."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import polars as pl
import pytest
from click.testing import CliRunner

from conftest import HH, REPO, SHARED, chats, needs_shared, write_jsonl, write_recipe
from mixer import audit as audit_mod
from mixer.cli import main

TEMPLATES = SHARED / "chat_templates"
DIVERSIFIED = REPO / "recipes" / "harmlessness-diversified.toml"


def build(tmp_path: Path, *sets: str) -> tuple[int, str, Path]:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(DIVERSIFIED), "--set", f"sources.harmless.path={HH}",
                                       "--set", "total=40000", "--set", 'output.format="trl"', *sets,
                                       "--out", str(out), "-q"])
    return result.exit_code, result.output, out


@needs_shared
def test_a_build_audits_what_it_wrote_and_names_the_template_s_injection(tmp_path: Path) -> None:
    code, output, out = build(tmp_path, "--set", f"output.audit={TEMPLATES / 'qwen2.5-instruct.jinja'}")
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    audit = manifest["audit"]
    assert audit["audited"] == manifest["export"]["rows"]["train"]
    assert "template injected: You are Qwen" in "\n".join(audit["total"]["examples"])
    assert audit["sources"]["harmless"]["tools"]["system turn"] > 0
    assert "audit with" in output and "template injected: You are Qwen" in output
    assert "mixer's estimate: rendered" in output


@needs_shared
def test_under_strict_an_audit_finding_fails_the_build_and_writes_nothing(tmp_path: Path) -> None:
    code, output, out = build(tmp_path, "--set", f"output.audit={TEMPLATES / 'gemma-it.jinja'}", "--strict")
    assert code == 1 and "the audit with" in output and "tools absent from the rendered text" in output
    assert not out.exists()


def test_a_template_that_does_not_load_fails_before_any_data_is_read(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(5))
    r = write_recipe(tmp_path / "r.toml", '[sources.a]\npath = "a.jsonl"\nexamples = 5\n'
                                          '[output]\nformat = "trl"\naudit = "missing.jinja"\n')
    for command in (["validate", str(r)], ["build", str(r), "--out", str(tmp_path / "o"), "-q"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2 and "output.audit" in result.output and "missing.jinja" in result.output
    assert not (tmp_path / "o").exists()


def test_trainer_formats_record_each_written_row_s_source_and_id(tmp_path: Path) -> None:
    bad = {"name": "math.sum", "parameters": {"type": "object", "properties": {}}}
    write_jsonl(tmp_path / "a.jsonl", [dict(c, tools=[bad]) if i % 3 == 0 else c for i, c in enumerate(chats(30, "a"))])
    write_jsonl(tmp_path / "b.jsonl", chats(30, "b"))
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 40\nvalidation = 0.2\n[output]\nformat = "openai"\n'
                                          '[sources.a]\npath = "a.jsonl"\nweight = 1\n[sources.b]\npath = "b.jsonl"\n'
                                          'weight = 1\n')
    result = CliRunner().invoke(main, ["build", str(r), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    rows = pl.read_parquet(tmp_path / "o" / "rows.parquet")
    assert manifest["provenance_file"] == "rows.parquet"
    for split in ("train", "validation"):
        written = [json.loads(line) for f in manifest["outputs"] if f["split"] == split
                   for line in (tmp_path / "o" / f["path"]).read_text().splitlines()]
        mine = rows.filter(pl.col("split") == split)
        assert mine.height == len(written) == manifest["export"]["rows"][split]
        # the i-th record is the i-th provenance row: same first user turn
        assert [w["messages"][0]["content"][0] for w in written] == [s[0] for s in mine.get_column("source")]
    per_source = rows.filter(pl.col("split") == "train").group_by("source").len().sort("source")
    exported = manifest["export"]["sources"]
    assert per_source.get_column("len").to_list() == [exported["a"]["rows_written"]["train"],
                                                       exported["b"]["rows_written"]["train"]]
    loaded = datasets.load_dataset(str(tmp_path / "o"))
    assert loaded["train"].num_rows == manifest["export"]["rows"]["train"]  # rows.parquet is not data
    audit = audit_mod.audit(tmp_path / "o", "chatml")
    assert set(audit.sources) == {"a", "b"}


def test_diff_reports_rows_added_and_removed_per_source_for_trainer_formats(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(40, "a"))
    r = write_recipe(tmp_path / "r.toml", 'unit = "examples"\n[output]\nformat = "trl"\n'
                                          '[sources.a]\npath = "a.jsonl"\nexamples = 30\n')
    runner = CliRunner()
    for name, n in (("big", 30), ("small", 20)):
        result = runner.invoke(main, ["build", str(r), "--set", f"sources.a.examples={n}", "--out",
                                      str(tmp_path / name), "-q"])
        assert result.exit_code == 0, result.output
    diff = runner.invoke(main, ["diff", str(tmp_path / "big"), str(tmp_path / "small"), "--json"])
    assert diff.exit_code == 1
    [a] = json.loads(diff.output)["sources"]
    assert (a["name"], a["added"], a["removed"]) == ("a", 0, 10)  # nested selection: the smaller build is a subset


@needs_shared
def test_a_build_audit_counts_with_the_recipe_s_model_tokenizer_and_shows_its_ratios(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    from test_model_tokenizer import train_tokenizer

    with gzip.open(HH / "test.jsonl.gz", "rt") as f:
        texts = [json.loads(next(f))["chosen"] for _ in range(200)]
    path = train_tokenizer(tmp_path / "model", texts)
    code, output, out = build(tmp_path, "--set", f"output.audit={TEMPLATES / 'chatml.jinja'}",
                              "--set", f'tokenizer="{path}"')
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "sha256" in manifest["audit"]["tokens_counted_with"]  # the model's tokens, not cl100k_base
    assert str(path) in manifest["audit"]["tokens_counted_with"]
    assert "the template renders" in output and "trains on" in output
    report = (out / "report.html").read_text()
    assert "Trainer template audit" in report and "trainable tokens" in report
    # mixer audit afterwards counts with the build's tokenizer too and lands on the same comparison
    again = CliRunner().invoke(main, ["audit", str(out), "-t", str(TEMPLATES / "chatml.jinja"), "--json"])
    assert again.exit_code == 0, again.output
    found = json.loads(again.output[again.output.index("{"):])
    assert found["tokens_counted_with"] == manifest["audit"]["tokens_counted_with"]
    for name, entry in manifest["audit"]["sources"].items():
        assert found["sources"][name]["estimate"] == entry["estimate"]


@needs_shared
def test_the_audit_compares_with_mixer_s_estimate_counting_export_rejected_rows(tmp_path: Path) -> None:
    from mixer import manifest as manifest_mod

    code, output, out = build(tmp_path, "--set", f"output.audit={TEMPLATES / 'qwen2.5-instruct.jinja'}",
                              "--set", "total=200000")
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    manifest_mod.check(manifest)  # the manifest on disk still adds up
    rejected = sum(manifest["export"]["sources"]["harmless"]["rejected"]["train"].values())
    assert rejected > 0  # this slice has a prompt-only row trl cannot carry
    audited = manifest["audit"]["sources"]["harmless"]
    estimate = audited["estimate"]
    selected = manifest["sources"]["harmless"]["token_counts"]["selected"]
    assert estimate["export_rejected"] == rejected
    assert estimate["rendered"] == selected["rendered"] and estimate["assistant"] == selected["assistant"]
    assert estimate["rendered_ratio"] == round(audited["rendered_tokens"] / selected["rendered"], 4)
    assert estimate["trainable_ratio"] == round(audited["trainable_tokens"] / selected["assistant"], 4)
    assert f"{rejected:,} export-rejected rows in it" in output and "trains on" in output
    report = (out / "report.html").read_text()
    assert "Trainer template audit" in report and f"{estimate['rendered_ratio']:.2f}" in report
