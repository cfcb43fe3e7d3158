"""An installed wheel (not the source checkout) carries everything `mixer bench` and the
quickstart data need."""

from __future__ import annotations

import site
import subprocess
import sys
import venv
from pathlib import Path

from conftest import REPO


def test_mixer_bench_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("mixer-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the wheel goes into the fresh venv; its dependencies come from this test's environment
    # (a path line, so that environment's editable mixer finder is not loaded)
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib, str(wheel)],
                   check=True, capture_output=True)
    where = subprocess.run([py, "-c", "import mixer; print(mixer.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, check=True).stdout.strip()
    assert where.startswith(purelib), where  # the wheel's copy, not the checkout
    run = subprocess.run([env_dir / "bin" / "python", "-m", "mixer.cli", "bench", "--sizes", "1k", "--no-baselines",
                          "--cache", str(tmp_path / "cache")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "full build (mixer), 1,000 rows" in run.stdout
