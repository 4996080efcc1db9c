"""The TRL drop-in: ``from vlthinker import G2RPOConfig, G2RPOTrainer`` in a plain TRL script.

Each example in examples/ runs here (two steps, a tiny model, no download); the columns the
trainer derives from a dataset with only a ``task`` column are checked on their own."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["multitask_text.py", "vlm.py"])
def test_example_trains_two_steps_with_per_task_metrics_and_the_filter(
    script, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path / "out")])
    trainer = runpy.run_path(str(EXAMPLES / script), run_name="__main__")["trainer"]
    assert trainer.state.global_step == 2
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == 2
    tasks = sorted(set(trainer.train_dataset["task"]))
    assert trainer.args.task_names == tasks and len(tasks) == 2
    for entry in steps:
        assert entry["filter/resampled_rollouts"] > 0  # the filter ran and drew fresh prompts
        for task in tasks:
            assert f"{task}/filter_dropped_share" in entry
        # the per-task reward metrics, named after the task column and the reward functions
        assert any(f"{task}/reward" in entry for task in tasks)
        assert any(f"{task}/{trainer.reward_func_names[0]}" in entry for task in tasks)


def test_the_trainer_derives_task_stage2_and_record_columns():
    from datasets import Dataset

    from vlthinker.train.trainer import G2RPOConfig, prompt_hash, with_method_columns

    args = G2RPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to=[])
    train = Dataset.from_dict(
        {
            "prompt": ["a", "b", "a", "c"],
            "task": ["ocr", "math", "ocr", "math"],
            "stage2_key": ["x", None, "y", None],
        }
    )
    evaluation = Dataset.from_dict({"prompt": ["d"], "task": ["math"], "id": [7]})
    train, evaluation = with_method_columns(args, train, evaluation)
    assert args.task_names == ["math", "ocr"]  # sorted
    assert list(train["task_index"]) == [1, 0, 1, 0]
    # the stage-2 key: the stage2_key column where set, else the task
    assert list(train["stage2_index"]) == [1, 0, 2, 0]  # sorted: math, x, y
    assert list(evaluation["stage2_index"]) == [0]
    digest = prompt_hash("a")
    assert list(train["record_id"]) == [digest, prompt_hash("b"), f"{digest}#1", prompt_hash("c")]
    assert list(evaluation["record_id"]) == ["7"]
    # given task names are kept; a task outside them is refused
    args = G2RPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to=[])
    args.task_names = ["ocr"]
    with pytest.raises(ValueError, match="math"):
        with_method_columns(args, Dataset.from_dict({"prompt": ["a"], "task": ["math"]}))


def test_accuracy_reward_names_the_gate_column_by_name_or_index():
    from vlthinker.train.trainer import accuracy_column

    names = ["fmt", "correct"]
    assert accuracy_column(0, names) == 0
    assert accuracy_column("correct", names) == 1
    assert accuracy_column("1", names) == 1
    with pytest.raises(ValueError, match="names no reward function"):
        accuracy_column("accuracy", names)
    with pytest.raises(ValueError, match="out of range"):
        accuracy_column(2, names)


def test_a_plain_trl_setup_gets_the_named_accuracy_as_the_gate(tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from vlthinker import G2RPOConfig, G2RPOTrainer
    from vlthinker.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:tiny_vlm"))
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, head_dim=8,
        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
    )  # fmt: skip

    def fmt(completions, **kwargs):
        return [0.0] * len(completions)

    def correct(completions, **kwargs):
        return [1.0] * len(completions)

    args = G2RPOConfig(
        output_dir=str(tmp_path), accuracy_reward="correct", use_cpu=True, bf16=False,
        report_to=[], per_device_train_batch_size=4, num_generations=2,
    )  # fmt: skip
    trainer = G2RPOTrainer(
        model=Qwen3ForCausalLM(config), processing_class=tokenizer, reward_funcs=[fmt, correct],
        args=args, train_dataset=Dataset.from_dict({"prompt": ["a", "b"], "task": ["t", "t"]}),
    )  # fmt: skip
    assert trainer._accuracy_column == 1
    assert trainer._estimator_options["gate_component"] == 1  # G²RPO's degenerate-group gate
    assert trainer._reward_weights() == [1.0, 1.0]
    assert trainer.args.task_names == ["t"]
    assert set(trainer.train_dataset.column_names) >= {"task_index", "stage2_index", "record_id"}
