"""`vlthinker train` and its run folder: nothing lost or mislabelled, messages not tracebacks.

Real runs use the small tiny model for one or two steps (see tests/test_train_run.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_train_run import demo_config, overrides
from vlthinker.cli import main
from vlthinker.data import synthetic
from vlthinker.data.writer import write_records
from vlthinker.train.config import ConfigError, load_config
from vlthinker.train.run import TrainDataError, load_data, train
from vlthinker.train.run_folder import (
    CARD_MARKER,
    LOCK_FILE,
    RunFolderError,
    RunLock,
    latest_complete_checkpoint,
    read_metrics,
    run_contents,
)

TASKS = ["math", "chart", "ocr", "grounding", "spatial", "vqa"]


def _steps(run: Path, split: str = "train") -> list[int]:
    entries = read_metrics(run)
    if split == "train":
        return [e["step"] for e in entries if e["split"] == "train" and "loss" in e]
    return [e["step"] for e in entries if e["split"] == split]


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line message ``vlthinker`` ends with (SystemExit), with no traceback printed."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    message = str(caught.value.code)
    assert "\n" not in message and "Traceback" not in capsys.readouterr().err
    return message


# ------------------------------------------------------------------ a folder that holds a run
def test_a_second_run_is_refused_a_failed_launch_writes_nothing_and_overwrite_replaces(
    small_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn
):
    run = tmp_path / "run"
    run.mkdir()
    notes = "# my notes\n"
    (run / "README.md").write_text(notes)  # a file we did not write
    train(demo_config(small_model_dir, run, 1, 1))
    out = capsys.readouterr().out
    # One short line per logging step, not transformers' dict of every metric.
    assert "step 1/1 · loss" in out and "'completions/mean_length'" not in out
    assert not [w for w in recwarn if "gradient_checkpointing" in str(w.message)]
    assert (run / "README.md").read_text() == notes  # TRL's model card did not replace it
    config_before = (run / "config.yaml").read_bytes()
    results_before = (run / "results.md").read_bytes()

    with pytest.raises(RunFolderError, match=r"already holds a run.*--resume.*--overwrite"):
        train(demo_config(small_model_dir, run, 1, 1))
    # A launch that fails on its data deletes and rewrites nothing, even with --overwrite.
    bad_data = f"data.train={tmp_path}/nonexistent.jsonl"
    with pytest.raises(TrainDataError, match="nonexistent"):
        train(demo_config(small_model_dir, run, 1, 1, bad_data), overwrite=True)
    message = _cli_error(["train", *overrides(small_model_dir, run, 1, 1)], capsys)
    assert "already holds a run" in message and f"--resume {run}" in message
    assert (run / "config.yaml").read_bytes() == config_before
    assert (run / "results.md").read_bytes() == results_before
    assert _steps(run) == [1] and _steps(run, "validation") == [0, 1]

    train(demo_config(small_model_dir, run, 1, 1, "training.seed=3"), overwrite=True)
    assert _steps(run) == [1]  # not [1, 1]: the old run's logs went with it
    assert _steps(run, "validation") == [0, 1]  # the new run validated at its start
    assert "seed: 3" in (run / "config.yaml").read_text()
    assert (run / "README.md").read_text() == notes


def test_nothing_is_written_before_the_data_is_checked(
    small_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = tmp_path / "new"
    missing = tmp_path / "nonexistent.jsonl"
    argv = ["train", *overrides(small_model_dir, run, 1, 1), f"data.train={missing}"]
    message = _cli_error(argv, capsys)
    assert message.startswith("vlthinker train: data.train") and str(missing) in message
    argv = ["train", *overrides(small_model_dir, run, 1, 1), f"model.path={tmp_path}/no_model"]
    message = _cli_error(argv, capsys)
    assert message.startswith("vlthinker train: command-line override 'model.path=")
    assert "no_model not found" in message
    assert not run.exists()


def test_an_empty_output_dir_is_refused(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(ConfigError, match=r"training\.output_dir must name a folder"):
        load_config(None, ["training.output_dir="])
    message = _cli_error(["train", "training.output_dir="], capsys)
    assert "command-line override 'training.output_dir='" in message


# ------------------------------------------------------------------ config range checks
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.difficulty=7", "data.difficulty"),
        ("data.image_size=0", "data.image_size"),
        ("training.per_device_batch_size=0", "training.per_device_batch_size"),
        ("data.validation_size=-4", "data.validation_size"),
    ],
)
def test_range_checks_name_the_key_and_the_command_line(override, key, capsys):
    message = _cli_error(["train", override], capsys)
    assert f"command-line override {override!r}: {key}" in message
    assert "demo.yaml" not in message


def test_a_value_from_the_file_is_named_with_the_file(tmp_path: Path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("data:\n  difficulty: 7\n")
    message = _cli_error(["train", "--config", str(config)], capsys)
    assert message == f"vlthinker train: {config}: data.difficulty must be in [0, 1]; got 7.0"
    # An override of the same key is what failed: the command line is named, not the file.
    message = _cli_error(["train", "--config", str(config), "data.difficulty=-1"], capsys)
    assert "command-line override 'data.difficulty=-1'" in message and str(config) not in message


# ------------------------------------------------------------------ no usable records
def _chart_file(folder: Path, n: int = 3) -> Path:
    return write_records(synthetic.generate(n, tasks=["chart"], image_size=64), folder)


def test_no_usable_training_records_is_an_error_saying_why(tmp_path: Path):
    path = _chart_file(tmp_path / "data")
    config = load_config(None, [f"data.train={path}", "data.tasks=[math, ocr]"])
    with pytest.raises(TrainDataError) as caught:
        load_data(config)
    text = str(caught.value)
    assert str(path) in text and "read 3 record(s)" in text
    assert "3 dropped as their task is not in data.tasks" in text and "3 of task 'chart'" in text

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    config = load_config(None, [f"data.train={empty}"])
    with pytest.raises(TrainDataError, match=r"read 0 record\(s\) \(the data is empty\)"):
        load_data(config)


def test_images_outside_the_data_folder_need_allow_absolute_images(tmp_path: Path, monkeypatch):
    from vlthinker.data.readers import ALLOW_ABSOLUTE_ENV

    monkeypatch.delenv(ALLOW_ABSOLUTE_ENV, raising=False)
    path = _chart_file(tmp_path / "data", 2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for i, row in enumerate(rows):  # each image moved out of the data folder, named absolutely
        outside = tmp_path / f"outside-{i}.png"
        shutil.move(path.parent / row["images"][0], outside)
        row["images"] = [str(outside)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = [f"data.train={path}", "data.tasks=[chart]"]
    with pytest.raises(TrainDataError, match="outside the data folder"):
        load_data(load_config(None, base))
    train_records, _ = load_data(load_config(None, [*base, "data.allow_absolute_images=true"]))
    assert len(train_records) == 2


# ------------------------------------------------------------------ the lock
def test_the_lock_refuses_a_live_process_and_takes_over_a_stale_one(tmp_path: Path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        lock = tmp_path / LOCK_FILE
        lock.write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(RunFolderError, match=rf"another training process \(PID {live.pid}"):
            RunLock(tmp_path).acquire()
        config = load_config(None, [f"training.output_dir={tmp_path}", "data.train_size=6"])
        with pytest.raises(RunFolderError, match="in use by another training process"):
            train(config, resume=None, overwrite=True)  # before the model is loaded
    finally:
        live.kill()
        live.wait()
    # Its process is gone: the lock is stale and taken over, then removed on release.
    with RunLock(tmp_path) as taken:
        assert json.loads(lock.read_text())["pid"] != live.pid and taken.held
    assert not lock.exists()


# ------------------------------------------------------------------ resume
def test_resume_a_finished_run_keeps_the_schedule_and_restarts_without_a_checkpoint(
    small_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = tmp_path / "run"
    config = demo_config(small_model_dir, run, 2, 1)  # validation at 0 and 2
    train(config)
    card = (run / "README.md").read_text()
    assert card.startswith(CARD_MARKER) and str(small_model_dir) in card
    assert "| math |" in card and "g2rpo" in card and "Steps**: 2 of 2" in card
    capsys.readouterr()

    # A finished run is left as it is: no step 3, the same table.
    results = (run / "results.md").read_bytes()
    metrics = (run / "metrics.jsonl").read_bytes()
    message = _cli_error_free(["train", "--resume", str(run)], capsys)
    assert "is a finished run" in message
    assert latest_complete_checkpoint(run).step == 2
    assert (run / "results.md").read_bytes() == results
    assert (run / "metrics.jsonl").read_bytes() == metrics

    # Killed after step 1: the resume says so and adds no validation pass at step 1.
    shutil.rmtree(run / "checkpoint-2")
    shutil.rmtree(run / "final")
    (run / "results.md").unlink()
    train(config, resume=run)
    assert f"resuming {run} from checkpoint-1 (step 1 of 2)" in capsys.readouterr().out
    assert _steps(run) == [1, 2] and _steps(run, "validation") == [0, 2]

    # No complete checkpoint at all: said, the logs reset, not appended to (1, 2, 1, 2).
    for checkpoint in run.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    shutil.rmtree(run / "final")
    train(config, resume=run)
    out = capsys.readouterr().out
    assert "has no complete checkpoint yet" in out and "metrics.jsonl" in out
    assert _steps(run) == [1, 2] and _steps(run, "validation") == [0, 2]


def _cli_error_free(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What ``vlthinker`` printed on a command that succeeds."""
    assert main(argv) == 0
    return capsys.readouterr().out


# ------------------------------------------------------------------ console and plots
def test_the_compact_line_is_short_and_keeps_the_main_numbers():
    from vlthinker.train.callbacks import compact_line

    logs = {f"{t}/{m}": 0.5 for t in TASKS for m in ("accuracy", "format", "entropy")}
    logs.update({"loss": 0.1234, "reward": 0.75, "step_time": 1.5, "grad_norm": 0.01})
    line = compact_line(3, 30, logs)
    assert line == "step 3/30 · loss 0.1234 · reward 0.750 · grad 0.01 · s/step 1.50"


def test_plots_keep_one_colour_per_task_and_a_shared_legend(tmp_path: Path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from vlthinker.train.plots import write_plots
    from vlthinker.train.run_folder import append_metrics

    for step in (1, 2, 3):  # "math" is missing from the entropy panel
        entry = {"step": step, "split": "train"}
        for task in ("math", "chart", "ocr"):
            entry.update({f"{task}/reward": 0.1 * step, f"{task}/accuracy": 0.2})
            if task != "math":
                entry[f"{task}/entropy"] = 1.0
        append_metrics(tmp_path, entry)
    append_metrics(tmp_path, {"step": 0, "split": "validation", "chart/accuracy": 0.1})
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    (path,) = write_plots(tmp_path, ["math", "chart", "ocr"])
    assert Image.open(path).size == (1400, 800)
    (figure,) = figures
    colours: dict[str, set] = {}
    legends = []
    for axis in figure.axes:
        for line in axis.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
        if axis.get_legend() is not None:
            legends.append([t.get_text() for t in axis.get_legend().get_texts()])
        ticks = [t for t in axis.get_xticks() if axis.get_lines()]
        assert all(float(t).is_integer() for t in ticks)
    assert all(len(found) == 1 for found in colours.values()) and len(colours) == 3
    assert len({next(iter(c)) for c in colours.values()}) == 3
    assert legends == [["math", "chart", "ocr"]]
    titles = [axis.get_title() for axis in figure.axes]
    assert "validation accuracy" in titles and "policy entropy" in titles


def test_an_output_folder_that_cannot_be_written_fails_before_training(tmp_path: Path):
    from vlthinker.train.run_folder import RunFolderError, make_writable_folder

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunFolderError, match="cannot be written"):
        make_writable_folder(blocker / "run")
    make_writable_folder(tmp_path / "fine" / "run")
    assert list((tmp_path / "fine" / "run").iterdir()) == []  # the probe is removed


def test_a_full_disk_is_named_with_the_way_to_continue(tmp_path: Path):
    import errno

    from vlthinker.train.run_folder import write_failure

    torch_message = RuntimeError(
        "[enforce fail at inline_container.cc:778] . unexpected pos 64 vs 52"
    )
    for error in (OSError(errno.ENOSPC, "No space left on device"), torch_message):
        message = write_failure(error, tmp_path)
        assert message is not None and "disk" in message and f"--resume {tmp_path}" in message
    assert "cannot be written" in write_failure(
        OSError(errno.EROFS, "Read-only file system"), tmp_path
    )
    assert write_failure(RuntimeError("shape mismatch"), tmp_path) is None


# ------------------------------------------------------------------ resume: changes, Ctrl-C
def _saved_run(folder: Path) -> Path:
    from vlthinker.train.config import dump_config

    folder.mkdir(parents=True)
    config = load_config(None, [f"training.output_dir={folder}"])
    dump_config(config, folder / "config.yaml")
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train"}) + "\n")
    return folder


def test_resume_refuses_method_changes_unless_asked(tmp_path: Path, capsys):
    from vlthinker.train.run import resume_config

    run = _saved_run(tmp_path / "run")
    changed = ["algorithm.estimator=grpo", "rollout.temperature=0.5"]
    config = resume_config(run, changed)
    with pytest.raises(RunFolderError, match="--allow-changes") as refused:
        train(config, resume=run)
    assert "algorithm.estimator 'g2rpo' → 'grpo'" in str(refused.value)
    assert "rollout.temperature 1.0 → 0.5" in str(refused.value)
    assert not (run / "resume_changes.jsonl").exists()
    assert load_config(run / "config.yaml").algorithm.estimator == "g2rpo"  # not overwritten
    # the command line: one message, the run's config untouched
    with pytest.raises(SystemExit, match="pass --allow-changes"):
        main(["train", "--resume", str(run), *changed])
    assert load_config(run / "config.yaml").rollout.temperature == 1.0
    # how far it trains and how it logs are not the method: no refusal there
    from vlthinker.train.run import check_resume_changes

    more = resume_config(run, ["training.max_steps=80", "logging.progress=false"])
    assert set(check_resume_changes(run, more, allow_changes=False)) == {
        "training.max_steps",
        "logging.progress",
    }


def test_an_accepted_change_is_recorded_with_its_step_in_the_run_card(tmp_path: Path):
    from vlthinker.train.run import (
        check_resume_changes,
        record_resume_changes,
        resume_config,
        write_run_card,
    )

    run = _saved_run(tmp_path / "run")
    config = resume_config(run, ["algorithm.estimator=grpo"])
    changes = check_resume_changes(run, config, allow_changes=True)
    record_resume_changes(run, 32, changes)
    assert write_run_card(config, run, 40, "| table |")
    card = (run / "README.md").read_text()
    assert "- **Method**: grpo" in card
    assert "- **Changed on resume at step 32**: algorithm.estimator 'g2rpo' → 'grpo'" in card
    assert "resume_changes.jsonl" in run_contents(run)  # the run's own file: --overwrite clears it


def _interrupt_after_first_checkpoint(small_model_dir: Path, run: Path):
    """Start a 40-step run, send it SIGINT once its first checkpoint is complete; returns the
    process (finished) and its stderr."""
    import os
    import signal
    import time

    command = [sys.executable, "-m", "vlthinker.cli", "train"]
    command += overrides(small_model_dir, run, 40, 1)
    process = subprocess.Popen(
        command,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`cmd &`, nohup) has SIGINT ignored, and a child
        # inherits that: Python then never turns SIGINT into KeyboardInterrupt. A terminal's
        # Ctrl-C reaches a foreground process with the default disposition; so does this one.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        checkpoint = latest_complete_checkpoint(run) if run.exists() else None
        if checkpoint is not None:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read()[-3000:]
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    return process, stderr


def test_ctrl_c_leaves_one_line_with_the_step_checkpoint_and_resume_command(
    small_model_dir: Path, tmp_path: Path
):
    run = tmp_path / "run"
    process, stderr = _interrupt_after_first_checkpoint(small_model_dir, run)
    assert process.returncode != 0
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "vlthinker train: interrupted" in line]
    assert len(lines) == 1, stderr[-3000:]
    kept = latest_complete_checkpoint(run)
    assert f"checkpoint kept: {kept.path} (step {kept.step})" in lines[0]
    assert f"resume with: vlthinker train --resume {run}" in lines[0]
