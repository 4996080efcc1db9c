"""Run configuration: one YAML file, dataclass-backed sections, ``key.sub=value`` overrides.

Every value is checked against its field's type when loaded; a wrong key or value fails with a
message naming the full key (``algorithm.clip_high``), never silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

TASKS = ("math", "chart", "ocr", "grounding", "spatial", "vqa")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


@dataclass
class ModelConfig:
    path: str = "embedded:tiny_vlm"  # a local directory, or the shipped tiny checkpoint
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    attn_implementation: str | None = None  # e.g. "flash_attention_2" on GPUs
    lora_rank: int = 0  # > 0 trains a LoRA adapter through peft instead of all weights
    lora_alpha: int = 32
    freeze_vision: bool = False  # the recipe trains the vision tower (method.md §8)


@dataclass
class DataConfig:
    train: str = "synthetic"  # "synthetic" or a path readable by vlthinker.data.load_records
    validation: str = "synthetic"
    train_size: int = 2048  # synthetic items drawn for training
    validation_size: int = 48  # per task, synthetic validation items
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    difficulty: float = 0.0
    image_size: int = 112
    seed: int = 0
    on_bad_record: Literal["raise", "skip"] = "raise"
    # Stage-2 key of G²RPO: the answer type (what fixes the reward's shape, as the reference
    # code does) or the content task (method.md §2, "What task means in stage 2").
    stage2_key: Literal["answer_type", "task"] = "answer_type"
    # Image paths are confined to the data file's folder; true also opens absolute paths and
    # paths leaving that folder (../, symlinks).
    allow_absolute_images: bool = False


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
    # Online filter (method.md §8): keep a prompt group only when its mean accuracy is strictly
    # inside [low, high] (the recipe: [0.01, 0.99]), generating for fresh prompts up to
    # max_resample times to refill the batch. None keeps every group.
    online_filter: list[float] | None = None
    max_resample: int = 20


@dataclass
class AlgorithmConfig:
    estimator: Literal["g2rpo", "grpo", "dr_grpo", "rloo"] = "g2rpo"
    tie_atol: float = 1e-6
    per_task: bool = True  # G²RPO stage 2 on/off (the ablation)
    keep_tied_groups: bool = False  # the reference code's stage 2 (method.md §2)
    # Stage 2 needs a pool (method.md §2): a stage-2 key with fewer live groups than this in a
    # batch keeps its stage-1 advantages; 0 ranks every pool, however small (the reference).
    stage2_min_groups: int = 8
    multi_component: bool = True  # rank accuracy / format / length separately (method.md §2)
    # Reward weights for accuracy, format, length: 0.8 / 0.1 / 0.1 (method.md §4).
    reward_weights: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
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
    entropy_coef: float = 0.02  # β_H (method.md §5)
    entropy_estimate: Literal["entropy", "neg_logp"] = "entropy"
    think_tag: str = "think"
    tasks: dict[str, TaskShaping] = field(default_factory=dict)


@dataclass
class TrainingConfig:
    output_dir: str = "runs/demo"
    max_steps: int = 30
    prompts_per_step: int = 6  # distinct prompts per optimiser step (x num_generations rollouts)
    per_device_batch_size: int = 48  # rollouts per forward/backward micro-batch
    # Optimiser steps per rollout batch: the recipe rolls out 512 prompts and updates on 128 at a
    # time, i.e. prompts_per_step=128, updates_per_generation=4 (method.md §8).
    updates_per_generation: int = 1
    learning_rate: float = 1e-4
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


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ typed construction
def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked (and, for int → float, widened) against ``annotation``."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        if len(errors) == 1:  # an optional value: the one type's own message
            raise ConfigError(f"{errors[0]} (or null)")
        raise ConfigError(f"{key}: {value!r} is not a valid {_type_name(annotation)}")
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        key_type, value_type = typing.get_args(annotation)
        return {
            _coerce(k, key_type, key): _coerce(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, key)
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(annotation)}")


def build_dataclass(cls: type, values: Any, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a mapping, checking every key and value."""
    where = prefix or "the config"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"unknown config key {name!r}; valid keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {
        name: _coerce(value, hints[name], f"{prefix}.{name}" if prefix else name)
        for name, value in values.items()
    }
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"algorithm.clip_high=0.28"`` → ``("algorithm.clip_high", 0.28)`` (values read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {key}: cannot read value {raw!r}: {error}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: plain YAML
    keeps the last value silently, so a pasted-in line could override a setting unseen."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """The run config from a YAML file (or the defaults) plus ``key.sub=value`` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
        tree = loaded or {}
    for override in overrides or []:
        key, value = parse_override(override)
        _set_path(tree, key, value)
    try:
        config = build_dataclass(RunConfig, tree)
    except ConfigError as error:
        source = f"{path}: " if path is not None else ""
        raise ConfigError(f"{source}{error}") from None
    validate(config)
    return config


def validate(config: RunConfig) -> None:
    """Range checks that types alone cannot express. Each message starts with its key, which the
    raised :class:`ConfigError` also carries as ``key`` (so a caller can name where the value came
    from: a command-line override or the file)."""
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
        (len(config.algorithm.reward_weights) == 3, "algorithm.reward_weights needs 3 numbers"),
        (config.algorithm.tie_atol >= 0, "algorithm.tie_atol must be ≥ 0"),
        (config.training.max_steps >= 1, "training.max_steps must be ≥ 1"),
        (config.training.prompts_per_step >= 1, "training.prompts_per_step must be ≥ 1"),
        (config.training.learning_rate > 0, "training.learning_rate must be > 0"),
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
        (config.data.image_size >= 32, "data.image_size must be ≥ 32 (pixels per side)"),
        (
            bool(config.training.output_dir.strip()),
            "training.output_dir must name a folder (empty would write into the current folder)",
        ),
        (config.training.eval_steps >= 0, "training.eval_steps must be ≥ 0 (0: start and end)"),
        (config.logging.logging_steps >= 1, "logging.logging_steps must be ≥ 1"),
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
    rollouts = config.training.prompts_per_step * config.rollout.num_generations
    if rollouts % config.training.per_device_batch_size:
        _fail(
            f"training.per_device_batch_size ({config.training.per_device_batch_size}) must divide "
            f"training.prompts_per_step × rollout.num_generations ({rollouts})"
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
    error.key = message.split(" ", 1)[0]  # type: ignore[attr-defined]
    raise error


def dump_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
