"""The online filter's refill agrees across processes (issue 25 §1): two CPU processes (gloo, via
accelerate launch) whose pass rates differ draw the same number of fresh prompts in every round,
finish, and keep the groups one process keeps from the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlthinker.train.run_folder import BATCHES_FILE, read_metrics

WORKER = Path(__file__).parent / "distributed" / "filter_worker.py"


def settings(model: Path, max_resample: int) -> list[str]:
    # 8 prompts × 2 rollouts a step: 4 prompt groups on each of two processes, or 8 on one.
    return [
        f"model.path={model}",
        "training.max_steps=1",
        "training.save_steps=1000",
        "training.eval_steps=0",
        "training.prompts_per_step=8",
        "training.per_device_batch_size=8",
        "training.torch_threads=1",
        "rollout.num_generations=2",
        "rollout.max_new_tokens=4",
        "rollout.online_filter=[0.01,0.99]",
        f"rollout.max_resample={max_resample}",
        "algorithm.num_iterations=1",
        "data.train_size=32",
        "data.validation_size=0",
        "data.image_size=64",
        "logging.progress=false",
        "logging.plots=false",
        "logging.report_to=[]",
    ]


def launch(processes: int, out: Path, overrides: list[str], port: int) -> list[dict]:
    # Without GPUs, --multi_gpu starts torch.distributed processes on the gloo backend.
    mode = "--multi_gpu" if processes > 1 else "--cpu"
    command = [sys.executable, "-m", "accelerate.commands.launch", mode,
               "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(port), str(WORKER), str(out), *overrides]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"{processes} process(es) hung: {str(error.stderr)[-3000:]}") from None
    assert completed.returncode == 0, completed.stderr[-3000:]
    logs = [json.loads((out / f"process{rank}.json").read_text()) for rank in range(processes)]
    assert all(log["processes"] == processes for log in logs)
    return logs


def trained_prompts(out: Path) -> list[str]:
    """The record ids of the first step's batch, as the run logs them (padding included)."""
    entries = [json.loads(line) for line in (out / "run" / BATCHES_FILE).read_text().splitlines()]
    assert entries[0]["step"] == 1
    return entries[0]["record_ids"]


@pytest.mark.slow
def test_two_processes_with_different_pass_rates_refill_alike(small_model_dir, tmp_path):
    # Without refills: the groups two processes keep are those one process keeps.
    one, two = tmp_path / "one", tmp_path / "two"
    single = launch(1, one, settings(small_model_dir, 0), 29611)
    double = launch(2, two, settings(small_model_dir, 0), 29612)
    (fill,) = single[0]["fills"]
    first, second = (log["fills"][0] for log in double)
    assert [first["passed_first"], second["passed_first"]] == [4, 1]  # pass rates 100 % and 25 %
    assert fill["passed_first"] == 5
    assert first["kept"] + second["kept"] == fill["kept"]
    assert first["padded"] + second["padded"] == fill["padded"]
    assert trained_prompts(two) == trained_prompts(one) == fill["kept"] + fill["padded"]
    assert not single[0]["draws"] and not any(log["draws"] for log in double)

    # With refills: every round draws as many prompts on each process (round 1: 4 each, round
    # 2: 2 each), and the run finishes with full batches of passing groups.
    refill = tmp_path / "refill"
    resampled = launch(2, refill, settings(small_model_dir, 2), 29613)
    rounds = [[(d["step"], d["round"], d["rollouts"]) for d in log["draws"]] for log in resampled]
    assert rounds[0] == rounds[1] == [(1, 1, 8), (1, 2, 4)]
    first, second = (log["fills"][0] for log in resampled)
    assert first["kept"] == fill["kept"][:4] and not first["padded"]
    # process 1 kept its one passing group, then the fresh ones at even global places: its
    # groups 0 and 2 of round 1 (places 4 and 6), its group 0 of round 2 (place 2)
    draws = [d["record_ids"] for d in resampled[1]["draws"]]
    assert second["kept"] == [fill["kept"][4], draws[0][0], draws[0][2], draws[1][0]]
    assert not second["padded"]
    assert trained_prompts(refill) == first["kept"] + second["kept"]
    (step,) = [m for m in read_metrics(refill / "run") if "filter/resampled_rollouts" in m]
    assert step["filter/resampled_rollouts"] == (4 + 2) * 2 * 2  # groups × rollouts × processes
    assert step["filter/padded_groups"] == 0


@pytest.mark.slow
def test_vlthinker_train_runs_under_a_two_process_launch(small_model_dir, tmp_path):
    # Rank 0 checks, locks and prepares the folder; rank 1 waits for it instead of finding rank
    # 0's config.yaml and refusing the folder as "already holds a run".
    run = tmp_path / "run"
    overrides = [o for o in settings(small_model_dir, 1) if not o.startswith("training.torch")]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", "29613",
               "-m", "vlthinker.cli", "train", f"training.output_dir={run}", *overrides,
               "training.max_steps=2", "training.save_steps=1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (run / "results.json").exists() and (run / "final").is_dir()
    assert not (run / "train.lock").exists()
    steps = [e["step"] for e in read_metrics(run) if e.get("split") == "train" and "loss" in e]
    assert steps == [1, 2]  # logged once, by rank 0
    batches = [json.loads(line) for line in (run / BATCHES_FILE).read_text().splitlines()]
    assert [b["step"] for b in batches] == [1, 2]
    assert len(batches[0]["record_ids"]) == 8  # both processes' prompts, gathered
