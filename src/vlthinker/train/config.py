"""Run configuration: one YAML file, dataclass-backed sections, ``key.sub=value`` overrides.

Every value is checked against its field's type when loaded; a wrong key or value fails with a
message naming the full key (``algorithm.clip_high``), never silently.  The loader itself is
:mod:`vlthinker.configuration` (``vlthinker sft`` and ``vlthinker eval`` read their files with it).

The training run's sections are a thin front for :class:`~vlthinker.train.trainer.G2RPOConfig`
(TRL's ``GRPOConfig`` plus the method's fields): :func:`trainer_config` turns a validated
:class:`RunConfig` into that one object, which the trainer, its reward functions and its
validation callback all read. Only the model and data settings, which are not trainer arguments,
are read from :class:`RunConfig` itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from vlthinker.configuration import (
    ConfigError,
    Override,
    coerce,
    load_sections,
)
from vlthinker.data.records import TASKS

if TYPE_CHECKING:
    from vlthinker.train.trainer import G2RPOConfig


@dataclass
class ModelConfig:
    path: str = "embedded:tiny_vlm"  # a local directory, or the shipped tiny checkpoint
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    attn_implementation: str | None = None  # e.g. "flash_attention_2" on GPUs
    lora_rank: int = 0  # > 0 trains a LoRA adapter through peft instead of all weights
    lora_alpha: int = 32
    # Modules trained in full beside the LoRA adapter (peft's modules_to_save), matched by the
    # end of their name: the demo trains `language_model.norm`, the gain in front of the output
    # head, which sets how sharp every next-token distribution is (README, "Two commands").
    lora_modules_to_save: list[str] = field(default_factory=list)
    freeze_vision: bool = False  # the recipe trains the vision tower (docs/method.md §8)


@dataclass
class DataConfig:
    train: str = "synthetic"  # "synthetic" or a path readable by vlthinker.data.load_records
    validation: str = "synthetic"
    train_size: int = 2048  # synthetic items drawn for training
    validation_size: int = 48  # per task, synthetic validation items
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    difficulty: float = 0.0
    # Per-task synthetic difficulty, overriding data.difficulty (the ablation spans pass rates)
    task_difficulty: dict[str, float] = field(default_factory=dict)
    image_size: int = 112
    seed: int = 0
    on_bad_record: Literal["raise", "skip"] = "raise"
    # Stage-2 key of G²RPO: the answer type (what fixes the reward's shape, as the reference
    # code does) or the content task (docs/method.md §2, "What task means in stage 2").
    stage2_key: Literal["answer_type", "task"] = "answer_type"
    # Image paths are confined to the data file's folder; true also opens absolute paths and
    # paths leaving that folder (../, symlinks).
    allow_absolute_images: bool = False
    # A prompt longer than this many tokens (its text and image tokens together) is dropped
    # before training, as the recipe's loader drops it (docs/method.md §8); null keeps them all.
    max_prompt_length: int | None = None
    # The processor resizes each image, aspect kept, to between min_pixels and max_pixels
    # pixels (docs/method.md §8); null keeps the checkpoint's own preprocessor setting.
    min_pixels: int | None = None
    max_pixels: int | None = None


@dataclass
class RolloutConfig:
    num_generations: int = 8  # G rollouts per prompt
    max_new_tokens: int = 64
    max_model_length: int | None = None  # prompt + response tokens vLLM reserves room for
    temperature: float = 1.0
    top_p: float = 1.0
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = 0.5
    # Online filter (docs/method.md §8): keep a prompt group only when its mean accuracy is strictly
    # inside [low, high] (the recipe: [0.01, 0.99]), generating for fresh prompts up to
    # max_resample times to refill the batch. None keeps every group.
    online_filter: list[float] | None = None
    max_resample: int = 20
    # TRL's correction for vLLM sampling from slightly other probabilities than the trained
    # model computes (docs/method.md §8): each response's ratio of the two is capped or masked
    # in the given mode; only with use_vllm.
    vllm_importance_sampling_correction: bool = True
    vllm_importance_sampling_mode: Literal[
        "sequence_mask", "sequence_truncate", "token_mask", "token_truncate"
    ] = "sequence_mask"
    vllm_importance_sampling_cap: float = 3.0  # TRL's vllm_importance_sampling_clip_max


def _default_reward_weights() -> list[float]:
    from vlthinker.train.rewards import default_weights  # torch: loaded when a run is built

    return default_weights()


#: ``algorithm`` keys that set the estimator option of the same name: shorthands of
#: ``algorithm.estimator_options.<name>``, with the recipe's defaults. Each reaches the estimator
#: only if it takes that option (G²RPO takes all five).
OPTION_SHORTHANDS = (
    "tie_atol",
    "per_task",
    "keep_tied_groups",
    "stage2_min_groups",
    "multi_component",
    "stage2",
)


@dataclass
class AlgorithmConfig:
    # A name registered in vlthinker.algorithms.ESTIMATORS (g2rpo, grpo, dr_grpo, rloo, or one a
    # user registered before loading the config).
    estimator: str = "g2rpo"
    # Any keyword option of the estimator by name, checked against its type (estimator_options()).
    estimator_options: dict[str, Any] = field(default_factory=dict)
    tie_atol: float = 1e-6
    per_task: bool = True  # G²RPO stage 2 on/off (the ablation)
    keep_tied_groups: bool = False  # the reference code's stage 2 (docs/method.md §2)
    # Stage 2 needs a pool (docs/method.md §2): a stage-2 key with fewer live groups than this in a
    # batch keeps its stage-1 advantages; 0 ranks every pool, however small (the reference).
    stage2_min_groups: int = 8
    # G²RPO's stage-2 rule (docs/method.md §2): "rms" rescales each task's stage-1 advantages to
    # unit RMS and keeps every sign; "reference" is the paper's rank map onto N(0, 1), which
    # re-centres a task on its median and reverses signs on imbalanced pools.
    stage2: Literal["rms", "reference"] = "rms"
    multi_component: bool = True  # rank accuracy / format / length separately (docs/method.md §2)
    # One weight per reward component (vlthinker.train.rewards.COMPONENTS): accuracy, format,
    # length, 0.8 / 0.1 / 0.1 by default (docs/method.md §4).
    reward_weights: list[float] = field(default_factory=_default_reward_weights)
    loss_aggregation: Literal["token", "seq"] = "token"
    clip_low: float = 0.2
    clip_high: float = 0.3
    dual_clip: float | None = 3.0
    kl_coef: float = 0.0
    num_iterations: int = 1  # PPO epochs per rollout batch


@dataclass
class TaskShaping:
    # <think>…</think><answer>…</answer> (true) vs a direct <answer> (false); unset: the task's
    # built-in default (vlthinker.data.prompts)
    reasoning: bool | None = None
    length: list[float] | None = None  # [a, b, c, d] trapezoid or [L_min, L_max] (tokens)
    entropy_band: list[float] | None = None  # [H_low, H_high]


@dataclass
class ShapingConfig:
    length: bool = True
    length_slack: float = 0.5  # ramp width for a [L_min, L_max] range, see length_envelope
    entropy: bool = True
    entropy_coef: float = 0.02  # β_H (docs/method.md §5)
    entropy_estimate: Literal["entropy", "neg_logp"] = "entropy"
    think_tag: str = "think"
    tasks: dict[str, TaskShaping] = field(default_factory=dict)


@dataclass
class TrainingConfig:
    output_dir: str = "runs/demo"
    max_steps: int = 30
    prompts_per_step: int = 6  # distinct prompts per optimiser step (x num_generations rollouts)
    per_device_batch_size: int = 48  # rollouts per forward/backward micro-batch
    # Score a group's rollouts with one pass over their shared prompt and image, the completions
    # on top of its cache (vlthinker.train.shared_prompt): the same log-probs and gradients, far
    # fewer tokens where prompts are long and answers short. Qwen-VL models; others fall back.
    shared_prompt_pass: bool = False
    # Shuffle each rollout batch by whole groups (TRL shuffles rows) so that a micro-batch holds
    # runs of one prompt's rollouts: with small micro-batches (the 8B recipe's 4 rows) a row
    # shuffle leaves the shared prompt pass almost nothing to share. Same rows per rollout batch;
    # which rows share an optimiser step changes.
    group_micro_batches: bool = False
    # Optimiser steps per rollout batch: the recipe rolls out 512 prompts and updates on 128 at a
    # time, i.e. prompts_per_step=128, updates_per_generation=4 (docs/method.md §8).
    updates_per_generation: int = 1
    learning_rate: float = 1e-4
    # Adam's step for model.lora_modules_to_save (null: learning_rate). Adam moves every weight
    # by about its learning rate a step, whatever the weight's size: a LoRA factor starts at 0,
    # a norm gain near 1.1, so the demo gives the gain 100× LoRA's rate (3e-2 vs 3e-4).
    modules_to_save_learning_rate: float | None = None
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    save_steps: int = 10
    save_total_limit: int | None = 2
    eval_steps: int = 10
    eval_temperature: float = 0.0  # 0 = greedy validation
    eval_seed: int = 0  # sampled validation: the same random stream at every pass
    eval_top_p: float = 1.0  # nucleus for sampled validation (the recipe: 0.95 at temperature 0.7)
    eval_batch_size: int = 48
    # Samples drawn per validation item (sampled validation): an item's score is their mean, so a
    # task's accuracy is the items' expected accuracy and its change is measured item by item.
    eval_samples: int = 4
    use_cpu: bool = False
    deepspeed: str | None = None  # path to a DeepSpeed JSON config
    fsdp: str = ""  # e.g. "full_shard auto_wrap"
    torch_threads: int | None = None


@dataclass
class LoggingConfig:
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    logging_steps: int = 1
    plots: bool = True
    progress: bool = True
    # Per step, per task: the norm of the task's share of the policy gradient and its share of
    # the total (vlthinker.train.gradient_equity); one extra backward per task, off at scale.
    task_gradient_norms: bool = False
    # Measure them on every N-th optimiser step only (steps 1, N+1, 2N+1, …): the extra backward
    # passes cost more than the step itself at the tiny scale.
    task_gradient_norms_every: int = 1


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Modules or .py files imported before the config is checked (vlthinker.plugins): where a
    # user's own estimator, answer type or benchmark is registered (docs/extending.md).
    plugins: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None = None, overrides: Sequence[Override] | None = None
) -> RunConfig:
    """The run config from a YAML file (or the defaults) plus ``key.sub=value`` overrides."""
    config = load_sections(RunConfig, path, overrides)
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    """Range checks that types alone cannot express. Each message starts with its key, which the
    raised :class:`ConfigError` also carries as ``key`` (so a caller can name where the value came
    from: a command-line override or the file)."""
    from vlthinker.train.rewards import component_names

    components = component_names()
    checks: list[tuple[bool, str]] = [
        (config.rollout.num_generations >= 2, "rollout.num_generations must be ≥ 2"),
        (config.rollout.max_new_tokens >= 1, "rollout.max_new_tokens must be ≥ 1"),
        (config.rollout.temperature > 0, "rollout.temperature must be > 0"),
        (0 < config.rollout.top_p <= 1, "rollout.top_p must be in (0, 1]"),
        (config.algorithm.clip_low >= 0, "algorithm.clip_low must be ≥ 0"),
        (config.algorithm.clip_high >= 0, "algorithm.clip_high must be ≥ 0"),
        (
            config.algorithm.dual_clip is None or config.algorithm.dual_clip > 1,
            "algorithm.dual_clip must be > 1 or null",
        ),
        (
            len(config.algorithm.reward_weights) == len(components),
            f"algorithm.reward_weights needs {len(components)} numbers ({', '.join(components)})",
        ),
        (config.algorithm.tie_atol >= 0, "algorithm.tie_atol must be ≥ 0"),
        (config.algorithm.kl_coef >= 0, "algorithm.kl_coef must be ≥ 0"),
        (config.model.lora_alpha > 0, "model.lora_alpha must be > 0"),
        (config.training.weight_decay >= 0, "training.weight_decay must be ≥ 0"),
        (config.training.max_grad_norm >= 0, "training.max_grad_norm must be ≥ 0 (0: no clip)"),
        (config.training.warmup_steps >= 0, "training.warmup_steps must be ≥ 0"),
        (
            config.training.torch_threads is None or config.training.torch_threads >= 1,
            "training.torch_threads must be ≥ 1 or null",
        ),
        (
            config.training.save_total_limit is None or config.training.save_total_limit >= 1,
            "training.save_total_limit must be ≥ 1 or null (null keeps every checkpoint)",
        ),
        (config.shaping.length_slack >= 0, "shaping.length_slack must be ≥ 0"),
        (
            config.data.max_prompt_length is None or config.data.max_prompt_length >= 1,
            "data.max_prompt_length must be ≥ 1 or null",
        ),
        (
            config.data.min_pixels is None or config.data.min_pixels >= 1,
            "data.min_pixels must be ≥ 1 or null",
        ),
        (
            config.data.max_pixels is None
            or config.data.max_pixels >= max(1, config.data.min_pixels or 1),
            "data.max_pixels must be ≥ 1 and ≥ data.min_pixels, or null",
        ),
        (
            config.rollout.vllm_importance_sampling_cap >= 1,
            "rollout.vllm_importance_sampling_cap must be ≥ 1",
        ),
        (config.training.max_steps >= 1, "training.max_steps must be ≥ 1"),
        (config.training.prompts_per_step >= 1, "training.prompts_per_step must be ≥ 1"),
        (config.training.learning_rate > 0, "training.learning_rate must be > 0"),
        (
            not config.model.lora_modules_to_save or config.model.lora_rank > 0,
            "model.lora_modules_to_save needs model.lora_rank > 0 (without LoRA all weights train)",
        ),
        (
            config.training.modules_to_save_learning_rate is None
            or (
                config.training.modules_to_save_learning_rate > 0
                and config.model.lora_modules_to_save
            ),
            "training.modules_to_save_learning_rate must be > 0, with model.lora_modules_to_save",
        ),
        (config.training.eval_temperature >= 0, "training.eval_temperature must be ≥ 0"),
        (0 < config.training.eval_top_p <= 1, "training.eval_top_p must be in (0, 1]"),
        (config.shaping.entropy_coef >= 0, "shaping.entropy_coef must be ≥ 0"),
        (config.data.train_size >= 1, "data.train_size must be ≥ 1"),
        (bool(config.data.tasks), "data.tasks must name at least one task"),
        (config.algorithm.num_iterations >= 1, "algorithm.num_iterations must be ≥ 1"),
        (config.algorithm.stage2_min_groups >= 0, "algorithm.stage2_min_groups must be ≥ 0"),
        (
            config.training.updates_per_generation >= 1,
            "training.updates_per_generation must be ≥ 1",
        ),
        (config.training.per_device_batch_size >= 1, "training.per_device_batch_size must be ≥ 1"),
        (config.training.eval_samples >= 1, "training.eval_samples must be ≥ 1"),
        (config.training.eval_batch_size >= 1, "training.eval_batch_size must be ≥ 1"),
        (config.training.save_steps >= 1, "training.save_steps must be ≥ 1"),
        (config.data.validation_size >= 0, "data.validation_size must be ≥ 0"),
        (0 <= config.data.difficulty <= 1, "data.difficulty must be in [0, 1]"),
        (
            all(0 <= v <= 1 for v in config.data.task_difficulty.values()),
            "data.task_difficulty values must be in [0, 1]",
        ),
        (
            set(config.data.task_difficulty) <= set(TASKS),
            f"data.task_difficulty names a task that is not one of {', '.join(TASKS)}",
        ),
        (config.data.image_size >= 32, "data.image_size must be ≥ 32 (pixels per side)"),
        (
            bool(config.training.output_dir.strip()),
            "training.output_dir must name a folder (empty would write into the current folder)",
        ),
        (config.training.eval_steps >= 0, "training.eval_steps must be ≥ 0 (0: start and end)"),
        (config.logging.logging_steps >= 1, "logging.logging_steps must be ≥ 1"),
        (
            config.logging.task_gradient_norms_every >= 1,
            "logging.task_gradient_norms_every must be ≥ 1",
        ),
        (config.rollout.max_resample >= 0, "rollout.max_resample must be ≥ 0"),
        (
            config.rollout.online_filter is None
            or (
                len(config.rollout.online_filter) == 2
                and 0 <= config.rollout.online_filter[0] < config.rollout.online_filter[1] <= 1
            ),
            "rollout.online_filter must be [low, high] with 0 ≤ low < high ≤ 1, or null",
        ),
    ]
    for ok, message in checks:
        if not ok:
            _fail(f"{message}; got {_value_of(config, message.split(' ', 1)[0])!r}")
    estimator_settings(config.algorithm)
    rollouts = config.training.prompts_per_step * config.rollout.num_generations
    if rollouts % config.training.per_device_batch_size:
        _fail(
            f"training.per_device_batch_size ({config.training.per_device_batch_size}) must divide "
            f"training.prompts_per_step × rollout.num_generations ({rollouts})"
        )
    context, prompt = config.rollout.max_model_length, config.data.max_prompt_length
    if (
        context is not None
        and prompt is not None
        and context < prompt + config.rollout.max_new_tokens
    ):
        _fail(
            f"rollout.max_model_length ({context}) must hold data.max_prompt_length ({prompt}) "
            f"+ rollout.max_new_tokens ({config.rollout.max_new_tokens})"
        )
    for task, shaping in config.shaping.tasks.items():
        if shaping.length is not None:
            points = shaping.length
            if len(points) not in (2, 4) or any(b < a for a, b in itertools.pairwise(points)):
                _fail(
                    f"shaping.tasks.{task}.length must be [L_min, L_max] or [a, b, c, d], "
                    f"non-decreasing; got {points}"
                )
        if shaping.entropy_band is not None:
            band = shaping.entropy_band
            if len(band) != 2 or band[0] > band[1] or band[0] < 0:
                _fail(
                    f"shaping.tasks.{task}.entropy_band must be [H_low, H_high] with "
                    f"0 ≤ H_low ≤ H_high; got {band}"
                )


def _value_of(config: RunConfig, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


def _fail(message: str) -> typing.NoReturn:
    """Raise a :class:`ConfigError` whose ``key`` is the message's first word."""
    error = ConfigError(message)
    error.key = message.split(" ", 1)[0].rstrip(":")  # type: ignore[attr-defined]
    raise error


#: ``logging.report_to`` names and the module each needs (transformers' integrations).
_REPORTERS = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "trackio": "trackio",
    "swanlab": "swanlab",
    "dvclive": "dvclive",
    "neptune": "neptune",
    "codecarbon": "codecarbon",
    "azure_ml": "azureml",
    "dagshub": "dagshub",
    "flyte": "flytekit",
}


def check_environment(config: RunConfig) -> None:
    """What the config needs from the machine, checked before a run writes anything: every
    ``logging.report_to`` logger installed, the ``training.deepspeed`` file present."""
    import importlib.util

    for name in config.logging.report_to:
        if name in ("none", "all"):
            continue
        if name not in _REPORTERS:
            _fail(f"logging.report_to: unknown logger {name!r}; known: {', '.join(_REPORTERS)}")
        if importlib.util.find_spec(_REPORTERS[name]) is None:
            _fail(
                f"logging.report_to: {name!r} is not installed (pip install "
                f"{_REPORTERS[name]}), or leave it out of the list"
            )
    deepspeed = config.training.deepspeed
    if deepspeed and not Path(deepspeed).expanduser().is_file():
        _fail(f"training.deepspeed: {deepspeed} is not a file (a DeepSpeed JSON config)")


def dump_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


# ------------------------------------------------------------------ estimator and its options
def estimator_settings(algorithm: AlgorithmConfig) -> dict[str, Any]:
    """The options the configured estimator is called with, checked against the ones it declares
    (:func:`vlthinker.algorithms.estimator_options`: its typed keyword parameters).

    Rules: ``algorithm.estimator`` must be registered; each :data:`OPTION_SHORTHANDS` key reaches
    the estimator when it takes that option; ``algorithm.estimator_options`` may set any other of
    its options, each coerced to the option's type; an estimator with a ``gate_component`` option
    gets the reward's gate column unless the config sets it. A shorthand set through
    ``estimator_options`` is refused, so every option has exactly one key.
    """
    from vlthinker.algorithms import estimator_options
    from vlthinker.registry import UnknownNameError
    from vlthinker.train.rewards import GATE

    try:
        known = estimator_options(algorithm.estimator)
    except UnknownNameError as error:
        _fail(f"algorithm.estimator: {error}")
    options = {name: getattr(algorithm, name) for name in OPTION_SHORTHANDS if name in known}
    if "gate_component" in known:
        options["gate_component"] = GATE
    for name, value in algorithm.estimator_options.items():
        key = f"algorithm.estimator_options.{name}"
        if name in OPTION_SHORTHANDS:
            _fail(f"{key}: set it as algorithm.{name}")
        if name not in known:
            own = sorted(set(known) - set(OPTION_SHORTHANDS))
            shorthands = [f"algorithm.{n}" for n in OPTION_SHORTHANDS if n in known]
            _fail(
                f"{key}: advantage estimator {algorithm.estimator!r} has no option {name!r}; "
                f"its options here: {', '.join(own) or 'none'}"
                + (f" (and {', '.join(shorthands)})" if shorthands else "")
            )
        options[name] = coerce(value, known[name][0], key)
    return options


# ------------------------------------------------------------------ the trainer's arguments
def length_envelopes(config: RunConfig) -> list[list[float]] | None:
    """Per task of ``data.tasks``, its trapezoid ``[a, b, c, d]`` (tokens): ``shaping.tasks.<t>.
    length`` as given, or a ``[L_min, L_max]`` range widened by ``shaping.length_slack``; a task
    without one scores 1 at any length. None when ``shaping.length`` is off."""
    from vlthinker.algorithms import length_envelope

    if not config.shaping.length:
        return None
    envelopes = []
    for points in _per_task(config, "length"):
        if points is None:
            envelopes.append([0.0, 0.0, math.inf, math.inf])
        elif len(points) == 2:
            slack = config.shaping.length_slack
            envelopes.append(list(length_envelope(points[0], points[1], slack)))
        else:
            envelopes.append(list(points))
    return envelopes


def entropy_bands(config: RunConfig) -> list[list[float]] | None:
    """Per task of ``data.tasks``, its entropy band ``[H_low, H_high]`` (no band: ``[0, inf]``);
    None when ``shaping.entropy`` is off."""
    if not config.shaping.entropy:
        return None
    return [list(band) if band else [0.0, math.inf] for band in _per_task(config, "entropy_band")]


def _per_task(config: RunConfig, setting: str) -> list[Any]:
    """``shaping.tasks.<task>.<setting>`` for every task of ``data.tasks`` (None where unset)."""
    return [
        getattr(config.shaping.tasks[task], setting) if task in config.shaping.tasks else None
        for task in config.data.tasks
    ]


def trainer_config(
    config: RunConfig,
    output_dir: str | Path,
    *,
    bad_words_ids: list[list[int]] | None = None,
    world_size: int | None = None,
) -> G2RPOConfig:
    """The one :class:`~vlthinker.train.trainer.G2RPOConfig` of a run: every trainer argument of
    the ``rollout``, ``algorithm``, ``shaping``, ``training`` and ``logging`` sections.

    ``output_dir`` is the run folder (a resumed run's own); ``bad_words_ids`` are token ids
    generation must never produce (the vision placeholders); ``world_size`` is the number of
    processes (default: ``$WORLD_SIZE``, else 1). Raises ``ValueError`` when the rollouts of a
    step do not split evenly into the processes' micro-batches.
    """
    import torch

    from vlthinker.train.rewards import GATE, component_names, effective_weights
    from vlthinker.train.trainer import G2RPOConfig

    training, rollout, algorithm, shaping = (
        config.training,
        config.rollout,
        config.algorithm,
        config.shaping,
    )
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    per_process = training.prompts_per_step * rollout.num_generations // world
    if per_process % training.per_device_batch_size:
        raise ValueError(
            f"training.per_device_batch_size ({training.per_device_batch_size}) must divide the "
            f"{per_process} rollouts each of {world} process(es) handles per step"
        )
    accumulation = per_process // training.per_device_batch_size
    sampled = training.eval_temperature > 0
    return G2RPOConfig(
        output_dir=str(output_dir),
        # the method
        estimator=algorithm.estimator,
        estimator_options=estimator_settings(algorithm),
        reward_weights=effective_weights(algorithm.reward_weights, {"length": shaping.length}),
        accuracy_reward=component_names()[GATE],
        task_names=list(config.data.tasks),
        length_envelopes=length_envelopes(config),
        entropy_bands=entropy_bands(config),
        entropy_band_coef=shaping.entropy_coef if shaping.entropy else 0.0,
        entropy_estimate=shaping.entropy_estimate,
        online_filter=list(rollout.online_filter) if rollout.online_filter else None,
        max_resample=rollout.max_resample,
        task_gradient_norms=config.logging.task_gradient_norms,
        task_gradient_norms_every=config.logging.task_gradient_norms_every,
        validation_steps=training.eval_steps,
        validation_batch_size=training.eval_batch_size,
        validation_temperature=training.eval_temperature,
        validation_top_p=training.eval_top_p,
        validation_seed=training.eval_seed,
        validation_samples=training.eval_samples if sampled else 1,  # greedy: one answer
        # TRL's rollout and optimisation
        max_steps=training.max_steps,
        per_device_train_batch_size=training.per_device_batch_size,
        shared_prompt_pass=training.shared_prompt_pass,
        group_micro_batches=training.group_micro_batches,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation * training.updates_per_generation,
        num_generations=rollout.num_generations,
        max_completion_length=rollout.max_new_tokens,
        vllm_max_model_length=rollout.max_model_length,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        generation_kwargs={"bad_words_ids": bad_words_ids} if bad_words_ids else None,
        use_vllm=rollout.use_vllm,
        vllm_mode=rollout.vllm_mode,
        vllm_importance_sampling_correction=rollout.vllm_importance_sampling_correction,
        vllm_importance_sampling_mode=rollout.vllm_importance_sampling_mode,
        vllm_importance_sampling_clip_max=rollout.vllm_importance_sampling_cap,
        vllm_gpu_memory_utilization=rollout.vllm_gpu_memory_utilization,
        learning_rate=training.learning_rate,
        modules_to_save_learning_rate=training.modules_to_save_learning_rate,
        weight_decay=training.weight_decay,
        warmup_steps=training.warmup_steps,
        lr_scheduler_type="constant",  # the recipe: constant lr, no warm-up (docs/method.md §8)
        max_grad_norm=training.max_grad_norm,
        # token: mean over every token of the optimiser step's mini-batch — TRL's "dapo"
        # normalisation, made exact per step by G2RPOTrainer; seq: per sequence ("grpo").
        loss_type="dapo" if algorithm.loss_aggregation == "token" else "grpo",
        epsilon=algorithm.clip_low,
        epsilon_high=algorithm.clip_high,
        delta=algorithm.dual_clip,  # TRL's ratio cap = dual clip for A < 0 (see test_trl_contract)
        beta=algorithm.kl_coef,
        # The method's KL is the plain k3 estimator (docs/method.md §3); TRL's default weighs
        # each token's k3 by the ratio (same value on-policy, a different gradient).
        use_bias_correction_kl=False,
        num_iterations=algorithm.num_iterations,
        seed=training.seed,  # also seeds the online filter's fresh prompts
        data_seed=training.seed,
        bf16=training.bf16,
        gradient_checkpointing=training.gradient_checkpointing,
        use_cpu=training.use_cpu or not torch.cuda.is_available(),
        deepspeed=training.deepspeed,
        fsdp=training.fsdp,
        save_strategy="steps",
        save_steps=training.save_steps,
        save_total_limit=training.save_total_limit,
        logging_steps=config.logging.logging_steps,
        report_to=config.logging.report_to,
        disable_tqdm=not config.logging.progress,
        log_completions=False,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        eval_strategy="no",  # validation is ValidationCallback's, on validation_* above
    )
