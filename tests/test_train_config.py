"""Run configs: shipped files load, overrides apply, bad values fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlthinker.train.config import ConfigError, RunConfig, load_config, parse_override

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "vlthinker" / "configs"


@pytest.mark.parametrize("name", ["demo.yaml", "openvlthinker-v2-qwen3vl-8b.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name)
    assert isinstance(config, RunConfig)
    assert config.algorithm.estimator == "g2rpo"
    assert set(config.shaping.tasks) == set(config.data.tasks)


def test_paper_recipe_values():
    config = load_config(CONFIGS / "openvlthinker-v2-qwen3vl-8b.yaml")
    assert config.training.learning_rate == 2e-6
    assert (config.algorithm.clip_low, config.algorithm.clip_high) == (0.2, 0.3)
    assert config.algorithm.dual_clip == 3.0
    assert config.algorithm.kl_coef == 0.0
    assert config.rollout.num_generations == 8
    assert config.rollout.max_new_tokens == 4096
    assert config.shaping.entropy_coef == 0.02
    assert (config.training.eval_temperature, config.training.eval_top_p) == (0.7, 0.95)
    assert config.shaping.think_tag == "thinking"


def test_overrides_apply_with_yaml_types():
    config = load_config(
        CONFIGS / "demo.yaml",
        [
            "training.max_steps=3",
            "algorithm.estimator=grpo",
            "shaping.tasks.math.reasoning=false",
            "algorithm.dual_clip=null",
            "logging.report_to=[]",
        ],
    )
    assert config.training.max_steps == 3
    assert config.algorithm.estimator == "grpo"
    assert config.shaping.tasks["math"].reasoning is False
    assert config.algorithm.dual_clip is None
    assert config.logging.report_to == []


def test_int_widens_to_float_but_not_the_reverse():
    assert load_config(None, ["algorithm.clip_high=1"]).algorithm.clip_high == 1.0
    # YAML 1.1 reads 1e-4 (no dot) as text; a float field still takes it.
    assert load_config(None, ["training.learning_rate=1e-4"]).training.learning_rate == 1e-4
    with pytest.raises(ConfigError, match=r"training\.max_steps: expected an integer"):
        load_config(None, ["training.max_steps=2.5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.clip_hgih=0.3", r"unknown config key 'algorithm\.clip_hgih'"),
        ("algorithm.estimator=ppo", r"algorithm\.estimator: 'ppo' is not one of"),
        ("training.learning_rate=fast", r"training\.learning_rate: expected a number"),
        ("rollout.num_generations=1", r"rollout\.num_generations must be ≥ 2"),
        ("algorithm.dual_clip=0.5", r"algorithm\.dual_clip must be > 1"),
        ("shaping.tasks.ocr.length=[30, 10]", r"shaping\.tasks\.ocr\.length must be"),
        ("shaping.tasks.ocr.entropy_band=[0.6, 0.2]", r"shaping\.tasks\.ocr\.entropy_band"),
        ("shaping.tasks.ocr.reasoning=maybe", r"shaping\.tasks\.ocr\.reasoning: expected true"),
        ("training.eval_top_p=0", r"training\.eval_top_p must be in \(0, 1\]"),
        ("training.per_device_batch_size=7", r"training\.per_device_batch_size \(7\) must divide"),
        ("data.tasks=math", r"data\.tasks: expected a list"),
        ("training", r"must look like key\.sub=value"),
    ],
)
def test_bad_values_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "demo.yaml", [override])


def test_malformed_files_are_reported_with_their_path(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(scalar)
    wrong_section = tmp_path / "section.yaml"
    wrong_section.write_text("training: 5\n")
    with pytest.raises(ConfigError, match=r"section.yaml: training: expected a mapping"):
        load_config(wrong_section)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_parse_override_reads_values_as_yaml():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a.b=x=y") == ("a.b", "x=y")


@pytest.mark.parametrize(
    ("overrides", "caption"),
    [
        (
            ["training.eval_temperature=0", "data.validation_size=256"],
            "256 held-out items per task, greedy.",
        ),
        (
            ["training.eval_temperature=1", "training.eval_top_p=1", "training.eval_samples=1"],
            "sampled at temperature 1 (seed 0).",
        ),
        (
            ["training.eval_temperature=0.7", "training.eval_top_p=0.95", "training.eval_seed=3"],
            "sampled at temperature 0.7, top-p 0.95 (seed 3), 4 samples per item (an item "
            "scores their mean).",
        ),
    ],
)
def test_the_results_caption_says_how_validation_decoded(overrides, caption):
    from vlthinker.train.run import validation_caption

    assert validation_caption(load_config(CONFIGS / "demo.yaml", overrides)).endswith(caption)


def test_a_key_given_twice_is_an_error_naming_the_file_key_and_line(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("training:\n  learning_rate: 1.0e-5\n  seed: 3\n  learning_rate: 1.0e-3\n")
    message = r"(?s)twice\.yaml .*duplicate key 'learning_rate'.*line 4"
    with pytest.raises(ConfigError, match=message):
        load_config(twice)
    once = tmp_path / "once.yaml"  # the same key in two sections is fine
    once.write_text("training:\n  seed: 1\ndata:\n  seed: 2\n")
    config = load_config(once)
    assert (config.training.seed, config.data.seed) == (1, 2)
