"""Progress: timestamped phase lines off a terminal, a live bar on one, nothing when quiet."""

from __future__ import annotations

import io
import re

from mixer.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_mode_prints_timestamped_start_and_end_lines_with_rows_and_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("auto", out, clock=clock, every=5.0)  # a StringIO is not a terminal
    assert progress.mode == "lines"
    with progress.phase("reading harmless", total=3000) as phase:
        clock.now += 2.0
        phase.advance(1000)  # under `every` seconds since the last line: silent
        clock.now += 4.0
        phase.advance(2000)
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d +0\.0s  reading harmless \(3,000 rows\) \.\.\.", lines[0])
    assert lines[1].endswith("reading harmless: 3,000 of 3,000 rows so far")
    assert re.fullmatch(r"\d\d:\d\d:\d\d +6\.0s  reading harmless: done, 3,000 rows, 6\.0s \(500 rows/s\)", lines[2])
    assert len(lines) == 3


def test_quiet_mode_prints_nothing_but_still_times_phases() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("quiet", out, clock=clock)
    with progress.phase("tokens") as phase:
        clock.now += 1.5
        phase.advance(10)
    progress.message("wrote out")
    assert out.getvalue() == ""
    assert progress.timings["phases"] == [{"phase": "tokens", "seconds": 1.5, "rows": 10}]


def test_live_mode_on_a_terminal_draws_a_bar_per_phase() -> None:
    out = Terminal()
    progress = Progress("auto", out)
    assert progress.mode == "live"
    with progress.phase("counting tokens", total=50) as phase:
        phase.advance(50)
    progress.message("wrote out")
    text = out.getvalue()
    assert "counting tokens: 100%" in text and "50.0/50.0" in text and "wrote out" in text


def test_timings_add_up_phases_of_the_same_name() -> None:
    clock = Clock()
    progress = Progress("quiet", clock=clock)
    for seconds in (1.0, 2.0):
        with progress.phase("transform chunk") as phase:
            clock.now += seconds
            phase.advance(100)
    with progress.phase("write", unit="files") as phase:
        phase.advance(2)
    assert progress.timings == {"seconds": 3.0, "phases": [
        {"phase": "transform chunk", "seconds": 3.0, "rows": 200},
        {"phase": "write", "seconds": 0.0, "files": 2}]}


def test_cli_build_outside_a_terminal_prints_a_timestamped_line_per_stage_and_q_silences_it(tmp_path) -> None:
    import subprocess
    import sys

    from conftest import REPO

    recipe = REPO / "recipes" / "quickstart.toml"
    run = subprocess.run([sys.executable, "-m", "mixer.cli", "build", str(recipe), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    stages = ("read", "dedup", "prepare", "select", "order", "gather", "export")
    for stage in stages:
        assert re.search(rf"^\d\d:\d\d:\d\d +\d+\.\ds  {stage}: done, [\d,]+ rows, \d+\.\ds", run.stderr, re.M), stage
    quiet = subprocess.run([sys.executable, "-m", "mixer.cli", "build", str(recipe), "--out", str(tmp_path / "q"), "-q"],
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""
