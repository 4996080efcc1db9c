"""Run configuration: one YAML file, dataclass-backed sections, ``key.sub=value`` overrides.

Every value is checked against its field's type when loaded; a wrong key or value fails with a
message naming the full key (``algorithm.clip_high``), never silently. :func:`load_sections` reads
any such file into any sectioned dataclass (``vlthinker train`` and ``vlthinker sft`` use it).

The training run's sections are a thin front for :class:`~vlthinker.train.trainer.G2RPOConfig`
(TRL's ``GRPOConfig`` plus the method's fields): :func:`trainer_config` turns a validated
:class:`RunConfig` into that one object, which the trainer, its reward functions and its
validation callback all read. Only the model and data settings, which are not trainer arguments,
are read from :class:`RunConfig` itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml

from vlthinker.data.records import TASKS
from vlthinker.plugins import PluginError, import_plugins, plugin_paths

if TYPE_CHECKING:
    from vlthinker.train.trainer import G2RPOConfig

SectionsT = TypeVar("SectionsT")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


@dataclass
class ModelConfig:
    path: str = "embedded:tiny_vlm"  # a local directory, or the shipped tiny checkpoint
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    attn_implementation: str | None = None  # e.g. "flash_attention_2" on GPUs
    lora_rank: int = 0  # > 0 trains a LoRA adapter through peft instead of all weights
    lora_alpha: int = 32
    freeze_vision: bool = False  # the recipe trains the vision tower (docs/method.md §8)


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
    # code does) or the content task (docs/method.md §2, "What task means in stage 2").
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
    # Online filter (docs/method.md §8): keep a prompt group only when its mean accuracy is strictly
    # inside [low, high] (the recipe: [0.01, 0.99]), generating for fresh prompts up to
    # max_resample times to refill the batch. None keeps every group.
    online_filter: list[float] | None = None
    max_resample: int = 20


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
    # Optimiser steps per rollout batch: the recipe rolls out 512 prompts and updates on 128 at a
    # time, i.e. prompts_per_step=128, updates_per_generation=4 (docs/method.md §8).
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
    # Modules or .py files imported before the config is checked (vlthinker.plugins): where a
    # user's own estimator, answer type or benchmark is registered (docs/extending.md).
    plugins: list[str] = field(default_factory=list)

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


#: A command-line override: ``"key.sub=value"`` text (the value read as YAML), or a
#: ``("key.sub", value)`` pair whose value is already read (a command-line flag's).
Override = str | tuple[str, Any]


def read_tree(
    path: str | Path | None, overrides: Sequence[Override] | None = None
) -> dict[str, Any]:
    """The YAML file's mapping of sections (empty without a file), a key given twice refused,
    with every override set on it, in order (a later one wins)."""
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
        key, value = parse_override(override) if isinstance(override, str) else override
        _set_path(tree, key, value)
    return tree


def load_sections(
    cls: type[SectionsT],
    path: str | Path | None = None,
    overrides: Sequence[Override] | None = None,
) -> SectionsT:
    """Dataclass ``cls`` (whose fields are dataclass sections) from a YAML file, or its defaults,
    plus overrides (:data:`Override`): every key and value type-checked, errors naming the key
    (prefixed with the file when one was read), a key given twice in the file refused. Range
    checks are the caller's."""
    tree = read_tree(path, overrides)
    try:
        if "plugins" in {f.name for f in dataclasses.fields(cls)}:
            plugins = _coerce(tree.get("plugins", []), list[str], "plugins")
            # File plug-ins are kept as absolute paths, so a run's saved config.yaml (read from
            # the run folder on resume) still finds them.
            tree["plugins"] = plugin_paths(plugins, Path(path).parent if path else None)
            import_plugins(tree["plugins"])
        return build_dataclass(cls, tree)
    except (ConfigError, PluginError) as error:
        source = f"{path}: " if path is not None else ""
        raise ConfigError(f"{source}{error}") from None


def flat_sections(settings: type, keys: Mapping[str, str], prefix: str) -> type:
    """A config-file form of the flat dataclass ``settings`` (a command's options): one section
    dataclass per ``section`` of ``keys`` (``{field: "section.key"}``), each field at its place
    with its type and default, so the defaults are stated once (on ``settings``)."""
    hints = typing.get_type_hints(settings)
    sections: dict[str, list[tuple[str, Any, Any]]] = {}
    for setting in dataclasses.fields(settings):
        section, key = keys[setting.name].split(".")
        default = (
            field(default_factory=setting.default_factory)
            if setting.default is dataclasses.MISSING
            else field(default=setting.default)
        )
        sections.setdefault(section, []).append((key, hints[setting.name], default))
    classes = {
        name: dataclasses.make_dataclass(f"{prefix}{name.title()}Section", specs)
        for name, specs in sections.items()
    }
    return dataclasses.make_dataclass(
        f"{prefix}Sections",
        [(name, cls, field(default_factory=cls)) for name, cls in classes.items()],
    )


def flat_settings(settings: type[SectionsT], keys: Mapping[str, str], sections: Any) -> SectionsT:
    """The flat ``settings`` read back from a :func:`flat_sections` instance."""
    values = {}
    for name, key in keys.items():
        section, sub = key.split(".")
        values[name] = getattr(getattr(sections, section), sub)
    return settings(**values)


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
    estimator_settings(config.algorithm)
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
        options[name] = _coerce(value, known[name][0], key)
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

    from vlthinker.train.rewards import effective_weights
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
        task_names=list(config.data.tasks),
        length_envelopes=length_envelopes(config),
        entropy_bands=entropy_bands(config),
        entropy_band_coef=shaping.entropy_coef if shaping.entropy else 0.0,
        entropy_estimate=shaping.entropy_estimate,
        online_filter=list(rollout.online_filter) if rollout.online_filter else None,
        max_resample=rollout.max_resample,
        task_gradient_norms=config.logging.task_gradient_norms,
        validation_steps=training.eval_steps,
        validation_batch_size=training.eval_batch_size,
        validation_temperature=training.eval_temperature,
        validation_top_p=training.eval_top_p,
        validation_seed=training.eval_seed,
        validation_samples=training.eval_samples if sampled else 1,  # greedy: one answer
        # TRL's rollout and optimisation
        max_steps=training.max_steps,
        per_device_train_batch_size=training.per_device_batch_size,
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
        vllm_gpu_memory_utilization=rollout.vllm_gpu_memory_utilization,
        learning_rate=training.learning_rate,
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
