"""`vlthinker eval` never mixes predictions made with other settings or by two live processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlthinker.evaluation import DataSpec, read_predictions, run_eval
from vlthinker.evaluation.folder import LOCK_FILE, SETTINGS_FILE, FolderLockedError, folder_lock

ROWS = [
    {"id": f"q{i}", "task": "math", "answer_type": "numeric", "question": "2+2?", "answer": "4"}
    for i in range(3)
]


class Answers:
    """A generator: always the same answer; counts the prompts it was asked."""

    def __init__(self, answer: str = "4") -> None:
        self.answer = answer
        self.items = 0

    def __call__(self, records):
        self.items += len(records)
        return [f"<think>x</think><answer>{self.answer}</answer>" for _ in records]


@pytest.fixture
def spec(tmp_path: Path) -> DataSpec:
    path = tmp_path / "data" / "items.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return DataSpec.parse(str(path))


def _eval(spec: DataSpec, out: Path, generator=None, **settings):
    return run_eval(
        [spec], out_dir=out, generator=generator or Answers(), progress=False, **settings
    )


def test_a_rerun_with_other_generation_settings_is_refused(spec, tmp_path: Path):
    out = tmp_path / "out"
    _eval(spec, out, model_path="ckpt-a", temperature=0.0, max_new_tokens=64)
    key = json.loads((out / SETTINGS_FILE).read_text())
    assert key["model"] == "ckpt-a" and key["temperature"] == 0.0 and key["max_new_tokens"] == 64
    before = (out / "predictions.jsonl").read_text()
    for changed in (
        {"model_path": "ckpt-a", "temperature": 0.7, "max_new_tokens": 64},
        {"model_path": "ckpt-a", "temperature": 0.0, "max_new_tokens": 128},
        {"model_path": "ckpt-b", "temperature": 0.0, "max_new_tokens": 64},
        {"model_path": "ckpt-a", "temperature": 0.0, "max_new_tokens": 64, "top_p": 0.9},
    ):
        generator = Answers("5")
        with pytest.raises(ValueError, match="other settings") as caught:
            _eval(spec, out, generator, **changed)
        assert generator.items == 0
        assert "--out" in str(caught.value)
    assert "--temperature: 0.0 there, 0.7 now" in _refusal(spec, out, temperature=0.7)
    assert (out / "predictions.jsonl").read_text() == before
    # the same settings resume; no --model re-renders the table with the stored model
    again = Answers()
    result = _eval(spec, out, again, model_path="ckpt-a", temperature=0.0, max_new_tokens=64)
    assert again.items == 0 and result.summary["model"] == "ckpt-a"
    result = _eval(spec, out, again, temperature=0.0, max_new_tokens=64)
    assert result.summary["model"] == "ckpt-a"


def _refusal(spec: DataSpec, out: Path, **changed) -> str:
    settings = {"model_path": "ckpt-a", "temperature": 0.0, "max_new_tokens": 64, **changed}
    with pytest.raises(ValueError) as caught:
        _eval(spec, out, **settings)
    return str(caught.value)


def test_a_checkpoint_rewritten_in_place_is_another_model(spec, tmp_path: Path):
    model = tmp_path / "ckpt"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"one")
    out = tmp_path / "out"
    _eval(spec, out, model_path=model)
    (model / "model.safetensors").write_bytes(b"retrained")
    with pytest.raises(ValueError, match="weight files"):
        _eval(spec, out, model_path=model)


def test_a_folder_from_before_the_key_is_checked_against_its_results(spec, tmp_path: Path):
    out = tmp_path / "out"
    _eval(spec, out, model_path="ckpt-a", temperature=0.0)
    (out / SETTINGS_FILE).unlink()  # as written before the key existed
    with pytest.raises(ValueError, match="temperature"):
        _eval(spec, out, model_path="ckpt-a", temperature=1.0)


def test_a_second_live_process_is_refused_and_a_stale_lock_taken_over(spec, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out):
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid()
        # another process holding the lock: this one is refused before generating anything
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            (out / LOCK_FILE).write_text(json.dumps({**holder, "pid": sleeper.pid}))
            generator = Answers()
            with pytest.raises(FolderLockedError, match=f"pid {sleeper.pid}"):
                _eval(spec, out, generator)
            assert generator.items == 0 and not (out / "predictions.jsonl").exists()
        finally:
            sleeper.kill()
            sleeper.wait()
    # the lock file of a process that is gone (left behind by kill -9) is taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (out / LOCK_FILE).write_text(json.dumps({**holder, "pid": int(dead.stdout)}))
    _eval(spec, out)
    assert len(read_predictions(out / "predictions.jsonl")) == 3
    assert not (out / LOCK_FILE).exists()  # released at the end


def test_eval_command_messages_for_bad_settings(spec, tmp_path: Path, capsys):
    from vlthinker.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        main(["eval", "--data", str(spec.path), "--out", str(out), "--top-p", "5"])
    assert "--top-p must be in (0, 1]" in str(caught.value.code)
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "eval",
                "--model",
                "m",
                "--data",
                str(spec.path),
                "--out",
                str(out),
                "--backend",
                "vllm",
                "--no-progress",
            ]
        )
    message = str(caught.value.code)
    assert message.startswith("vlthinker eval: --backend vllm needs")
    assert "GPU" in message or "not installed" in message
