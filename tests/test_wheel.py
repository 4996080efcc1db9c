"""The built wheel works on its own (scripts/check_wheel.sh): ``python -m build`` makes an sdist
and a wheel; the wheel, installed in a new venv, runs ``vlthinker train`` and ``vlthinker eval``
on the embedded model from a folder outside the repository.

The suite installs the wheel ``--no-deps`` in a venv over this Python's packages (about a
minute); ``VLTHINKER_WHEEL_VENV=fresh`` installs it with its dependencies in a fresh venv
(a few minutes, 1.7 GB), as ``bash scripts/check_wheel.sh`` does by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_wheel.sh"


@pytest.mark.slow
def test_the_wheel_installs_and_runs_train_and_eval(tmp_path):
    pytest.importorskip("build", reason="python -m build (the dev extra) is not installed")
    mode = os.environ.get("VLTHINKER_WHEEL_VENV", "system")
    env = {**os.environ, "WHEEL_VENV": mode, "TMPDIR": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert f"== the wheel works ({mode} venv)" in done.stdout
