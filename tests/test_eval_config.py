"""`vlthinker eval --config`: the same sectioned loader as training, flags over the file."""

from __future__ import annotations

import pytest

from vlthinker.evaluation.cli import EVAL_KEYS, EvalSettings, load_eval_settings


def test_file_then_flags_then_defaults(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(
        "model: {path: runs/demo/final}\n"
        "data: {specs: [synthetic, chartqa=/data/ChartQA], limit: 50}\n"
        "generation: {batch_size: 16, temperature: 0.7, top_p: 0.95}\n"
        "output: {dir: runs/eval-demo}\n"
    )
    settings = load_eval_settings(config, {"batch_size": 4, "out": "elsewhere"})
    assert settings.model == "runs/demo/final"
    assert settings.data == ["synthetic", "chartqa=/data/ChartQA"] and settings.limit == 50
    assert (settings.batch_size, settings.out) == (4, "elsewhere")  # the flags win
    assert (settings.temperature, settings.top_p) == (0.7, 0.95)  # the file's
    assert settings.max_new_tokens == EvalSettings().max_new_tokens == 1024  # the default


def test_every_setting_has_one_place_in_the_file():
    from dataclasses import fields

    assert set(EVAL_KEYS) == {f.name for f in fields(EvalSettings)}
    assert len(set(EVAL_KEYS.values())) == len(EVAL_KEYS)


def test_bad_keys_and_values_are_named(tmp_path):
    from vlthinker.train.config import ConfigError

    config = tmp_path / "eval.yaml"
    config.write_text("generation: {batch_sise: 4}\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'generation\.batch_sise'"):
        load_eval_settings(config)
    config.write_text("generation: {temperature: hot}\n")
    with pytest.raises(ConfigError, match=r"generation\.temperature: expected a number"):
        load_eval_settings(config)


def test_the_command_reads_the_file_and_needs_something_to_score(tmp_path):
    from vlthinker.cli import main

    config = tmp_path / "eval.yaml"
    config.write_text("generation: {top_p: 5}\ndata: {specs: [synthetic]}\n")
    with pytest.raises(SystemExit, match="--top-p must be in"):
        main(["eval", "--config", str(config)])
    config.write_text("generation: {backend: tpu}\n")
    with pytest.raises(SystemExit, match="nothing to score"):
        main(["eval", "--config", str(config)])
    with pytest.raises(SystemExit, match="'tpu' is not one of"):
        main(["eval", "--config", str(config), "--data", "synthetic"])
