"""The benchmark harness runs end to end on a small workload (a smoke test, not a benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mixer import bench
from mixer.cli import main


def test_workloads_are_distinct_rows_at_the_requested_size(tmp_path: Path) -> None:
    import polars as pl

    frame = pl.read_parquet(bench.workload(500, tmp_path, None))
    assert frame.height == 500 and frame.get_column("id").n_unique() == 500
    firsts = frame.select(pl.col("messages").list.first().struct.field("content")).to_series()
    assert firsts.n_unique() == 500


def test_bench_command_prints_rates_and_ratios_for_1k_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--sizes", "1k", "--cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for needle in ("| augment | 1,000 | mixer", "| dedup | 1,000 | python", "| dedup | 1,000 | mixer-again", "datasets-map-2", "tiktoken-distinct", "io-floor", "full build (mixer), 1,000 rows",
                   "full build (mixer-stream), 1,000 rows",
                   "token counting with a model's tokenizer.json"):
        assert needle in result.output


def test_sizes_above_the_in_memory_limit_run_only_the_io_floor_and_the_streaming_build(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    monkeypatch.setattr(bench, "STREAM_ONLY", 500)
    results = bench.suite([900], tmp_path, None, log=lambda _: None)
    assert [(r["workload"], r["method"]) for r in results] == [("io-floor", "pyarrow"), ("build", "mixer-stream")]
    assert results[1]["rows"] == 900 and results[1]["peak_rss_mb"] > 0
    phases = results[1]["phases"]
    assert {"read", "prepare", "gather", "export"} <= set(phases) and 0 < sum(phases.values()) < results[1]["seconds"]
    where = bench.table(results).split("Where the time goes")[1]
    row = next(line for line in where.splitlines() if line.startswith("| build | 900 | mixer-stream"))
    cells = [float(c) for c in row.strip("|").split("|")[3:]]
    assert sum(cells) == pytest.approx(results[1]["seconds"], abs=0.02)  # stages plus the rest: the whole build


@pytest.mark.parametrize("method", ["mixer-trl", "mixer-openai", "mixer-prompt"])
def test_trainer_format_build_methods_write_that_format_and_time_its_stages(tmp_path: Path, method: str) -> None:
    from conftest import chats, write_jsonl

    path = write_jsonl(tmp_path / "chats.jsonl", chats(40, "b"))
    got = bench._jsonl(method, path, {"rows": 40})
    assert got["rows"] > 0 and got["phases"]["export"] >= 0
    recipe = bench.jsonl_recipe(path, 40, tmp_path, bench.TRAINER_METHODS[method])
    assert f'format = "{bench.TRAINER_METHODS[method]}"' in recipe.read_text()


def test_hh_workload_reads_back_as_the_workloads_chats_and_every_build_hh_method_runs(tmp_path: Path) -> None:
    import polars as pl

    from mixer.sources.read import read_source
    from mixer.specs import Source

    parquet = bench.workload(300, tmp_path, None)
    lines = bench.hh_workload(parquet, tmp_path)
    rows, report = read_source(Source(name="hh", path=str(lines)))
    assert report.format == "hh-rlhf" and report.read_paths["batch"] == rows.height
    turn = pl.element().struct
    plain = pl.read_parquet(parquet).filter(  # the rows an HH transcript can hold: no system prompt, plain turns
        pl.col("system").is_null()
        & pl.col("messages").list.eval(turn.field("role").is_in(["user", "assistant"])
                                       & (turn.field("content").str.strip_chars() != "")).list.all())
    turns = lambda frame: frame.select(pl.col("messages").list.eval(  # noqa: E731
        pl.element().struct.field("role") + ": " + pl.element().struct.field("content"))).to_series().to_list()
    assert rows.height == plain.height and turns(rows) == turns(plain)
    assert bench._hh_messages("\n\nHuman: hi\n\nAssistant: hello") == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    for method in ("mixer", "mixer-stream", "mixer-per-record", "floor", "datasets"):
        got = bench._jsonl(method, lines, {"rows": rows.height})
        assert got["rows"] > 0, method
    again, report = read_source(Source(name="hh", path=str(lines)))  # the per-record method undid its patch
    assert report.read_paths["batch"] == again.height


def test_dedup_baseline_keys_group_rows_exactly_as_mixers_keys(tmp_path: Path) -> None:
    """The dedup benchmark's Python baseline computes the same thing: rows share its key exactly
    when they share mixer's (on the workload, with copies differing in case and spacing added)."""
    import polars as pl

    from mixer import dedup, text
    from mixer.specs import DedupSpec

    frame = pl.read_parquet(bench.workload(300, tmp_path, None))
    def respaced(m: pl.Expr) -> pl.Expr:
        return m.list.eval(pl.element().struct.with_fields(
            pl.field("content").str.to_uppercase().str.replace_all(" ", "  \n")))
    copies = frame.head(50).with_columns(respaced(pl.col("messages")))
    both = pl.concat([frame, copies])
    ours = dedup.chunk_keys(both, DedupSpec(), 0, 0)[0].get_column("_key").to_list()
    keys = both.select(text.row_text(both, "conversation")).to_series()
    plain = [bench._plain_key(t, c) for t, c in zip(keys.to_list(), keys.str.contains(text._COMPAT).to_list())]
    assert len(set(ours)) < len(ours)  # the copies are found
    assert len(set(ours)) == len(set(plain)) == len(set(zip(ours, plain)))
