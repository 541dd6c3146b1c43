"""The Makefile's interpreter choice (packaging/pick-python), with fake interpreters on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PICK = ROOT / "packaging" / "pick-python"


def fake_python(folder: Path, name: str, version: str, venv: bool = True) -> Path:
    """A stand-in that answers pick-python's two probes: the version, and `import venv, ensurepip`."""
    path = folder / name
    path.write_text(f"""#!/bin/sh
case "$2" in
  *version_info*) echo {version} ;;
  *ensurepip*) exit {0 if venv else 1} ;;
esac
""")
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


def pick(bin_dir: Path, *candidates: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": str(bin_dir)}  # only the fakes: the machine's own pythons stay out
    return subprocess.run(["/bin/sh", str(PICK), *candidates], capture_output=True, text=True, env=env)


def test_skips_an_unsuitable_python3_for_python312(bin_dir):
    fake_python(bin_dir, "python3", "3.13")
    want = fake_python(bin_dir, "python3.12", "3.12")
    fake_python(bin_dir, "python3.11", "3.11")
    done = pick(bin_dir, "python3", "python3.12", "python3.11")
    assert done.returncode == 0 and done.stdout.strip() == str(want)


def test_a_python_without_venv_is_passed_over(bin_dir):
    fake_python(bin_dir, "python3.12", "3.12", venv=False)
    want = fake_python(bin_dir, "python3.11", "3.11")
    assert pick(bin_dir, "python3.12", "python3.11").stdout.strip() == str(want)


def test_none_suitable_is_one_line_naming_what_to_install(bin_dir):
    fake_python(bin_dir, "python3", "3.13")
    fake_python(bin_dir, "python3.12", "3.12", venv=False)
    done = pick(bin_dir, "python3", "python3.12", "python3.99")
    assert done.returncode == 1
    (line,) = done.stdout.strip().splitlines()
    assert line.startswith("error: ") and "python3 (3.13)" in line and "python3.12-venv" in line
    assert "python3.99 (not found)" in line and "install python3.12 or python3.11" in line


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_uses_the_choice_or_stops(bin_dir, tmp_path):
    fake_python(bin_dir, "python3", "3.13")
    make = shutil.which("make")
    env = {**os.environ, "PATH": str(bin_dir)}
    env.pop("PYTHON", None)
    venv = tmp_path / "venv"
    stopped = subprocess.run(
        [make, "-n", "-C", str(ROOT), "demo", f"VENV={venv}"], capture_output=True, text=True, env=env
    )
    assert stopped.returncode != 0 and "needs Python 3.11 or 3.12" in stopped.stderr
    assert len(stopped.stderr.strip().splitlines()) == 1
    good = fake_python(bin_dir, "python3.11", "3.11")
    chosen = subprocess.run(
        [make, "-n", "-C", str(ROOT), "demo", f"VENV={venv}"], capture_output=True, text=True, env=env
    )
    assert chosen.returncode == 0 and f"{good} -m venv {venv}" in chosen.stdout
