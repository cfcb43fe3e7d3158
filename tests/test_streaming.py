"""Every executor (in memory, streamed through a spill folder, and the streaming wrapper) gives
byte-identical output for the same recipe, chunk size aside."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import mixer
from conftest import output_files, without_run, HH, chat, chats, needs_shared, write_jsonl, write_recipe
from mixer import pipeline
from mixer.cli import main
from mixer.engine import STAGES, StageEvent
from mixer.streaming import build_streaming


def _files(folder: Path) -> dict[str, bytes]:
    return output_files(folder)


def _library(executor: str) -> Callable[[Path, Path, int], Path]:
    def run(recipe: Path, out: Path, chunk_rows: int) -> Path:
        return pipeline.build(recipe, executor=executor, chunk_rows=chunk_rows).write(out)
    return run


def _wrapper(recipe: Path, out: Path, chunk_rows: int) -> Path:
    written, manifest = build_streaming(recipe, out, chunk_rows=chunk_rows)
    assert json.loads((written / "manifest.json").read_text()) == json.loads(json.dumps(manifest, default=str))
    return written


def _cli(recipe: Path, out: Path, chunk_rows: int) -> Path:
    result = CliRunner().invoke(main, ["build", str(recipe), "--stream", "--chunk-rows", str(chunk_rows), "-q",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


#: every way to run a build besides the in-memory reference (``pipeline.build(recipe).write(out)``)
EXECUTORS = {"stream": _library("stream"), "build_streaming": _wrapper, "cli --stream": _cli}


def assert_same_output(recipe: Path, tmp_path: Path, chunk_rows: int) -> dict:
    """Build ``recipe`` in memory and with every other executor; every written file must be identical."""
    memory = _files(pipeline.build(recipe).write(tmp_path / "memory"))
    for name, run in EXECUTORS.items():
        out = run(recipe, tmp_path / name.replace(" ", "_"), chunk_rows)
        other = _files(out)
        assert sorted(memory) == sorted(other), name
        for file in memory:
            assert memory[file] == other[file], f"{file} differs between the in-memory and the {name} build"
        assert not any(p.name.startswith(".") for p in out.rglob("*")), f"{name}: spill files left in the output"
    return json.loads(memory["manifest.json"])


def test_dedup_rejects_decontamination_upsampling_and_shards_match_in_memory(tmp_path: Path) -> None:
    a = chats(40, "a") + chats(40, "a")[:6] + [chat("tell me the canary-XYZ-77 string", "no")]
    b = chats(25, "b") + chats(40, "a")[10:14]  # copies of source a's rows: a keeps them
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    with (tmp_path / "b.jsonl").open("a") as fh:
        fh.write('{"messages": "not a list"}\n{broken json\n')
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "tokens"
total = 6000
token_budget = "rendered"
validation = 0.1
seed = 7
[decontaminate]
canaries = ["canary-xyz-77"]
[sources.a]
path = "a.jsonl"
weight = 0.6
[[sources.a.transforms]]
type = "system_prompt"
p = 0.7
[[sources.a.transforms]]
type = "tools"
p = 0.5
count = [1, 3]
[sources.b]
path = "b.jsonl"
weight = 0.4
max_epochs = 5
on_error = "skip"
[output]
shard_rows = 17
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=6)
    a_entry, b_entry = m["sources"]["a"], m["sources"]["b"]
    assert a_entry["rows_deduplicated"] == 6 and a_entry["rows_decontaminated"] == 1
    assert b_entry["rows_deduplicated"] == 4 and b_entry["rows_rejected"] == 2
    assert b_entry["repeat_factor"] > 1 and len(m["outputs"]) > 2  # repeats and several shards were exercised
    assert a_entry["transforms"][1]["augmented_selected"] > 0


def test_trainer_format_with_tagged_contamination_and_repeats_matches_in_memory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30) + [chat("secret canary-Q", "x")])
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 80
validation = 0.2
[decontaminate]
canaries = ["canary-q"]
action = "tag"
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 4
[[sources.a.transforms]]
type = "system_prompt"
p = 0.5
[[sources.a.transforms]]
type = "tools"
p = 0.5
[output]
format = "trl"
shard_rows = 25
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=4)
    assert m["sources"]["a"]["rows_flagged_contaminated"] == 1
    assert m["export"]["format"] == "trl" and m["totals"]["train"]["rows"] == 80


def _chats_and_prompts(path: Path) -> None:
    """60 chats, each 7th followed by a prompt-only row (one a chat format rejects)."""
    write_jsonl(path, [r for i, c in enumerate(chats(60))
                       for r in ([c, {"messages": [{"role": "user", "content": f"q {i}?"}]}] if i % 7 == 0 else [c])])


def test_trainer_format_rows_the_format_rejects_leave_the_same_shards_as_in_memory(tmp_path: Path) -> None:
    """A streaming build cuts shards on the selected rows, then converts each and drops what the
    format cannot hold; an in-memory build must cut its files the same way, not re-even them
    after the drops (found on the HH slice: shards of 999/1000/996 rows against 999/999/997)."""
    _chats_and_prompts(tmp_path / "a.jsonl")
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 69
[sources.a]
path = "a.jsonl"
weight = 1
[output]
format = "trl"
shard_rows = 20
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=9)
    assert sum(m["export"]["rejected"]["train"].values()) == 9
    assert [f["rows"] for f in m["outputs"]] != [15, 15, 15, 15]  # cut before the drops, not evened after


@needs_shared
def test_real_hh_with_filter_augmentation_and_validation_matches_in_memory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "extra.jsonl", chats(300, "extra"))
    recipe = write_recipe(tmp_path / "r.toml", f"""
unit = "examples"
total = 2000
validation = 0.05
[sources.hh]
path = "{HH}"
format = "hh-rlhf"
weight = 0.8
[[sources.hh.transforms]]
type = "filter"
min_tokens = 20
[[sources.hh.transforms]]
type = "system_prompt"
p = 0.6
[[sources.hh.transforms]]
type = "tools"
p = 0.5
count = [1, 4]
[sources.extra]
path = "extra.jsonl"
weight = 0.2
max_epochs = 3
[output]
shard_rows = 300
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=500)
    hh = m["sources"]["hh"]
    assert hh["rows_read"] == 2312 and hh["rows_filtered"] > 0 and hh["transforms"][2]["augmented_selected"] > 0
    assert m["sources"]["extra"]["repeat_factor"] > 1


def _near_copies(tmp_path: Path) -> Path:
    """Two document sources with lightly edited copies within and across sources and chunks."""
    import random

    vocab = [f"w{k}" for k in range(300)]
    docs = [{"text": " ".join(random.Random(i).choices(vocab, k=60))} for i in range(45)]
    edited = [{"text": d["text"].replace(" ", " carefully ", 1)} for d in docs[:30:3]]
    short = [{"text": "one two three"}, {"text": "One two, three!"}, {"text": "... !!"}]  # short; no words
    write_jsonl(tmp_path / "a.jsonl", docs[:20] + edited[:4] + short)
    write_jsonl(tmp_path / "b.jsonl", docs[20:] + edited[4:] + docs[:3])
    return tmp_path


@pytest.mark.parametrize("scope", ["global", "source"])
@pytest.mark.parametrize("chunk_rows", [4, 1000])
def test_near_dedup_streams_with_the_same_clusters_and_survivors(tmp_path: Path, scope: str, chunk_rows: int) -> None:
    _near_copies(tmp_path)
    recipe = write_recipe(tmp_path / "r.toml", f"""
unit = "examples"
total = 30
seed = 3
[dedup]
scope = "{scope}"
near = {{ threshold = 0.7 }}
[sources.a]
path = "a.jsonl"
kind = "document"
weight = 0.5
max_epochs = 3
[sources.b]
path = "b.jsonl"
kind = "document"
weight = 0.5
max_epochs = 3
[output]
shard_rows = 11
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=chunk_rows)
    removed = pl.read_ndjson(tmp_path / "memory" / "removed.jsonl")
    near = removed.filter(pl.col("detail").str.starts_with("near duplicate of"))
    assert near.height >= 4  # the edited copies (and, globally, the cross-source ones) went
    if scope == "global":
        assert m["sources"]["b"]["rows_deduplicated"] > m["sources"]["a"]["rows_deduplicated"] > 0


def test_near_dedup_of_a_streaming_build_matches_clustering_all_texts_at_once(tmp_path: Path) -> None:
    """The staged near dedup (signatures per chunk, clusters on the signature table) keeps the rows
    ``near_duplicate_clusters`` keeps when it sees every text at once."""
    from mixer.neardup import near_duplicate_clusters
    from mixer.text import row_text

    _near_copies(tmp_path)
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 10
[dedup]
exact = false
near = { threshold = 0.7 }
[sources.a]
path = "a.jsonl"
kind = "document"
weight = 1
""")
    streamed = pipeline.build(recipe, executor="stream", chunk_rows=3)
    frame, _ = mixer.read_source(mixer.load_recipe(recipe).sources[0])
    frame = frame.sort("id")
    cluster = near_duplicate_clusters(frame.select(row_text(frame, "conversation")).to_series(), threshold=0.7)
    expected = set(frame.get_column("id").filter(pl.Series(cluster != range(len(cluster)))).to_list())
    assert expected and set(streamed.removed.get_column("id").to_list()) == expected


def test_every_stage_reports_its_start_and_end_with_the_same_rows_whatever_the_executor(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30) + chats(30)[:5])
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 40\nvalidation = 0.1\n'
                                              '[sources.a]\npath = "a.jsonl"\nweight = 1\nmax_epochs = 2\n')
    seen: dict[str, list[StageEvent]] = {}
    for executor in ("memory", "stream"):
        events = seen[executor] = []
        pipeline.build(recipe, executor=executor, chunk_rows=4, progress=events.append)
        assert [(e.stage, e.event) for e in events] == [(s, ev) for s in STAGES for ev in ("start", "end")]
        assert all(e.seconds >= 0 and e.executor == executor for e in events)
    assert [(e.stage, e.event, e.rows) for e in seen["memory"]] == [(e.stage, e.event, e.rows) for e in seen["stream"]]
    rows = {(e.stage, e.event): e.rows for e in seen["memory"]}
    assert rows["read", "end"] == 35 and rows["dedup", "end"] == 30 and rows["prepare", "end"] == 30
    assert rows["export", "end"] == rows["gather", "end"] == rows["select", "end"] > 40  # train 40 + validation


def test_a_streamed_mixture_hands_out_the_same_frames_and_datasets(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(25))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 40
validation = 0.2
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 2
[[sources.a.transforms]]
type = "tools"
p = 0.5
[output]
format = "trl"
shard_rows = 9
""")
    memory = pipeline.build(recipe)
    streamed = pipeline.build(recipe, executor="stream", chunk_rows=6)
    assert without_run(streamed.manifest) == without_run(memory.manifest)
    for name, frame in memory.to_polars().items():
        assert streamed.to_polars()[name].equals(frame)
    assert streamed.to_datasets()["train"].to_list() == memory.to_datasets()["train"].to_list()
    # in memory the trl rows were converted at once; training code gets spec objects, the rows hold their text
    exported, train = memory.exported["train"], memory.to_datasets()["train"]
    assert exported.table is not None and train.num_rows == len(exported)
    i = next(i for i, row in enumerate(exported.rows) if row["tools"])
    assert train[i]["tools"][0] == json.loads(exported.rows[i]["tools"][0])
    spill = streamed.output.folder  # type: ignore[attr-defined]
    del streamed
    import gc

    gc.collect()
    assert not spill.exists(), "the spill folder outlived its mixture"


def test_stream_dry_run_prints_the_table_and_writes_nothing(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 20\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    result = CliRunner().invoke(main, ["build", str(recipe), "--stream", "--dry-run", "--chunk-rows", "7",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "20" in result.output and "dry run" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "r.toml"]


def test_strict_streaming_build_fails_with_every_reason_and_writes_nothing(tmp_path: Path) -> None:
    rows = chats(12) + [{"messages": [{"role": "user", "content": f"only a question {i}"}]} for i in range(3)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 15
[sources.a]
path = "a.jsonl"
weight = 1
[output]
format = "openai"
shard_rows = 4
""")
    result = CliRunner().invoke(main, ["build", str(recipe), "--stream", "--strict", "--chunk-rows", "5",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "3 rows cannot be written as openai" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "r.toml"]


def _tooled(tmp_path: Path, rows: int, total: int, extra: str = "") -> Path:
    """``rows`` chats in ``a.jsonl`` and a recipe of ``total`` examples of them, tools on every row
    (``extra``: more keys of the source)."""
    write_jsonl(tmp_path / "a.jsonl", chats(rows))
    return write_recipe(tmp_path / "r.toml", f'unit = "examples"\ntotal = {total}\n[sources.a]\npath = "a.jsonl"\n'
                                             f'weight = 1\n{extra}[[sources.a.transforms]]\ntype = "tools"\np = 1.0\n')


@pytest.mark.parametrize("chunk_rows", [1, 1000])
def test_chunk_size_does_not_change_the_output(tmp_path: Path, chunk_rows: int) -> None:
    recipe = _tooled(tmp_path, rows=20, total=30, extra="max_epochs = 2\n")
    assert_same_output(recipe, tmp_path, chunk_rows=chunk_rows)


@pytest.mark.parametrize("budget", ["rendered", "content", "assistant"])
def test_token_budget_with_repeats_and_validation_matches_in_memory(tmp_path: Path, budget: str) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    total = {"rendered": 12000, "content": 2000, "assistant": 800}[budget]
    recipe = write_recipe(tmp_path / "r.toml", f"""
unit = "tokens"
total = {total}
token_budget = "{budget}"
validation = 0.3
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 4
[[sources.a.transforms]]
type = "system_prompt"
p = 0.5
[[sources.a.transforms]]
type = "tools"
p = 0.7
count = [1, 4]
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=7)
    assert m["sources"]["a"]["repeat_factor"] > 1 and m["totals"]["validation"]["rows"] > 0


def test_staged_recipe_is_built_by_the_library_the_same_with_every_executor(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", """
[sources.a]
path = "a.jsonl"
[mixtures.chat]
unit = "examples"
[mixtures.chat.sources.a]
examples = 12
[mixtures.rl]
unit = "examples"
output = { format = "prompt", shard_rows = 5 }
[mixtures.rl.sources.a]
examples = 40
max_epochs = 2
""")
    built = {executor: mixer.build_all(recipe, out=tmp_path / executor, executor=executor, chunk_rows=7)
             for executor in ("memory", "stream")}
    assert list(built["memory"].mixtures) == ["chat", "rl"] and built["memory"].index == tmp_path / "memory" / "manifest.json"
    assert built["memory"].mixtures["chat"].mixture is not None  # in memory: the frames are still at hand
    assert _files(tmp_path / "memory") == _files(tmp_path / "stream")
    index = json.loads((tmp_path / "stream" / "manifest.json").read_text())
    assert {name: m["totals"]["train"]["rows"] for name, m in index["mixtures"].items()} == {"chat": 12, "rl": 40}


def test_a_log_callable_gets_one_line_per_stage_start_and_end(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(10))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "a.jsonl"\nweight = 1\n')
    lines: list[str] = []
    pipeline.build(recipe, log=lines.append)
    assert [line.split(":")[0] for line in lines] == [s for s in STAGES for _ in range(2)]
    assert lines[1].startswith("read: 10 rows out (") and lines[-1].startswith("export: 5 rows out (")


def test_each_row_local_call_gets_only_its_chunks_key_rows_and_no_key_tables(tmp_path: Path) -> None:
    """What a cluster ships per task grows with the chunk, not with the source: a row-local
    function gets its chunk's part of the key table (gather: the names of its stored plan
    parts), and the build it closes over pickles
    without the sources' key tables (they stay on the driver)."""
    import dill  # installed with datasets; pickles closures by value, as Ray's cloudpickle does

    from mixer.executors import LocalStreaming

    class Recording(LocalStreaming):
        sizes: list[int] = []

        def map(self, prio, fn, parts):  # type: ignore[no-untyped-def]
            for c, part in parts.items():
                if isinstance(part, list):  # gather's: the splits the chunk's stored plan rows are of
                    assert part and set(part) <= {"train", "validation"}
                else:
                    assert set(part.get_column("_chunk").to_list()) == {c}
            self.sizes.append(len(dill.dumps(fn)))
            return super().map(prio, fn, parts)

    write_jsonl(tmp_path / "a.jsonl", chats(300) + chats(300)[:40])
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 500\nvalidation = 0.1\n'
                                              '[sources.a]\npath = "a.jsonl"\nweight = 1\nmax_epochs = 2\n'
                                              '[[sources.a.transforms]]\ntype = "tools"\np = 0.5\n')
    executor = Recording(chunk_rows=50)
    mixture = pipeline.build(recipe, executor=executor)
    assert mixture.manifest["sources"]["a"]["rows_deduplicated"] == 40
    small = executor.sizes[0]  # prepare's function, before any key table exists
    assert len(executor.sizes) == 2 and executor.sizes[1] < small + 2_000, executor.sizes  # gather's: no keys


def test_gathering_chunks_in_groups_of_shards_changes_no_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A streaming gather hands a chunk's selected rows on a few shards at a time (its working set
    is a group's): repeats drawn afresh (a source with transforms) and repeats taken as they are
    (one without), in both splits, land in the same files as in memory."""
    from mixer import engine
    from mixer.executors import LocalStreaming

    groups: list[int] = []
    real = engine._shard_groups

    def counted(rows: pl.DataFrame, limit: int | None) -> list[pl.DataFrame]:
        found = real(rows, limit)
        groups.append(len(found))
        return found

    monkeypatch.setattr(LocalStreaming, "gather_rows", 3)
    monkeypatch.setattr(engine, "_shard_groups", counted)
    write_jsonl(tmp_path / "a.jsonl", chats(30, "a"))
    write_jsonl(tmp_path / "b.jsonl", chats(12, "b"))
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 140
validation = 0.2
[sources.a]
path = "a.jsonl"
weight = 0.6
max_epochs = 4
[[sources.a.transforms]]
type = "system_prompt"
p = 0.5
[[sources.a.transforms]]
type = "tools"
p = 0.7
count = [1, 3]
[sources.b]
path = "b.jsonl"
weight = 0.4
max_epochs = 6
[output]
shard_rows = 9
""")
    m = assert_same_output(recipe, tmp_path, chunk_rows=8)
    assert m["sources"]["a"]["repeat_factor"] > 1 and m["sources"]["b"]["repeat_factor"] > 1
    assert m["totals"]["validation"]["rows"] > 0
    assert max(groups) > 2  # chunks were gathered in several groups


@pytest.mark.parametrize("kind", ["raw", "clean"])
def test_a_spill_write_that_fails_while_other_work_runs_fails_the_build(tmp_path: Path, kind: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Read chunks and cleaned rows are written in a thread beside their dedup keys and their
    augmentation: the write's error still stops the build, nothing half-written left behind."""
    from mixer.executors import LocalStreaming

    real = LocalStreaming.put

    def put(self: LocalStreaming, prio: int, c: int, what: str, frame: pl.DataFrame) -> None:
        if what == kind and c == 1:
            raise OSError(28, "No space left on device")
        real(self, prio, c, what, frame)

    monkeypatch.setattr(LocalStreaming, "put", put)
    recipe = _tooled(tmp_path, rows=30, total=30, extra="max_epochs = 2\n")  # repeats possible: cleaned rows kept
    with pytest.raises(OSError, match="No space left"):
        pipeline.build(recipe, executor="stream", chunk_rows=8).write(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_shard_and_its_converted_rows_are_released_before_the_next_shard_is_assembled(tmp_path: Path) -> None:
    """The export holds one output shard at a time: the previous shard's canonical rows and its
    converted part are gone when the next one is read and assembled (a 250k-row TRL shard and
    its converted table are about 1 GB together)."""
    import gc
    import weakref

    from mixer.executors import LocalStreaming
    from mixer.recipe import Output

    held: list[weakref.ref] = []
    alive: list[int] = []

    class Probe(LocalStreaming):
        def shards(self, split, total, output):  # type: ignore[override]
            self._spec = output
            for index in range(3):
                gc.collect()
                alive.append(sum(r() is not None for r in held))
                yield index, 3, pl.DataFrame({"row": [index] * 10})

        def put_output(self, split, index, count, frame, parts):  # type: ignore[override]
            held.extend([weakref.ref(frame), *(weakref.ref(part) for part in parts)])

    def convert(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        return frame.with_columns(pl.col("row") + 1), frame.height

    executor = Probe(spill=tmp_path / "spill")
    try:
        assert executor.export("train", 30, Output(dir=tmp_path / "out"), convert) == [10, 10, 10]
    finally:
        executor.close()
    assert alive == [0, 0, 0] and len(held) == 6


@pytest.mark.parametrize("fmt", ["openai", "llama-factory", "torchtune", "jsonl", "trl", "prompt", "parquet"])
def test_shards_converted_a_piece_at_a_time_are_the_same_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """A streaming build converts a trainer-format shard ``export_rows`` rows at a time and writes
    each piece as it comes (JSON Lines appended; Parquet in row groups cut across the pieces):
    the files, rejects and manifest are the in-memory build's, with rows the format rejects
    (prompt-only rows in a chat format) and tools in the pieces."""
    from mixer import writers
    from mixer.executors import LocalStreaming

    _chats_and_prompts(tmp_path / "a.jsonl")
    recipe = write_recipe(tmp_path / "r.toml", f"""
unit = "examples"
total = 60
validation = 0.1
[sources.a]
path = "a.jsonl"
weight = 1
[[sources.a.transforms]]
type = "tools"
p = 0.5
[output]
format = "{fmt}"
shard_rows = 25
""")
    pieces: list[int] = []
    real = LocalStreaming.pieces
    monkeypatch.setattr(LocalStreaming, "export_rows", 7)
    monkeypatch.setattr(writers, "ROW_GROUP", 5)
    monkeypatch.setattr(LocalStreaming, "pieces", lambda self, frame: pieces.append(len(real(self, frame)))
                        or real(self, frame))
    m = assert_same_output(recipe, tmp_path, chunk_rows=9)
    assert max(pieces) == (1 if fmt in ("parquet", "jsonl") else 3)  # canonical rows: one piece; else 54 train rows in 3 shards, pieces of 7
    if fmt not in ("jsonl", "parquet", "prompt"):
        assert sum(m["export"]["rejected"]["train"].values()) > 0


def test_each_chunks_plan_rows_are_stored_with_the_executor_in_plan_order(tmp_path: Path) -> None:
    """``order`` stores each split's plan rows per source and chunk (``engine.store_plan``), and
    ``gather``'s task for a chunk reads them back: the rows a partition of the plan by source and
    chunk gives, in plan order; chunks without rows of a split store nothing for it."""
    import numpy as np

    from mixer.engine import MEASURED, PLAN, by_chunk, store_plan
    from mixer.executors import InMemory, LocalStreaming

    r = np.random.default_rng(0)
    plans = {name: pl.DataFrame({"id": [f"{name}{i}" for i in range(n)],
                                 "_prio": r.integers(0, 3, n).astype(np.uint32),
                                 "_chunk": r.integers(0, 7, n).astype(np.uint32) * (name == "train"),
                                 "_pos": r.permutation(n).astype(np.uint32), "_shard": np.zeros(n, np.uint32),
                                 **{m: r.integers(0, 99, n).astype(np.uint32) for m in MEASURED}})
             for name, n in (("train", 500), ("validation", 40))}
    for executor in (InMemory(), LocalStreaming(chunk_rows=10, spill=tmp_path / "spill")):
        planned: dict[int, dict[int, list[str]]] = {}
        for name, plan in plans.items():
            store_plan(executor, name, plan, planned)
        for prio in range(4):
            want: dict[int, dict[str, pl.DataFrame]] = {}
            for name, plan in plans.items():
                for c, part in by_chunk(plan.filter(pl.col("_prio") == prio)).items():
                    want.setdefault(c, {})[name] = part.select("id", "_pos", "_shard", *MEASURED)
            got = planned.get(prio, {})
            assert sorted(got) == sorted(want) and (prio == 3) == (not want)
            for c, splits in got.items():
                assert splits == list(want[c])
                assert all(executor.get(prio, c, PLAN + name).equals(want[c][name]) for name in splits)


@pytest.mark.parametrize("max_epochs", [1, 2])
def test_cleaned_rows_are_stored_only_for_sources_that_can_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   max_epochs: int) -> None:
    """A chunk's cleaned rows are kept only to re-augment upsampled repeats: an augmented source
    with ``max_epochs = 1`` (the default) has none, so they are not written (0.2 s of zstd per
    100k rows), and the output is the same."""
    from mixer.executors import LocalStreaming

    kinds: list[str] = []
    real = LocalStreaming.put
    monkeypatch.setattr(LocalStreaming, "put", lambda self, prio, c, kind, frame: kinds.append(kind)
                        or real(self, prio, c, kind, frame))
    recipe = _tooled(tmp_path, rows=30, total=30 * max_epochs - 5, extra=f"max_epochs = {max_epochs}\n")
    m = assert_same_output(recipe, tmp_path, chunk_rows=8)
    assert ("clean" in kinds) == (max_epochs > 1) and "ready" in kinds
    assert (m["sources"]["a"]["repeat_factor"] > 1) == (max_epochs > 1)
