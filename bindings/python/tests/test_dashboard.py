"""The dashboard example's demo runs and exits 0; pip can install us."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PKG = os.path.join(ROOT, "bindings", "python")


def test_dashboard_demo_runs() -> None:
    script = os.path.join(ROOT, "examples", "python", "dashboard.py")
    r = subprocess.run([sys.executable, script, "--demo", "--plain",
                        "--seconds", "2"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "VIEWERS" in r.stdout and ": ok" in r.stdout


@pytest.mark.skipif(os.environ.get("STREAMHUB_TEST_SANITIZED") == "1",
                    reason="the venv's python runs without the sanitizers")
def test_pip_install_into_a_venv(tmp_path) -> None:
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(["/usr/bin/python3", "-m", "venv",
                        "--system-site-packages", str(venv)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("python3-venv is not installed: " + r.stderr[-200:])
    src = tmp_path / "src"           # build from a copy: no litter here
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", "tests"))
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                        "--no-build-isolation", "--no-index", str(src)],
                       capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import streamhub, os; print(os.path.dirname(streamhub.__file__));"
         "h = streamhub.Hub(log_level='error', jwt_secret='k' * 32);"
         "print(h.publish('app:x', 't', 1)); h.close()"],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=60,
        env=env)
    assert r.returncode == 0, r.stderr
    where, offset = r.stdout.split()
    assert where.startswith(str(venv)) and offset == "1"
    assert os.path.exists(os.path.join(where, "py.typed"))
