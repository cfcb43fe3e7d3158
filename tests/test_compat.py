"""Co-installation: mixer installs and works beside the oldest ``datasets`` a trainer pins.

LLaMA-Factory 0.9.5 pins ``datasets<=4.0.0``; axolotl 0.19 pins 4.8.4; TRL 1.16 needs >= 4.7.0.
This test creates a venv with ``datasets==4.0.0``, installs this checkout there (pip resolves
mixer's own requirements against the pin, so a too-high lower bound fails here), builds the
trainer formats, loads them with 4.0.0, rebuilds smaller into the same folders and loads again,
then loads what 4.0.0 wrote with the ``datasets`` of this test run (the newest) and checks the
rows are the ones the newest version writes. The venv is kept in ``.venv-compat/`` keyed by the
pin and pyproject.toml, so only the first run pays for it (about 90 s here; later runs about 15 s).
It skips, with pip's reason, only when pip cannot download (no index); a resolution conflict fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from conftest import REPO
from mixer import formats, pipeline
from test_formats import heterogeneous_tools_source

OLDEST = "4.0.0"
UNREACHABLE = ("Could not find a version", "No matching distribution", "Failed to establish a new connection",
               "Network is unreachable", "Temporary failure in name resolution", "ProxyError", "Max retries")


def _compat_venv() -> Path:
    key = hashlib.sha256((OLDEST + (REPO / "pyproject.toml").read_text()).encode()).hexdigest()[:12]
    venv = REPO / ".venv-compat" / f"datasets-{OLDEST}-{key}"
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return python
    for stale in venv.parent.glob(f"datasets-{OLDEST}-*"):  # venvs of older pyproject.toml versions
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"datasets=={OLDEST}", "-e", str(REPO)],
                         capture_output=True, text=True)
    if pip.returncode:
        shutil.rmtree(venv, ignore_errors=True)
        if "ResolutionImpossible" not in pip.stderr and any(s in pip.stderr for s in UNREACHABLE):
            pytest.skip(f"pip cannot install datasets=={OLDEST}: {pip.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"mixer does not install beside datasets=={OLDEST}:\n{pip.stderr[-2000:]}")
    (venv / ".ready").touch()
    return python


@pytest.mark.compat
def test_trainer_formats_build_and_load_with_the_oldest_pinned_datasets(tmp_path: Path) -> None:
    python = _compat_venv()
    source = heterogeneous_tools_source(tmp_path)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([str(python), str(REPO / "tests" / "compat_probe.py"), str(source), str(tmp_path / "old")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["datasets"] == OLDEST
    for fmt, seen in report["formats"].items():
        assert seen["rows"] == 13 and seen["rebuilt_rows"] == 5, (fmt, seen)  # loads; never stale
    assert "Json" not in report["formats"]["trl"]["features"]  # the portable encoding

    # what 4.0.0 wrote loads with the newest datasets, and decodes to what the newest writes
    for fmt in ("trl", "prompt", "openai", "llama-factory"):
        old = datasets.load_dataset(str(tmp_path / "old" / fmt), cache_dir=str(tmp_path / "cache"))["train"]
        out, _ = pipeline.convert(source, tmp_path / "new" / fmt, fmt)
        new = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]
        assert old.num_rows == new.num_rows == 13
        if fmt in ("trl", "prompt"):
            assert [formats.decode_json(r) for r in old] == [dict(r) for r in new]
