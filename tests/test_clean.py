"""Dedup and decontamination: what is caught, who survives, and that every row is accounted for."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from conftest import HH, SHARED, chats, needs_shared, write_jsonl, write_recipe
from mixer import pipeline

EVAL = SHARED / "agentic_misalignment"
BUCKETS = ("rows_rejected", "rows_deduplicated", "rows_decontaminated", "rows_filtered", "rows_available")


def accounted(entry: dict) -> bool:
    return entry["rows_read"] == sum(entry[b] for b in BUCKETS)


def test_exact_dedup_ignores_case_whitespace_and_unicode_forms(tmp_path: Path) -> None:
    base = chats(20)
    variants = [
        {"messages": [{"role": "user", "content": "Q QUESTION 3  " + "WORD " * 3}, base[3]["messages"][1]]},
        {"messages": [{"role": "user", "content": base[4]["messages"][0]["content"].replace(" ", "\u00a0")},
                      base[4]["messages"][1]]},
    ]
    write_jsonl(tmp_path / "a.jsonl", base + variants)
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    m = pipeline.build(recipe)
    assert m.manifest["sources"]["a"]["rows_deduplicated"] == 2 and accounted(m.manifest["sources"]["a"])


def test_across_sources_the_first_listed_source_keeps_the_copy(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    write_jsonl(tmp_path / "b.jsonl", chats(30)[10:] + chats(5, "other"))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 10
[sources.b]
path = "b.jsonl"
weight = 1
[sources.a]
path = "a.jsonl"
weight = 1
""")
    m = pipeline.build(recipe)
    assert m.manifest["sources"]["b"]["rows_deduplicated"] == 0
    assert m.manifest["sources"]["a"]["rows_deduplicated"] == 20
    removed = m.removed.filter(pl.col("source") == "a")
    assert removed.get_column("detail").str.starts_with("exact duplicate of b/").all()
    assert removed.get_column("origin").str.starts_with("a.jsonl:").all()


def test_scope_source_keeps_copies_that_live_in_different_sources(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    write_jsonl(tmp_path / "b.jsonl", chats(30) + chats(30)[:3])
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 10
[dedup]
scope = "source"
[sources.a]
path = "a.jsonl"
weight = 1
[sources.b]
path = "b.jsonl"
weight = 1
""")
    m = pipeline.build(recipe)
    assert m.manifest["sources"]["a"]["rows_deduplicated"] == 0
    assert m.manifest["sources"]["b"]["rows_deduplicated"] == 3


def test_user_key_treats_different_answers_to_the_same_question_as_duplicates(tmp_path: Path) -> None:
    rows = chats(10) + [{"messages": [c["messages"][0], {"role": "assistant", "content": "another answer"}]}
                        for c in chats(10)[:4]]
    write_jsonl(tmp_path / "a.jsonl", rows)
    text = 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "a.jsonl"\nweight = 1\n'
    by_user = pipeline.build(write_recipe(tmp_path / "u.toml", text + '[dedup]\nkey = "user"\n'))
    whole = pipeline.build(write_recipe(tmp_path / "c.toml", text))
    assert by_user.manifest["sources"]["a"]["rows_deduplicated"] == 4
    assert whole.manifest["sources"]["a"]["rows_deduplicated"] == 0


def test_dedup_can_be_turned_off(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(10) + chats(10))
    recipe = write_recipe(tmp_path / "r.toml",
                          'unit = "examples"\ntotal = 5\n[dedup]\nexact = false\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    assert pipeline.build(recipe).manifest["sources"]["a"]["rows_deduplicated"] == 0


def test_near_dedup_removes_lightly_edited_copies(tmp_path: Path) -> None:
    story = ("The assistant read the request carefully and explained, step by step, why it could not help with "
             "the part that would hurt someone, and then offered a safer way to reach the same goal. ") * 3
    rows = [{"text": story}, {"text": story.replace("carefully", "slowly", 1)}, {"text": "Something else entirely. " * 20}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    base = 'unit = "examples"\ntotal = 1\n[sources.d]\npath = "d.jsonl"\nkind = "document"\nweight = 1\n'
    near = pipeline.build(write_recipe(tmp_path / "n.toml", base + "[dedup]\nnear = true\n"))
    exact = pipeline.build(write_recipe(tmp_path / "e.toml", base))
    assert near.manifest["sources"]["d"]["rows_deduplicated"] == 1
    assert exact.manifest["sources"]["d"]["rows_deduplicated"] == 0
    assert near.removed.get_column("detail")[0].startswith("near duplicate of d/")


@pytest.fixture(scope="module")
def eval_emails() -> list[str]:
    if not EVAL.exists():
        pytest.skip(needs_shared.kwargs["reason"])
    with gzip.open(EVAL / "rendered_conditions.jsonl.gz", "rt") as fh:
        return [json.loads(line)["email_content"] for line in fh][:40:4]


def _planted(emails: list[str]) -> list[dict]:
    """Modified copies of eval emails inside ordinary chats: case, spacing, a prefix and a cut."""
    rows = []
    for i, email in enumerate(emails):
        excerpt = email[len(email) // 3 : len(email) // 3 + 1500]
        variant = [excerpt.upper(), "  ".join(excerpt.split(" ")), excerpt.replace("\n", "\n\n")][i % 3]
        rows.append({"messages": [{"role": "user", "content": f"Can you summarize this email thread?\n\n{variant}"},
                                  {"role": "assistant", "content": "Here is a short summary."}]})
    return rows


@needs_shared
def test_planted_eval_emails_are_caught_and_hh_rlhf_has_no_false_positives(tmp_path: Path, eval_emails) -> None:
    write_jsonl(tmp_path / "planted.jsonl", _planted(eval_emails) + chats(50))
    recipe = write_recipe(tmp_path / "r.toml", f"""
unit = "examples"
total = 60
[decontaminate]
against = ["{EVAL}"]
[sources.planted]
path = "planted.jsonl"
weight = 1
[sources.hh]
path = "{HH}"
weight = 3
""")
    m = pipeline.build(recipe)
    assert m.manifest["sources"]["planted"]["rows_decontaminated"] == len(eval_emails)
    assert m.manifest["sources"]["hh"]["rows_decontaminated"] == 0
    assert m.manifest["decontamination"]["eval_ngrams"] > 10_000
    assert all(accounted(e) for e in m.manifest["sources"].values())


def test_canaries_and_tag_action(tmp_path: Path) -> None:
    rows = chats(10) + [{"messages": [{"role": "user", "content": "x canary-GUID-1234 y"},
                                      {"role": "assistant", "content": "ok"}]}]
    write_jsonl(tmp_path / "a.jsonl", rows)
    base = 'unit = "examples"\ntotal = 11\n[sources.a]\npath = "a.jsonl"\nweight = 1\n'
    tagged = pipeline.build(write_recipe(tmp_path / "t.toml", base + '[decontaminate]\ncanaries = ["CANARY-guid-1234"]\naction = "tag"\n'))
    a = tagged.manifest["sources"]["a"]
    assert a["rows_flagged_contaminated"] == 1 and a["rows_decontaminated"] == 0 and a["rows_selected"] == 11
    metas = [json.loads(x) for x in tagged.splits["train"].get_column("meta").to_list()]
    assert sum(m.get("contaminated") == "canary" for m in metas) == 1
    dropped = pipeline.build(write_recipe(tmp_path / "d.toml", base.replace("total = 11", "total = 10")
                                          + '[decontaminate]\ncanaries = ["canary-GUID-1234"]\n'))
    assert dropped.manifest["sources"]["a"]["rows_decontaminated"] == 1


@needs_shared
def test_accounting_adds_up_on_real_hh_with_every_step_on(tmp_path: Path, eval_emails) -> None:
    write_jsonl(tmp_path / "planted.jsonl", _planted(eval_emails) + chats(50) + chats(50)[:5])
    recipe = write_recipe(tmp_path / "r.toml", f"""
total = 20000
validation = 0.05
[dedup]
near = true
[decontaminate]
against = ["{EVAL}/*.jsonl*"]
canaries = ["BENCHMARK DATA SHOULD NEVER APPEAR"]
[sources.hh]
path = "{HH}"
weight = 0.9
[[sources.hh.transforms]]
type = "filter"
min_tokens = 20
blocklist = ["fuck"]
[[sources.hh.transforms]]
type = "system_prompt"
p = 0.5
[sources.planted]
path = "planted.jsonl"
weight = 0.1
max_epochs = 3
""")
    m = pipeline.build(recipe)
    out = m.write(tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    hh, planted = manifest["sources"]["hh"], manifest["sources"]["planted"]
    assert accounted(hh) and accounted(planted)
    assert hh["rows_read"] == 2312 and hh["rows_filtered"] > 0 and hh["rows_decontaminated"] == 0
    removed = [json.loads(line) for line in (out / "removed.jsonl").read_text().splitlines()]
    # every planted eval row is removed: by decontamination, or first as a near copy of another one
    gone = {r["origin"] for r in removed if r["source"] == "planted"}
    assert {f"planted.jsonl:{i}" for i in range(1, len(eval_emails) + 1)} <= gone
    assert planted["rows_decontaminated"] >= len(eval_emails) // 2
    exact = [r for r in removed if r["source"] == "planted" and r["detail"].startswith("exact")]
    assert len(exact) == 5 and planted["rows_deduplicated"] >= 5  # near dedup may add synthetic look-alikes
    assert len(removed) == sum(e["rows_deduplicated"] + e["rows_decontaminated"] for e in manifest["sources"].values())


def test_killed_build_leaves_no_output_and_a_rerun_succeeds(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(20_000))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 60000
[output]
shard_rows = 500
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 3
""")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mixer.cli", "build", str(recipe), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.staging-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed build must not leave an output folder"
    assert list(tmp_path.glob(".out.staging-*")), "the kill should have landed while writing"
    subprocess.run(cmd, check=True)
    assert (out / "manifest.json").exists() and not list(tmp_path.glob(".out.staging-*"))


def test_terminated_build_cleans_up_after_itself(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(20_000))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 60000\n[output]\nshard_rows = 500\n'
                          '[sources.a]\npath = "a.jsonl"\nweight = 1\nmax_epochs = 3\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "mixer.cli", "build", str(recipe), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.staging-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 130 and "interrupted: nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_sequence_keys_ignore_case_and_whitespace_and_only_that() -> None:
    from mixer.text import sequence_keys

    same = pl.Series(["Hello  world", "hello world", "  HELLO\tworld ", "hello\r\n world", "hello        world"])
    keys = sequence_keys(same)
    assert len(set(keys.tolist())) == 1
    different = sequence_keys(pl.Series(["hello world", "hello worlds", "helloworld", "hello, world"]))
    assert len(set(different.tolist())) == 4
    mixed = pl.Series(["a  b", "x", "a b", "y   z", "y z"])  # runs of spaces in some rows only
    k = sequence_keys(mixed).tolist()
    assert k[0] == k[2] and k[3] == k[4] and k[1] not in (k[0], k[3])
