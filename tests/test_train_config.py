"""Run configs: shipped files load, overrides apply, bad values fail naming the key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from vlthinker.algorithms import ESTIMATORS
from vlthinker.configuration import load_sections, parse_override
from vlthinker.train.config import (
    ConfigError,
    RunConfig,
    dump_config,
    load_config,
    trainer_config,
)

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
        (
            "algorithm.estimator=ppo",
            r"algorithm\.estimator: unknown advantage estimator 'ppo'; known: dr_grpo, g2rpo, grpo",
        ),
        ("algorithm.reward_weights=[1, 1]", r"reward_weights needs 3 numbers \(accuracy, format"),
        ("training.learning_rate=fast", r"training\.learning_rate: expected a number"),
        ("rollout.num_generations=1", r"rollout\.num_generations must be ≥ 2"),
        ("algorithm.dual_clip=0.5", r"algorithm\.dual_clip must be > 1"),
        ("shaping.tasks.ocr.length=[30, 10]", r"shaping\.tasks\.ocr\.length must be"),
        ("shaping.tasks.ocr.entropy_band=[0.6, 0.2]", r"shaping\.tasks\.ocr\.entropy_band"),
        ("shaping.tasks.ocr.reasoning=maybe", r"shaping\.tasks\.ocr\.reasoning: expected true"),
        ("training.eval_top_p=0", r"training\.eval_top_p must be in \(0, 1\]"),
        ("training.per_device_batch_size=7", r"training\.per_device_batch_size \(7\) must divide"),
        ("data.tasks=math", r"data\.tasks: expected a list"),
        ("model.lora_rank=0", r"model\.lora_modules_to_save needs model\.lora_rank > 0"),
        ("training.modules_to_save_learning_rate=0", r"modules_to_save_learning_rate must be > 0"),
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


# ------------------------------------------------------------------ estimator options
def test_estimator_options_are_checked_against_the_estimators_own_keywords():
    config = load_config(None, ["algorithm.estimator=grpo", "algorithm.estimator_options.eps=1"])
    assert config.algorithm.estimator_options == {"eps": 1}
    assert trainer_config(config, "/tmp/unused").estimator_options == {"eps": 1.0}  # widened
    with pytest.raises(ConfigError, match=r"estimator_options\.eps: expected a number"):
        load_config(None, ["algorithm.estimator=grpo", "algorithm.estimator_options.eps=tiny"])
    with pytest.raises(ConfigError, match=r"'g2rpo' has no option 'eps'; its options here: "):
        load_config(None, ["algorithm.estimator_options.eps=0.1"])
    # a shorthand has one key: algorithm.tie_atol, not estimator_options.tie_atol
    with pytest.raises(ConfigError, match=r"estimator_options\.tie_atol: set it as algorithm"):
        load_config(None, ["algorithm.estimator_options.tie_atol=0.1"])


def test_g2rpo_shorthands_and_the_reward_gate_reach_the_estimator():
    config = load_config(
        None,
        ["algorithm.per_task=false", "algorithm.stage2_min_groups=3", "algorithm.tie_atol=0.01"],
    )
    options = trainer_config(config, "/tmp/unused").estimator_options
    assert options == {
        "tie_atol": 0.01,
        "per_task": False,
        "keep_tied_groups": False,
        "stage2_min_groups": 3,
        "multi_component": True,
        "stage2": "rms",
        "gate_component": 0,  # the accuracy column (vlthinker.train.rewards.GATE)
    }
    gate = load_config(None, ["algorithm.estimator_options.gate_component=null"])
    assert trainer_config(gate, "/tmp/unused").estimator_options["gate_component"] is None
    # an estimator without those options gets none of them
    assert (
        trainer_config(load_config(None, ["algorithm.estimator=rloo"]), "/tmp/u").estimator_options
        == {}
    )


@pytest.fixture
def registered_estimator():
    """A user's estimator with options of its own, registered for one test."""

    def scaled(rewards, group_ids, task_ids=None, *, weights=None, scale: float = 1.0,
               centre: bool = True):  # fmt: skip
        return rewards.sum(dim=-1) * scale

    with ESTIMATORS.temporarily("scaled_test", scaled):
        yield "scaled_test"


def test_a_registered_estimators_options_are_configurable(registered_estimator):
    overrides = [f"algorithm.estimator={registered_estimator}"]
    config = load_config(None, [*overrides, "algorithm.estimator_options.scale=2"])
    args = trainer_config(config, "/tmp/unused")
    assert (args.estimator, args.estimator_options) == (registered_estimator, {"scale": 2.0})
    with pytest.raises(ConfigError, match=r"estimator_options\.centre: expected true or false"):
        load_config(None, [*overrides, "algorithm.estimator_options.centre=3"])
    with pytest.raises(ConfigError, match=r"its options here: centre, scale"):
        load_config(None, [*overrides, "algorithm.estimator_options.tie_atol_x=3"])


# ------------------------------------------------------------------ one G2RPOConfig
def test_trainer_config_carries_every_trainer_argument_of_the_sections():
    config = load_config(
        CONFIGS / "demo.yaml",
        [
            "shaping.tasks.ocr.length=[10, 20]",
            "shaping.length_slack=0.5",
            "training.eval_temperature=0",
            "training.seed=7",
            "algorithm.reward_weights=[0.6, 0.3, 0.1]",
        ],
    )
    args = trainer_config(config, "/tmp/run", world_size=1)
    tasks = config.data.tasks
    assert args.output_dir == "/tmp/run" and args.task_names == tasks
    assert args.reward_weights == [0.6, 0.3, 0.1]  # TRL's own field: its logged reward is ours
    assert args.length_envelopes[tasks.index("ocr")] == [5.0, 10.0, 20.0, 30.0]
    assert args.length_envelopes[tasks.index("math")] == [4.0, 10.0, 32.0, 48.0]
    assert args.entropy_bands[0] == [0.02, 1.5] and args.entropy_band_coef == 0.02
    assert args.online_filter == [0.01, 0.99] and args.max_resample == 1
    assert (args.seed, args.data_seed) == (7, 7)  # the filter's fresh prompts use args.seed
    assert args.validation_samples == 1  # greedy validation answers once
    assert (args.epsilon, args.epsilon_high, args.delta) == (0.2, 0.3, 3.0)
    assert args.max_completion_length == 48 and args.num_iterations == 2
    assert args.entropy_coef == 0.0  # TRL's own entropy bonus stays off
    assert args.use_bias_correction_kl is False  # the method's KL is plain k3 (§3)


def test_shaping_switches_turn_their_terms_off_in_the_trainer_config():
    config = load_config(CONFIGS / "demo.yaml", ["shaping.length=false", "shaping.entropy=false"])
    args = trainer_config(config, "/tmp/run", world_size=1)
    assert args.reward_weights == [0.8, 0.1, 0.0]  # the length component weighs nothing
    assert args.length_envelopes is None  # and scores 1 everywhere
    assert args.entropy_bands is None and args.entropy_band_coef == 0.0
    empty = load_config(None, ["shaping.tasks={}"])
    assert trainer_config(empty, "/tmp/run").length_envelopes[0] == [0.0, 0.0, math.inf, math.inf]


def test_a_config_yaml_written_before_estimator_options_existed_resumes(tmp_path):
    dump_config(load_config(CONFIGS / "demo.yaml"), tmp_path / "config.yaml")
    tree = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del tree["algorithm"]["estimator_options"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    from vlthinker.train.run import resume_config

    config = resume_config(tmp_path, ["training.max_steps=50"])
    assert config.algorithm.estimator_options == {} and config.training.max_steps == 50
    assert config.algorithm.stage2_min_groups == 8


# ------------------------------------------------------------------ the generic loader
@dataclass
class _Part:
    size: int = 1
    names: list[str] = field(default_factory=list)


@dataclass
class _Sections:
    part: _Part = field(default_factory=_Part)


def test_load_sections_reads_any_sectioned_dataclass(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("part:\n  size: 3\n")
    loaded = load_sections(_Sections, path, ["part.names=[a, b]"])
    assert (loaded.part.size, loaded.part.names) == (3, ["a", "b"])
    with pytest.raises(ConfigError, match=r"x\.yaml: part\.size: expected an integer"):
        load_sections(_Sections, path, ["part.size=big"])
    with pytest.raises(ConfigError, match=r"unknown config key 'part\.colour'"):
        load_sections(_Sections, None, ["part.colour=red"])


def test_the_config_module_loads_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import vlthinker.train.config; "
        "print('torch' in sys.modules, 'trl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
