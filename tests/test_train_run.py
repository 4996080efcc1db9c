"""`vlthinker train` end to end on a small tiny model: the run folder, and resume after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vlthinker.train.config import load_config
from vlthinker.train.run import train
from vlthinker.train.run_folder import BATCHES_FILE, latest_complete_checkpoint, read_metrics

TASKS = ["math", "chart", "ocr", "grounding", "spatial", "vqa"]


def overrides(small_model_dir: Path, out: Path, steps: int, save_steps: int) -> list[str]:
    return [
        f"model.path={small_model_dir}",
        f"training.output_dir={out}",
        f"training.max_steps={steps}",
        f"training.save_steps={save_steps}",
        f"training.eval_steps={steps}",
        "training.prompts_per_step=6",
        "training.per_device_batch_size=12",
        "training.eval_batch_size=12",
        "rollout.num_generations=4",
        "rollout.max_new_tokens=10",
        # the small untrained model scores 0 everywhere: the filter would drop every group
        "rollout.online_filter=null",
        "algorithm.num_iterations=1",
        "data.train_size=36",
        "data.validation_size=2",
        "data.image_size=64",
        "logging.progress=false",
    ]


def demo_config(small_model_dir: Path, out: Path, steps: int = 2, save_steps: int = 2, *extra: str):
    from vlthinker.train.cli import DEMO_CONFIG, packaged_config

    return load_config(
        packaged_config(DEMO_CONFIG), [*overrides(small_model_dir, out, steps, save_steps), *extra]
    )


def test_two_steps_write_metrics_checkpoints_plots_and_the_table(
    small_model_dir: Path, tmp_path: Path
):
    from transformers import AutoModelForImageTextToText

    result = train(demo_config(small_model_dir, tmp_path / "run"))
    run = result.output_dir
    metrics = read_metrics(run)
    steps = [e for e in metrics if e["split"] == "train" and "loss" in e]
    assert [e["step"] for e in steps] == [1, 2]
    for entry in metrics:
        assert "non_finite" not in entry, entry
        assert all(math.isfinite(v) for v in entry.values() if isinstance(v, float))
    seen = {k.split("/")[0] for e in steps for k in e if "/" in k and k.split("/")[0] in TASKS}
    assert seen  # per-task metrics are logged for the tasks of each batch
    task = next(iter(seen))
    entry = next(e for e in steps if f"{task}/accuracy" in e)
    for metric in ("accuracy", "format", "length", "reward", "length_tokens", "entropy",
                   "advantage_mean", "advantage_std", "tied_group_share", "clip_frac"):  # fmt: skip
        assert f"{task}/{metric}" in entry
    assert_one_reward_and_advantage(steps, weights=[0.8, 0.1, 0.1])
    validation = [e for e in metrics if e["split"] == "validation"]
    assert [e["step"] for e in validation] == [0, 2]
    assert all(f"{t}/accuracy" in validation[0] for t in TASKS)
    batches = [json.loads(line) for line in (run / BATCHES_FILE).read_text().splitlines()]
    assert [b["step"] for b in batches] == [1, 2] and all(
        len(b["record_ids"]) == 6 for b in batches
    )
    table = (run / "results.md").read_text()
    assert all(f"| {t} |" in table for t in TASKS) and table == result.table + "\n"
    assert (run / "plots.png").read_bytes()[:4] == b"\x89PNG"
    card = (run / "README.md").read_text()  # the options the estimator was called with
    assert "- **Method**: g2rpo (tie_atol=1e-06, per_task=True, " in card
    assert "gate_component=0), 6 prompts × 4 rollouts" in card
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert latest_complete_checkpoint(run).step == 2
    model = AutoModelForImageTextToText.from_pretrained(run / "final")  # plain transformers
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"


def assert_one_reward_and_advantage(steps: list[dict], weights: list[float]) -> None:
    """TRL's logged reward is the weighted sum of its per-component means (TRL was given the
    weights), and the only advantages logged are the trained ones, per task."""
    for entry in steps:
        means = [entry[f"rewards/{name}/mean"] for name in ("accuracy", "format", "length")]
        weighted = sum(w * m for w, m in zip(weights, means, strict=True))
        assert entry["reward"] == pytest.approx(weighted, abs=1e-6)
        assert entry["reward"] != pytest.approx(sum(means), abs=1e-3)  # not the plain sum
        advantages = [k for k in entry if "advantage" in k]
        assert advantages and all(
            k.split("/")[0] in TASKS and k.split("/")[1] in ("advantage_mean", "advantage_std")
            for k in advantages
        )


def _batches(run: Path) -> list[list[str]]:
    lines = (run / BATCHES_FILE).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["step"] for e in entries] == list(range(1, len(entries) + 1))
    return [e["record_ids"] for e in entries]


def test_resume_after_sigkill_keeps_the_data_order_and_step_count(small_model_dir: Path, tmp_path):
    steps = 4
    reference = train(demo_config(small_model_dir, tmp_path / "reference", steps, 1)).output_dir

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "vlthinker.cli", "train",
               *overrides(small_model_dir, killed, steps, 1)]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        checkpoint = latest_complete_checkpoint(killed) if killed.exists() else None
        if checkpoint is not None and checkpoint.step >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert latest_complete_checkpoint(killed).step < steps

    resumed = subprocess.run(
        [sys.executable, "-m", "vlthinker.cli", "train", "--resume", str(killed)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _batches(killed) == _batches(reference)
    state = json.loads((latest_complete_checkpoint(killed).path / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    train_steps = [e["step"] for e in read_metrics(killed) if e["split"] == "train" and "loss" in e]
    assert train_steps == list(range(1, steps + 1))


_TIMING = ("time", "runtime", "per_second", "flos")


def _comparable(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if not any(t in k for t in _TIMING)}


def test_resume_from_a_checkpoint_inside_a_rollout_batch_equals_the_unbroken_run(
    small_model_dir: Path, tmp_path: Path, capsys
):
    """Issue 25 §4: save_steps=3 with two updates per rollout batch checkpointed inside a batch,
    and the resumed run drew fresh rollouts there. Checkpoints now fall on batch boundaries
    (save_steps=1 becomes every 2 steps, with a note); a run interrupted after step 4 resumes
    from step 2 with the unbroken run's metrics, one TensorBoard point per step, and the mean
    loss of all steps."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vlthinker.train.run import resume_config

    steps = 4
    extra = ("training.updates_per_generation=2",)
    config = demo_config(small_model_dir, tmp_path / "reference", steps, 1, *extra)
    reference = train(config).output_dir
    assert "checkpoints every 2 steps instead" in capsys.readouterr().out
    assert sorted(p.name for p in reference.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    # a run killed after step 4 was logged, before its checkpoint was complete
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed)
    for name in ("checkpoint-4", "final"):
        shutil.rmtree(killed / name)
    for name in ("results.md", "results.json", "README.md", "plots.png"):
        (killed / name).unlink(missing_ok=True)
    train(resume_config(killed), resume=killed)

    ours, theirs = read_metrics(killed), read_metrics(reference)
    assert [(e["step"], e["split"]) for e in ours] == [(e["step"], e["split"]) for e in theirs]
    for mine, unbroken in zip(ours, theirs, strict=True):
        mine, unbroken = _comparable(mine), _comparable(unbroken)
        assert mine.keys() == unbroken.keys()
        for key, value in unbroken.items():
            assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (mine["step"], key)
    summary = [e for e in ours if "train_loss" in e]
    losses = [e["loss"] for e in ours if e["split"] == "train" and "loss" in e]
    assert len(summary) == 1 and len(losses) == steps
    assert summary[0]["train_loss"] == pytest.approx(sum(losses) / steps)  # all steps, not 2

    events = EventAccumulator(str(killed / "tensorboard"))
    events.Reload()
    loss = next(tag for tag in events.Tags()["scalars"] if tag.endswith("loss"))
    assert [e.step for e in events.Scalars(loss)] == list(range(1, steps + 1))
    assert [e.value for e in events.Scalars(loss)] == pytest.approx(losses, rel=1e-4)
    validation = EventAccumulator(str(killed / "tensorboard" / "validation"))
    validation.Reload()
    tag = validation.Tags()["scalars"][0]
    assert [e.step for e in validation.Scalars(tag)] == [0, steps]
    # the resumed run's writers start with purge_step = the step after the checkpoint
    for folder in (killed / "tensorboard", killed / "tensorboard" / "validation"):
        assert 3 in _purge_steps(folder), folder


def _purge_steps(folder: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                found.append(event.step)
    return found


def test_length_and_entropy_shaping_act_per_task(small_model_dir: Path, tmp_path: Path):
    """Each task gets its own length envelope and entropy band, from the config alone."""
    from vlthinker.train.config import TaskShaping

    config = demo_config(small_model_dir, tmp_path / "run", steps=1, save_steps=100)
    config.training.per_device_batch_size = 24  # one micro-batch: the logged values are exact
    config.training.eval_steps = 0
    config.data.validation_size = 0
    always, never = [0.0, 0.0, 1e6, 1e6], [1e5, 2e5, 3e5, 4e5]
    config.shaping.tasks = {
        task: TaskShaping(
            reasoning=task in ("math", "chart", "spatial"),
            length=always if i % 2 == 0 else never,
            entropy_band=[0.0, 0.5] if i % 2 == 0 else [0.0, 100.0],
        )
        for i, task in enumerate(TASKS)
    }
    config.shaping.entropy_coef = 0.1
    train(config)
    step = next(e for e in read_metrics(tmp_path / "run") if e["split"] == "train" and "loss" in e)
    present = [t for t in TASKS if f"{t}/length" in step]
    assert present
    expected_penalty = 0.0
    for task in present:
        in_band_everywhere = TASKS.index(task) % 2 == 1
        assert step[f"{task}/length"] == (0.0 if in_band_everywhere else 1.0)
        if not in_band_everywhere:  # untrained: entropy is far above 0.5
            assert step[f"{task}/entropy"] > 0.5
            expected_penalty += 0.1 * (step[f"{task}/entropy"] - 0.5)
    assert step["entropy_band_penalty"] == pytest.approx(expected_penalty, rel=1e-4)


def test_sampled_validation_repeats_its_stream_and_leaves_training_rng_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import torch
    from transformers import TrainerState

    import vlthinker.evaluation
    from vlthinker.data import PromptConfig
    from vlthinker.train.callbacks import ValidationCallback

    class Prediction:  # one scored response; its accuracy is the pass's first random draw
        def __init__(self, draw: float) -> None:
            self.task, self.accuracy, self.format, self.score = "math", draw, 1.0, draw

    class Result:  # what evaluate_records returns
        def __init__(self, predictions: list[Prediction]) -> None:
            self.predictions = predictions

    def fake_evaluate(model, processor, records, **kwargs):
        assert (kwargs["temperature"], kwargs["top_p"]) == (1.0, 0.95)
        assert len(records) == 2  # one item, two samples
        draw = float(torch.rand(1))
        return Result([Prediction(draw), Prediction(draw)])

    monkeypatch.setattr(vlthinker.evaluation, "evaluate_records", fake_evaluate)
    settings = SimpleNamespace(
        output_dir=str(tmp_path),
        validation_steps=1,
        validation_batch_size=1,
        max_completion_length=8,
        validation_temperature=1.0,
        validation_top_p=0.95,
        validation_seed=5,
        validation_samples=2,
        report_to=[],
        disable_tqdm=True,
    )
    callback = ValidationCallback(
        processor=None,
        records=[SimpleNamespace(task="math")],
        prompt_config=PromptConfig(),
        args=settings,
    )
    model = torch.nn.Linear(1, 1)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    state = TrainerState()
    callback._validate(model, 0, state)
    callback._validate(model, 1, state)
    assert torch.equal(torch.random.get_rng_state(), before)  # training draws are unchanged
    settings.validation_seed = 6
    callback._validate(model, 2, state)
    draws = [entry["math/accuracy"] for entry in callback.history(tmp_path)]
    assert draws[0] == draws[1] != draws[2]  # same stream every pass; the seed drives it


def test_a_lora_run_saves_a_merged_model_plain_transformers_loads(
    small_model_dir: Path, tmp_path: Path
):
    import torch
    from transformers import AutoModelForImageTextToText

    config = demo_config(
        small_model_dir,
        tmp_path / "run",
        1,
        1,
        "model.lora_rank=4",
        "training.learning_rate=1e-2",
        "model.lora_modules_to_save=[language_model.norm]",
        "training.modules_to_save_learning_rate=0.25",
    )
    final = train(config).output_dir / "final"
    assert not (final / "adapter_config.json").exists()  # merged, not an adapter
    start = AutoModelForImageTextToText.from_pretrained(small_model_dir).state_dict()
    trained = AutoModelForImageTextToText.from_pretrained(final).state_dict()
    assert trained.keys() == start.keys()
    changed = [k for k in start if not torch.equal(start[k], trained[k])]
    assert changed and all("language_model" in k for k in changed)  # LoRA targets the LM only
    # The output norm trained in full, at its own step: Adam's first step moves each weight
    # with a gradient by about its learning rate (0.25 here, 1e-2 for the adapter).
    gain = "model.language_model.norm.weight"
    step = (trained[gain] - start[gain]).abs()
    assert step.max() == pytest.approx(0.25, rel=0.05)


def test_online_filter_refills_and_pads_real_generation_batches(small_model_dir: Path, tmp_path):
    """The small model scores 0 everywhere, so the filter drops every group, resamples once
    (a second generation call, joined with the first) and pads the step with masked groups."""
    out = tmp_path / "run"
    config = demo_config(
        small_model_dir,
        out,
        2,
        2,
        "rollout.online_filter=[0.01,0.99]",
        "rollout.max_resample=1",
        "algorithm.num_iterations=2",
    )
    train(config)
    steps = [
        m for m in read_metrics(out) if m.get("split") == "train" and "filter/padded_groups" in m
    ]
    assert [m["step"] for m in steps] == [1]  # one generation serves both updates
    assert steps[0]["filter/padded_groups"] == 6.0  # every prompt of the step
    assert steps[0]["filter/resampled_rollouts"] == 24.0  # one refill round of 6 prompts × 4
    assert all(m.get(f"{t}/filter_dropped_share", 1.0) == 1.0 for m in steps for t in TASKS)
    # Every row is padding (masked out of the loss): no reward or advantage is logged as trained,
    # neither TRL's (of the generation calls) nor ours.
    assert not [k for k in steps[0] if k.startswith("reward") or "advantage" in k]
