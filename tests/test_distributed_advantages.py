"""Two CPU processes (gloo, via accelerate launch) give the same advantages as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parent / "distributed" / "advantages_worker.py"


def launch(processes: int, out: Path) -> list[float]:
    # Without GPUs, --multi_gpu starts torch.distributed processes on the gloo backend.
    mode = "--multi_gpu" if processes > 1 else "--cpu"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        mode,
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(29600 + processes),
        str(WORKER),
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["processes"] == processes
    return result["advantages"]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    single = launch(1, tmp_path / "one.json")
    double = launch(2, tmp_path / "two.json")
    assert len(single) == len(double) == 32
    assert double == pytest.approx(single, abs=1e-12)
    assert max(abs(a) for a in single) > 0.5  # a batch with real signal, not all zeros
