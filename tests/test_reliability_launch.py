"""A launch as a new user makes it (issue 25 §2, §3, §5): the recipe's prompt-length, pixel and
importance-sampling keys; a failed launch leaves nothing and its one-line message names the real
source; the run and evaluation folders' edges; the training curves' smoothing.

Only the last tests load the small model; the rest fail (as they should) before any model loads.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_reliability_data import _bomb_png
from test_reliability_train import _cli_error
from test_train_run import demo_config, overrides
from vlthinker import outputs
from vlthinker.cli import main
from vlthinker.data import synthetic
from vlthinker.data.writer import write_records
from vlthinker.train.config import ConfigError, load_config, trainer_config
from vlthinker.train.run import TrainDataError, load_data, refuse_run_folder, train
from vlthinker.train.run_folder import clear_run, run_contents

RECIPE = Path(__file__).parent.parent / "src/vlthinker/configs/openvlthinker-v2-qwen3vl-8b.yaml"


# ------------------------------------------------------------------ §2 the recipe's keys
def test_the_recipe_sets_prompt_length_pixels_and_the_importance_sampling_switch():
    config = load_config(RECIPE, ["model.path=embedded:tiny_vlm"])
    assert config.data.max_prompt_length == 16384
    assert (config.data.min_pixels, config.data.max_pixels) == (3136, 1048576)
    assert config.rollout.max_model_length == 16384 + config.rollout.max_new_tokens
    assert config.rollout.vllm_importance_sampling_correction is False


def test_importance_sampling_keys_reach_trl(tmp_path: Path):
    config = load_config(
        None,
        [
            "rollout.vllm_importance_sampling_mode=token_truncate",
            "rollout.vllm_importance_sampling_cap=2.5",
            "logging.report_to=[]",
        ],
    )
    args = trainer_config(config, tmp_path)
    assert args.vllm_importance_sampling_correction is True  # TRL's default kept
    assert args.vllm_importance_sampling_mode == "token_truncate"
    assert args.vllm_importance_sampling_clip_max == 2.5
    off = load_config(None, ["rollout.vllm_importance_sampling_correction=false"])
    assert trainer_config(off, tmp_path).vllm_importance_sampling_correction is False


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("rollout.vllm_importance_sampling_mode=sequence", "rollout.vllm_importance_sampling_mode"),
        ("rollout.vllm_importance_sampling_cap=0.5", "rollout.vllm_importance_sampling_cap"),
        ("data.max_prompt_length=0", "data.max_prompt_length"),
        ("data.min_pixels=0", "data.min_pixels"),
        ("data.max_pixels=100", "data.max_pixels"),  # below data.min_pixels
    ],
)
def test_the_new_keys_are_checked(override: str, key: str):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, ["data.min_pixels=1000", override])


def test_the_context_must_hold_the_longest_prompt_and_response():
    with pytest.raises(ConfigError, match=r"rollout\.max_model_length \(4000\) must hold"):
        load_config(
            None,
            [
                "data.max_prompt_length=4000",
                "rollout.max_new_tokens=64",
                "rollout.max_model_length=4000",
            ],
        )


def test_pixel_bounds_reach_the_processor_and_token_counts_match_it(small_model_dir: Path):
    from PIL import Image

    from vlthinker.data import PromptConfig, Record
    from vlthinker.models import load_processor
    from vlthinker.models.processor import image_tokens
    from vlthinker.train.dataset import prompt_tokens, within_prompt_length

    processor = load_processor(small_model_dir, min_pixels=3136, max_pixels=1048576)
    size = processor.image_processor.size
    assert (size.shortest_edge, size.longest_edge) == (3136, 1048576)
    image = Image.new("RGB", (640, 480), "white")
    grid = processor.image_processor([image])["image_grid_thw"][0]
    assert [int(v) for v in grid] == [1, 30, 40]  # 480 × 640 kept (within the bounds)
    assert image_tokens(processor, 640, 480) == 30 * 40 // 4

    small = load_processor(small_model_dir, max_pixels=64 * 64)
    _, rows, cols = (int(v) for v in small.image_processor([image])["image_grid_thw"][0])
    assert rows * cols * 16 * 16 <= 64 * 64

    # The prompt's token count is what the processor really produces for it.
    record = Record(id="r", task="chart", answer_type="numeric", question="How many?", answer="3")
    record.images = [image]
    config = PromptConfig()
    from vlthinker.data import build_messages

    text = processor.apply_chat_template(
        build_messages(record, config), tokenize=False, add_generation_prompt=True
    )
    real = len(processor(text=[text], images=[image])["input_ids"][0])
    assert prompt_tokens(record, processor, config) == real
    kept, dropped = within_prompt_length([record], processor, config, real - 1)
    assert (kept, dropped) == ([], [record])
    kept, dropped = within_prompt_length([record], processor, config, real)
    assert (kept, dropped) == ([record], [])


# ------------------------------------------------------------------ §3 a failed launch
def _no_wandb() -> None:
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ("training.warmup_steps=-5", "training.warmup_steps must be ≥ 0; got -5"),
        ("training.torch_threads=-1", "training.torch_threads must be ≥ 1 or null; got -1"),
        ("logging.report_to=[wandb]", "logging.report_to: 'wandb' is not installed"),
        ("training.deepspeed=missing.json", "training.deepspeed: missing.json is not a file"),
    ],
)
def test_a_bad_launch_is_one_line_naming_the_override_and_writes_nothing(
    probe: str, expected: str, small_model_dir: Path, tmp_path: Path, capsys, monkeypatch
):
    if "wandb" in probe:
        _no_wandb()
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    message = _cli_error(["train", *overrides(small_model_dir, run, 1, 1), probe], capsys)
    assert message.startswith(f"vlthinker train: command-line override {probe!r}: ")
    assert expected in message
    assert not run.exists()  # nothing written: the corrected command runs as it is


@pytest.mark.parametrize(
    "probe",
    [
        "training.weight_decay=-1",
        "training.max_grad_norm=-1",
        "algorithm.kl_coef=-1",
        "shaping.length_slack=-1",
        "training.save_total_limit=0",
        "model.lora_alpha=0",
    ],
)
def test_out_of_range_values_are_refused(probe: str, capsys):
    key = probe.split("=", 1)[0]
    message = _cli_error(["train", probe], capsys)
    assert message.startswith(f"vlthinker train: command-line override {probe!r}: {key} must be")


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ("algorithm.estimator=g2rp0", "algorithm.estimator:"),
        ("foo.bar=1", "unknown config key 'foo'"),
        ("algorithm.estimator_options.epss=1", "has no option 'epss'"),
    ],
)
def test_an_override_error_names_the_command_line_not_the_packaged_file(
    probe: str, expected: str, capsys
):
    message = _cli_error(["train", probe], capsys)
    assert message.startswith(f"vlthinker train: command-line override {probe!r}: ")
    assert expected in message and "demo.yaml" not in message


def test_a_launch_that_fails_after_writing_removes_what_it_wrote(
    small_model_dir: Path, tmp_path: Path, capsys
):
    """Every prompt is longer than data.max_prompt_length: the run fails while building the
    trainer, after config.yaml was written; it leaves the folder as it found it."""
    fresh = tmp_path / "fresh"
    argv = ["train", *overrides(small_model_dir, fresh, 1, 1), "data.max_prompt_length=8"]
    message = _cli_error(argv, capsys)
    assert "prompt(s) are longer than data.max_prompt_length (8 tokens)" in message
    assert not fresh.exists()  # the folder it created is gone too

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("keep me\n")
    with pytest.raises(TrainDataError):
        train(demo_config(small_model_dir, mine, 1, 1, "data.max_prompt_length=8"))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md"]
    refuse_run_folder(mine)  # the corrected rerun is not refused


# ------------------------------------------------------------------ §3 plug-ins
def test_a_command_line_plugin_file_is_read_from_the_current_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "myplug.py").write_text("LOADED = True\n")
    from vlthinker.train.cli import DEMO_CONFIG, packaged_config

    config = load_config(packaged_config(DEMO_CONFIG), ["plugins=[plug/myplug.py]"])
    assert config.plugins == [str(tmp_path / "plug" / "myplug.py")]


def _console_script() -> Path:
    script = Path(sys.executable).parent / "vlthinker"
    found = script if script.is_file() else shutil.which("vlthinker")
    if not found:
        pytest.skip("the vlthinker console script is not installed")
    return Path(found)


def test_a_plugin_module_in_the_current_folder_loads_from_the_console_script(tmp_path: Path):
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "__init__.py").write_text("")
    (tmp_path / "my_plugins" / "median.py").write_text("print('median plug-in loaded')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(_console_script()), "train", "plugins=[my_plugins.median]", "training.max_steps=0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "median plug-in loaded" in done.stdout, done.stderr
    assert "No module named" not in done.stderr
    assert done.returncode == 1 and "training.max_steps must be ≥ 1" in done.stderr


# ------------------------------------------------------------------ §3 data messages
def test_the_image_too_large_message_quotes_one_limit(tmp_path: Path):
    from PIL import Image

    from vlthinker.data.records import RecordError, decode_image, probe_image

    (tmp_path / "huge.png").write_bytes(_bomb_png())
    for check in (probe_image, decode_image):
        with pytest.raises(RecordError) as caught:
            check(str(tmp_path / "huge.png"), "d.jsonl#0", "images[0]")
        text = str(caught.value)
        assert "400,000,000 pixels" in text
        assert f"over the limit of {Image.MAX_IMAGE_PIXELS:,} pixels" in text
        assert "exceeds limit" not in text and text.count("limit") == 1


def test_an_image_outside_the_data_folder_names_the_train_key(tmp_path: Path, monkeypatch):
    from vlthinker.data.readers import ALLOW_ABSOLUTE_ENV

    monkeypatch.delenv(ALLOW_ABSOLUTE_ENV, raising=False)
    path = write_records(synthetic.generate(1, tasks=["chart"], image_size=64), tmp_path / "d")
    row = json.loads(path.read_text())
    outside = tmp_path / "outside.png"
    shutil.move(path.parent / row["images"][0], outside)
    row["images"] = [str(outside)]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(TrainDataError) as caught:
        load_data(load_config(None, [f"data.train={path}", "data.tasks=[chart]"]))
    assert "data.allow_absolute_images=true" in str(caught.value)


# ------------------------------------------------------------------ §5 the run folder
def test_a_users_own_results_and_config_are_not_a_run(tmp_path: Path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "results.md").write_text("# my results\n")
    (folder / "config.yaml").write_text("lr: 3\n")
    (folder / "plots.png").write_bytes(b"mine")
    assert run_contents(folder) == []
    refuse_run_folder(folder)  # not "already holds a run"
    assert clear_run(folder) == []  # --overwrite deletes none of them
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "plots.png", "results.md"]

    # A run's own files (its config form, its step log) are a run, and --overwrite takes them.
    (folder / "metrics.jsonl").write_text('{"step": 1, "split": "train"}\n')
    assert run_contents(folder) == ["metrics.jsonl", "plots.png"]
    (folder / "results.md").write_text("Validation: 2 held-out items per task, greedy.\n")
    assert "results.md" in run_contents(folder)
    clear_run(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml"]


def test_an_empty_validation_file_is_an_error_naming_it(tmp_path: Path):
    empty = tmp_path / "val.jsonl"
    empty.write_text("")
    with pytest.raises(TrainDataError) as caught:
        load_data(load_config(None, [f"data.validation={empty}", "data.train_size=6"]))
    assert str(caught.value).startswith(f"data.validation ({empty}): no validation records")


def test_eval_on_an_empty_records_file_is_an_error(small_model_dir: Path, tmp_path: Path, capsys):
    empty = tmp_path / "records.jsonl"
    empty.write_text("")
    out = tmp_path / "eval"
    argv = ["eval", "--data", str(empty), "--out", str(out), "--model", str(small_model_dir)]
    message = _cli_error(argv, capsys)
    assert message == f"vlthinker eval: {empty}: no records to evaluate (the data is empty)"
    assert not (out / outputs.PREDICTIONS_FILE).exists()


def test_data_check_prints_each_problem_once(tmp_path: Path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text('{"task": "ocr", "question": "q"}\nnot json\n')
    assert main(["data", "check", str(path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert text.count("invalid JSON") == 1 and text.count("d.jsonl#0") == 1, text


def test_one_list_of_output_names_is_shared():
    from vlthinker.data import readers
    from vlthinker.evaluation import folder, predictions
    from vlthinker.train import run_folder

    assert readers.OUTPUT_FILES is outputs.OUTPUT_FILES
    assert run_folder.RUN_FILES is outputs.RUN_FILES
    assert predictions.PREDICTIONS_FILE == folder.PREDICTIONS_FILE == outputs.PREDICTIONS_FILE
    assert folder.SETTINGS_FILE == outputs.EVAL_SETTINGS_FILE
    written = [*outputs.RUN_FILES, *outputs.EVAL_FILES]
    for name in written:
        if name.endswith((".json", ".jsonl")):
            assert name in outputs.OUTPUT_FILES, name
    assert outputs.VALIDATION_ITEMS_FILE in outputs.OUTPUT_FILES


def test_a_run_folders_logs_are_not_read_as_data(tmp_path: Path):
    from vlthinker.data.readers import data_files

    for name in (*outputs.LOG_FILES, outputs.RESULTS_JSON, "records.jsonl"):
        (tmp_path / name).write_text("{}\n")
    assert [p.name for p in data_files(tmp_path)] == ["records.jsonl"]


# ------------------------------------------------------------------ §5 smoothed curves
def test_ema_smoothing_is_tensorboards():
    from vlthinker.train.plots import ema_smooth

    assert ema_smooth([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])  # debiased: no pull to 0
    # weight 0.6 (TensorBoard's default): 4 / (1 − 0.6²) after 0 then 10
    assert ema_smooth([0.0, 10.0], 0.6) == pytest.approx([0.0, 4.0 / 0.64])
    assert ema_smooth([1.0, math.nan, 1.0]) == pytest.approx([1.0, 1.0, 1.0])
    rng = random.Random(0)
    noisy = [0.5 + rng.uniform(-0.3, 0.3) for _ in range(200)]
    smooth = ema_smooth(noisy)

    def spread(values: list[float]) -> float:
        return sum(abs(b - a) for a, b in itertools.pairwise(values))

    assert spread(smooth) < 0.5 * spread(noisy)


def test_training_curves_are_a_faint_raw_line_under_a_smoothed_one(tmp_path: Path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vlthinker.train.plots import SMOOTH_FROM, ema_smooth, write_plots
    from vlthinker.train.run_folder import append_metrics

    rewards = [0.1 * (i % 3) for i in range(SMOOTH_FROM + 3)]
    for step, reward in enumerate(rewards, start=1):
        append_metrics(tmp_path, {"step": step, "split": "train", "math/reward": reward})
    append_metrics(tmp_path, {"step": 0, "split": "validation", "math/accuracy": 0.1})
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    write_plots(tmp_path, ["math"])
    (figure,) = figures
    panels = {axis.get_title(): axis.get_lines() for axis in figure.axes}
    faint, bold = panels["reward (weighted)"]
    assert list(faint.get_ydata()) == rewards and faint.get_alpha() < 0.5
    assert list(bold.get_ydata()) == pytest.approx(ema_smooth(rewards))
    assert bold.get_alpha() is None and bold.get_linewidth() > faint.get_linewidth()
    (validation,) = panels["validation accuracy"]  # validation is drawn as it is
    assert list(validation.get_ydata()) == [0.1]
