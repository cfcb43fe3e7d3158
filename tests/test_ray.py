"""The Ray executor gives the same files, manifest (its ``run`` section aside), removed.jsonl and
rejects.jsonl as the in-memory build, for every recipe the streaming equivalence tests run, also
when a worker dies mid-task and Ray runs the task again."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'mixer[ray]')")

import test_streaming as streaming  # noqa: E402  (the recipes and the comparison are reused, not copied)
from conftest import chats, output_files, write_jsonl, write_recipe  # noqa: E402
from mixer import pipeline  # noqa: E402
from mixer.cli import main  # noqa: E402
from mixer.errors import DataError  # noqa: E402
from mixer.executors_ray import RayExecutor  # noqa: E402


def _library(recipe: Path, out: Path, chunk_rows: int) -> Path:
    mixture = pipeline.build(recipe, engine="ray", chunk_rows=chunk_rows)
    assert mixture.manifest["run"]["executor"] == "ray" and mixture.manifest["run"]["cluster"]["cpus"] == 2
    return mixture.write(out)


def _cli(recipe: Path, out: Path, chunk_rows: int) -> Path:
    result = CliRunner().invoke(main, ["build", str(recipe), "--engine", "ray", "--chunk-rows", str(chunk_rows),
                                       "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["executor"] == "ray" and manifest["run"]["cluster"]["cpus"] == 2
    return out


def test_without_a_runtime_a_build_starts_one_with_the_machines_cores_and_stops_it(tmp_path: Path) -> None:
    if ray.is_initialized():
        ray.shutdown()
    write_jsonl(tmp_path / "a.jsonl", chats(20))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 15\n[sources.a]\npath = "a.jsonl"\n'
                                              'weight = 1\n')
    _, manifest = pipeline.build_and_write(pipeline.recipe_mod.load(recipe), tmp_path / "out", executor="ray",
                                           chunk_rows=7)
    assert manifest["run"]["cluster"]["cpus"] == os.cpu_count() and manifest["run"]["cluster"]["started"]
    assert not ray.is_initialized(), "the build left its Ray runtime running"
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").rglob("*")), "spill files left in the output"


@pytest.fixture(scope="module")
def runtime() -> object:
    """One local runtime (2 CPUs, as in CI) for the module's builds, which join it and leave it up."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _cases() -> list[object]:
    """Every equivalence test of test_streaming that builds through ``assert_same_output``, with its
    parameters; not those that patch mixer's modules (``monkeypatch``): a patch in this process does
    not reach the Ray workers."""
    cases = []
    for name, fn in inspect.getmembers(streaming, inspect.isfunction):
        if not name.startswith("test_") or "assert_same_output(" not in inspect.getsource(fn):
            continue
        if "monkeypatch" in inspect.signature(fn).parameters:
            continue
        marks = list(getattr(fn, "pytestmark", []))
        grid: list[dict[str, object]] = [{}]
        for mark in [m for m in marks if m.name == "parametrize"]:
            names = [n.strip() for n in mark.args[0].split(",")]
            grid = [{**g, **dict(zip(names, v if len(names) > 1 else (v,)))} for g in grid for v in mark.args[1]]
        skips = [m for m in marks if m.name == "skipif"]
        for params in grid:
            label = name.removeprefix("test_") + "".join(f"[{v}]" for v in params.values())
            cases.append(pytest.param(fn, params, id=label,
                                      marks=[pytest.mark.skipif(*m.args, **m.kwargs) for m in skips]))
    return cases


CASES = _cases()


def test_every_streaming_equivalence_recipe_is_run_here() -> None:
    assert len(CASES) >= 10  # dedup/decontamination/repeats/shards, trl, HH, near dedup x4, chunk sizes, budgets


@pytest.mark.parametrize(("case", "params"), CASES)
def test_ray_build_matches_the_in_memory_build(case, params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              runtime: object) -> None:
    monkeypatch.setattr(streaming, "EXECUTORS", {"ray": _library, "cli --engine ray": _cli})
    case(tmp_path=tmp_path, **params)


class _FailOnce(RayExecutor):
    """A Ray executor whose workers die once mid-build: while writing a chunk's prepared rows
    (a staged file half written), right after committing a gathered piece and right after
    committing an output shard (their retries write the same names again). Marker files in
    ``marks`` make each fault happen once."""

    def __init__(self, marks: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.marks = marks
        self.driver = os.getpid()

    def __getstate__(self) -> dict[str, object]:
        return {**super().__getstate__(), "marks": self.marks, "driver": self.driver}

    def _once(self, name: str) -> bool:
        """Whether this fault is the first of its name, and never in the test's own process: an
        ``os._exit`` there would end pytest without a word (seen once in a full run, exit status 1)."""
        if os.getpid() == self.driver:
            return False
        try:
            (self.marks / name).touch(exist_ok=False)
        except FileExistsError:
            return False
        return True

    def put(self, prio: int, c: int, kind: str, frame) -> None:
        if self._worker and kind == "ready" and c == 1 and self._once("ready"):
            (self._path(prio, c, kind).with_name(f".{prio}-{c}.ready.partial.tmp")).write_bytes(b"PAR1 half")
            os._exit(1)  # the worker process dies: Ray runs the task again elsewhere
        super().put(prio, c, kind, frame)

    def put_rows(self, split: str, prio: int, c: int, rows) -> None:
        super().put_rows(split, prio, c, rows)
        if self._worker and c == 2 and self._once(f"rows-{split}"):
            os._exit(1)

    def _commit(self, split: str, index: int, count: int, part):
        written = super()._commit(split, index, count, part)
        if self._worker and index == 1 and self._once(f"shard-{split}"):
            os._exit(1)  # a committed output shard, then the worker dies: the retry commits it again
        return written


def test_a_worker_dying_mid_task_is_retried_and_the_output_is_identical(tmp_path: Path, runtime: object) -> None:
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))  # workers cannot import the tests
    write_jsonl(tmp_path / "a.jsonl", chats(40) + chats(40)[:5])
    recipe = write_recipe(tmp_path / "r.toml", """
unit = "examples"
total = 90
validation = 0.1
[sources.a]
path = "a.jsonl"
weight = 1
max_epochs = 3
[[sources.a.transforms]]
type = "tools"
p = 0.5
[output]
shard_rows = 20
""")
    memory = output_files(pipeline.build(recipe).write(tmp_path / "memory"))
    marks = tmp_path / "marks"
    marks.mkdir()
    executor = _FailOnce(marks, chunk_rows=8, max_retries=2)
    mixture = pipeline.build(recipe, executor=executor)
    assert {"ready", "rows-train", "shard-train"} <= {p.name for p in marks.iterdir()}  # every fault happened
    assert output_files(mixture.write(tmp_path / "ray")) == memory


class _Broken(RayExecutor):
    """A task that raises a user-facing error (as a row-local step meeting bad data would)."""

    def put(self, prio: int, c: int, kind: str, frame) -> None:
        if self._worker and kind == "ready":
            raise DataError(f"chunk {c}: a row-local step found bad data")
        super().put(prio, c, kind, frame)


def test_an_error_in_a_task_reaches_the_user_as_itself_and_nothing_is_written(tmp_path: Path,
                                                                              runtime: object) -> None:
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    write_jsonl(tmp_path / "a.jsonl", chats(20))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 10\n[sources.a]\npath = "a.jsonl"\n'
                                              'weight = 1\n')
    executor = _Broken(chunk_rows=5)
    with pytest.raises(DataError, match=r"^chunk \d: a row-local step found bad data$"):
        pipeline.build(recipe, executor=executor)
    assert not executor.folder.exists(), "a failed build left its spill folder"


def test_address_without_the_ray_engine_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(tmp_path / "r.toml"), "--address", "auto"])
    assert result.exit_code == 2 and "--address is the Ray cluster of --engine ray" in result.output
    result = CliRunner().invoke(main, ["build", str(tmp_path / "r.toml"), "--stream", "--engine", "ray"])
    assert result.exit_code == 2 and "cannot be combined with --engine ray" in result.output


def test_without_the_extra_the_ray_engine_says_how_to_install_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(5))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 5\n[sources.a]\npath = "a.jsonl"\n'
                                              'weight = 1\n')
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(main, ["build", str(recipe), "--engine", "ray", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output == "error: the ray engine needs Ray: pip install 'mixer[ray]'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "r.toml"]


def test_text_format_shards_are_converted_in_tasks_with_the_chat_template_loaded_there(
        tmp_path: Path, runtime: object) -> None:
    """A compiled chat template does not pickle: each export task loads it again from the recipe."""
    write_jsonl(tmp_path / "a.jsonl", chats(30))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 40\nvalidation = 0.1\n'
                                              '[sources.a]\npath = "a.jsonl"\nweight = 1\nmax_epochs = 2\n'
                                              '[output]\nformat = "text"\nshard_rows = 9\n')
    memory = output_files(pipeline.build(recipe).write(tmp_path / "memory"))
    assert output_files(_cli(recipe, tmp_path / "ray", 7)) == memory
    assert sum(name.startswith("data/train-") for name in memory) == 5


def test_every_stage_reports_the_same_rows_on_ray_as_in_memory(tmp_path: Path, runtime: object) -> None:
    from mixer.engine import STAGES

    write_jsonl(tmp_path / "a.jsonl", chats(30) + chats(30)[:5])
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 40\nvalidation = 0.1\n'
                                              '[sources.a]\npath = "a.jsonl"\nweight = 1\nmax_epochs = 2\n')
    seen: dict[str, list] = {"memory": [], "ray": []}
    for engine, events in seen.items():
        pipeline.build(recipe, engine=engine, chunk_rows=4, progress=events.append)
    assert [(e.stage, e.event) for e in seen["ray"]] == [(s, ev) for s in STAGES for ev in ("start", "end")]
    assert all(e.executor == "ray" for e in seen["ray"])
    assert [(e.stage, e.event, e.rows) for e in seen["ray"]] == [(e.stage, e.event, e.rows) for e in seen["memory"]]


def test_bad_input_met_while_tasks_run_fails_as_streaming_does_and_leaves_nothing(tmp_path: Path,
                                                                                 runtime: object) -> None:
    write_jsonl(tmp_path / "a.jsonl", chats(60))
    with (tmp_path / "a.jsonl").open("a") as fh:
        fh.write("{broken json\n")
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "examples"\ntotal = 10\n[sources.a]\npath = "a.jsonl"\n'
                                              'weight = 1\n')
    out = {}
    for engine in ("stream", "ray"):
        result = CliRunner().invoke(main, ["build", str(recipe), "--engine", engine, "--chunk-rows", "5", "-q",
                                           "--out", str(tmp_path / engine)])
        assert result.exit_code == 1, result.output
        out[engine] = result.output
    assert out["ray"] == out["stream"] and "a.jsonl:61" in out["ray"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "r.toml"]


def test_a_streaming_builds_cached_preparation_serves_a_ray_remix(tmp_path: Path, runtime: object) -> None:
    """Ray cuts rows into the same chunks as --engine stream, so they share cache entries."""
    import test_cache

    recipe = test_cache.setup(tmp_path)
    first = test_cache.build(recipe, tmp_path / "first", tmp_path / "cache", executor="stream")
    assert first["run"]["cache"]["hit"] is False
    hit = test_cache.build(recipe, tmp_path / "hit", tmp_path / "cache", "total=4000", executor="ray")
    assert hit["run"]["cache"]["hit"] is True and hit["run"]["executor"] == "ray"
    test_cache.build(recipe, tmp_path / "cold", None, "total=4000")
    assert output_files(tmp_path / "hit") == output_files(tmp_path / "cold")


def test_budgets_counted_with_a_chat_template_are_the_same_on_ray(tmp_path: Path, runtime: object) -> None:
    """The counting template (an audit renderer) travels to the tasks that count tokens."""
    write_jsonl(tmp_path / "a.jsonl", chats(30, "a"))
    recipe = write_recipe(tmp_path / "r.toml", 'unit = "tokens"\ntotal = 3000\ntoken_budget = "rendered"\n'
                                              'chat_template = "chatml"\nvalidation = 0.1\n'
                                              '[sources.a]\npath = "a.jsonl"\nweight = 1\nmax_epochs = 3\n'
                                              '[[sources.a.transforms]]\ntype = "system_prompt"\np = 0.6\n'
                                              '[output]\nformat = "trl"\nshard_rows = 20\n')
    memory = output_files(pipeline.build(recipe).write(tmp_path / "memory"))
    assert json.loads(memory["manifest.json"])["tokenizer"]["chat_template"] == "chatml"
    assert output_files(_library(recipe, tmp_path / "ray", 6)) == memory


def test_a_sweep_on_ray_writes_what_the_in_memory_sweep_writes(tmp_path: Path, runtime: object) -> None:
    import test_sweep

    recipe = test_sweep.setup(tmp_path, '\n[sweep]\ngrid = {"sources.small.weight" = [0.1, 0.3]}\n')
    outs = {}
    for engine in ("memory", "ray"):
        outs[engine] = tmp_path / engine
        result = CliRunner().invoke(main, ["sweep", str(recipe), "--out", str(outs[engine]), "--engine", engine,
                                           "--chunk-rows", "150", "-q", "--cache-dir", str(tmp_path / f"c-{engine}")])
        assert result.exit_code == 0, result.output
    for variant in ("base", "grid-000", "grid-001"):
        assert output_files(outs["ray"] / variant) == output_files(outs["memory"] / variant), variant
        manifest = json.loads((outs["ray"] / variant / "manifest.json").read_text())
        assert manifest["run"]["executor"] == "ray"
    assert (outs["ray"] / "ratios.csv").read_text() == (outs["memory"] / "ratios.csv").read_text()


def test_sweep_refuses_an_address_without_the_ray_engine(tmp_path: Path) -> None:
    import test_sweep

    recipe = test_sweep.setup(tmp_path, '\n[sweep]\ngrid = {"sources.small.weight" = [0.1]}\n')
    result = CliRunner().invoke(main, ["sweep", str(recipe), "--out", str(tmp_path / "o"), "--address", "auto"])
    assert result.exit_code == 2 and "--address is the Ray cluster of --engine ray" in result.output
