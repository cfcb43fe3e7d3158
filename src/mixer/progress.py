"""Progress a person can follow: a live bar on a terminal, timestamped lines elsewhere.

A build is a sequence of named phases (reading a source, deduplicating, counting tokens,
writing). ``Progress`` times each one, and shows it

- ``live`` (stderr is a terminal): one tqdm bar per phase, with rows and rate. tqdm is
  already installed with ``datasets``, so it costs no new dependency, and it degrades
  gracefully on narrow or dumb terminals;
- ``lines`` (CI logs, ``nohup``, pipes): one plain line when a phase starts and one when it
  ends, each with the wall-clock time, seconds since the build started and row counts, plus
  a line at most every ``every`` seconds during a long phase;
- ``quiet`` (``-q``): nothing.

Every mode records the phases' seconds and rows (``timings``) for the manifest's ``run``
section, so the same numbers a person saw are kept with the output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

MODES = ("auto", "live", "lines", "quiet")


@dataclass
class Phase:
    """One timed step of a build; ``advance`` it as rows are done."""

    name: str
    total: int | None
    unit: str
    started: float
    rows: int = 0
    seconds: float = 0.0
    _owner: Progress | None = field(default=None, repr=False)

    def advance(self, rows: int) -> None:
        self.rows += rows
        if self._owner is not None:
            self._owner._advanced(self, rows)


class Progress:
    """Times a build's phases and shows them in the chosen ``mode`` (see the module docstring)."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, *, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "live" if _is_terminal(self.stream) else "lines"
        self.mode = mode
        self.every = every
        self._clock, self._wall = clock, wall
        self._start = clock()
        self._last_line = self._start
        self._bar: Any = None
        self._open: dict[str, Any] = {}
        self.phases: list[Phase] = []

    @contextmanager
    def phase(self, name: str, total: int | None = None, unit: str = "rows") -> Iterator[Phase]:
        """Time the block as phase ``name``; ``total`` (rows expected), when known, sizes the bar."""
        step = Phase(name, total, unit, self._clock(), _owner=self)
        self.phases.append(step)
        self._begin(step)
        try:
            yield step
        finally:
            step.seconds = self._clock() - step.started
            self._end(step)

    def message(self, text: str) -> None:
        """A one-off line (e.g. 'wrote OUT'), shown in every mode but quiet."""
        if self.mode == "quiet":
            return
        if self.mode == "live":
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            self._line(text)

    def __call__(self, text: str) -> None:  # usable wherever a plain ``log(str)`` is expected
        self.message(text)

    def on_stage(self, event: Any) -> None:
        """Follow the build engine's stage events (``mixer.engine.StageEvent``): a phase opens when
        a stage starts and closes, with the rows it gave, when the stage ends."""
        if event.event == "start":
            cm = self.phase(event.stage, total=event.rows or None)
            self._open[event.stage] = (cm, cm.__enter__())
            return
        opened = self._open.pop(event.stage, None)
        if opened is not None:
            cm, step = opened
            step.advance(event.rows)
            cm.__exit__(None, None, None)

    @property
    def timings(self) -> dict[str, Any]:
        """Seconds per phase (phases of the same name added up) and in all, for the manifest."""
        merged: dict[str, dict[str, Any]] = {}
        for p in self.phases:
            entry = merged.setdefault(p.name, {"phase": p.name, "seconds": 0.0, p.unit: 0})
            entry["seconds"] += p.seconds
            entry[p.unit] = entry.get(p.unit, 0) + p.rows
        for entry in merged.values():
            entry["seconds"] = round(entry["seconds"], 3)
        return {"seconds": round(self._clock() - self._start, 3), "phases": list(merged.values())}

    # ------------------------------------------------------------------ display

    def _begin(self, step: Phase) -> None:
        if self.mode == "live":
            from tqdm import tqdm

            self._bar = tqdm(total=step.total, desc=step.name, unit=f" {step.unit}", unit_scale=True,
                             file=self.stream, leave=True, dynamic_ncols=True, mininterval=0.2)
        elif self.mode == "lines":
            size = f" ({step.total:,} {step.unit})" if step.total is not None else ""
            self._line(f"{step.name}{size} ...")

    def _advanced(self, step: Phase, rows: int) -> None:
        if self.mode == "live" and self._bar is not None:
            self._bar.update(rows)
        elif self.mode == "lines" and self._clock() - self._last_line >= self.every:
            of = f" of {step.total:,}" if step.total is not None else ""
            self._line(f"  {step.name}: {step.rows:,}{of} {step.unit} so far")

    def _end(self, step: Phase) -> None:
        if self.mode == "live" and self._bar is not None:
            if step.total is None:
                self._bar.total = self._bar.n
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            rate = f" ({step.rows / step.seconds:,.0f} {step.unit}/s)" if step.rows and step.seconds > 0 else ""
            self._line(f"{step.name}: done, {step.rows:,} {step.unit}, {step.seconds:.1f}s{rate}")

    def _line(self, text: str) -> None:
        now = self._clock()
        self._last_line = now
        stamp = time.strftime("%H:%M:%S", time.localtime(self._wall()))
        print(f"{stamp} {now - self._start:7.1f}s  {text}", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
