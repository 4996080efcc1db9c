"""G²RPO on TRL: ``GRPOTrainer`` with the method's advantages and per-task entropy band, and
``G2RPOConfig``, TRL's ``GRPOConfig`` with the method's fields.

TRL computes advantages inline in ``_generate_and_score_completions`` with no hook, so the
override is narrow: the gathered per-component rewards are captured in ``_calculate_rewards``,
then the returned batch's ``advantages`` are replaced by ours, computed on the full gathered
batch (every process computes the same tensor and keeps its slice, as TRL does). The entropy band
is added to TRL's policy loss in ``_compute_loss``. ``tests/test_trl_contract.py`` fails if a
TRL upgrade moves any of the pieces relied on here.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.utils import gather, gather_object
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import nanstd

from vlthinker.algorithms import (
    compute_advantages,
    entropy_band_penalty,
    entropy_band_sides,
    entropy_band_step_penalty,
    estimator_options,
)
from vlthinker.algorithms.advantages import stage2_ran
from vlthinker.algorithms.segments import dense_ids, segment_count, segment_sum
from vlthinker.algorithms.shaping import band_violation
from vlthinker.train.filtering import concat_rows, group_rows, live_groups, take_rows
from vlthinker.train.gradient_equity import task_gradient_metrics
from vlthinker.train.run_folder import BATCHES_FILE, append_log
from vlthinker.train.shared_prompt import WholeGroupShuffle, shared_prompt_batches


@dataclass
class G2RPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` plus what G²RPO adds: the advantage estimator and its options, the
    per-task shaping, the online filter and the validation passes. ``reward_weights`` is TRL's own
    field (None: every reward function weighs 1), so TRL's logged ``reward`` is the weighted reward
    the estimator sees; ``vlthinker train`` sets it to its reward components' weights
    (:data:`vlthinker.train.rewards.COMPONENTS`). The fields that exist only in the method are
    listed in docs/trl.md."""

    estimator: str = field(
        default="g2rpo",
        metadata={"help": "Advantage estimator registered in vlthinker.algorithms.ESTIMATORS."},
    )
    estimator_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Keyword options of the estimator (see estimator_options(name))."},
    )
    reward_weights: list[float] | None = field(
        default=None,
        metadata={"help": "One weight per reward function, in order (None: all 1)."},
    )
    accuracy_reward: int | str = field(
        default=0,
        metadata={
            "help": "The reward function (name or index) whose column is the task accuracy: "
            "the online filter, the degenerate-group gate and the tie metrics read it."
        },
    )
    task_names: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Task of each task_index, for per-task metrics and per-task settings "
            "(empty: the sorted values of the dataset's task column)."
        },
    )
    length_envelopes: list[list[float]] | None = field(
        default=None,
        metadata={"help": "Per task, the length score's trapezoid [a, b, c, d]; None: all 1."},
    )
    entropy_bands: list[list[float]] | None = field(
        default=None,
        metadata={"help": "Per task, the entropy band [H_low, H_high]; None: no band penalty."},
    )
    entropy_band_coef: float = field(
        default=0.0, metadata={"help": "Weight of the entropy-band penalty (docs/method.md §5)."}
    )
    entropy_estimate: str = field(
        default="entropy",
        metadata={"help": "Per-token estimate the band reads: 'entropy' or 'neg_logp'."},
    )
    online_filter: list[float] | None = field(
        default=None,
        metadata={"help": "[low, high]: keep groups whose mean accuracy is strictly inside."},
    )
    max_resample: int = field(
        default=20, metadata={"help": "Fresh generation rounds to refill a filtered batch."}
    )
    task_gradient_norms: bool = field(
        default=False, metadata={"help": "Log each task's share of the policy gradient."}
    )
    task_gradient_norms_every: int = field(
        default=1, metadata={"help": "Measure the per-task gradient norms every N steps."}
    )
    modules_to_save_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of peft's modules_to_save (None: learning_rate)."},
    )
    shared_prompt_pass: bool = field(
        default=False,
        metadata={"help": "Score a group's rollouts with one pass over their shared prompt."},
    )
    group_micro_batches: bool = field(
        default=False,
        metadata={"help": "Shuffle rollout batches by whole groups, not rows."},
    )
    validation_steps: int = field(
        default=10, metadata={"help": "Validate every N steps (0: before and after training)."}
    )
    validation_batch_size: int = field(default=48, metadata={"help": "Validation batch size."})
    validation_temperature: float = field(
        default=0.0, metadata={"help": "Validation sampling temperature (0: greedy)."}
    )
    validation_top_p: float = field(default=1.0, metadata={"help": "Validation nucleus."})
    validation_seed: int = field(
        default=0, metadata={"help": "Seed of sampled validation, the same at every pass."}
    )
    validation_samples: int = field(
        default=1, metadata={"help": "Answers per validation item; an item scores their mean."}
    )

    def __post_init__(self) -> None:
        if self.log_completions:
            # TRL's completion table would show the advantages it computes and G2RPOTrainer
            # replaces, as if they had been trained on.
            raise ValueError("G2RPOConfig: log_completions is not supported")
        if self.entropy_estimate not in ("entropy", "neg_logp"):
            raise ValueError(
                f"G2RPOConfig: entropy_estimate must be 'entropy' or 'neg_logp', "
                f"got {self.entropy_estimate!r}"
            )
        super().__post_init__()


MODULES_TO_SAVE = ".modules_to_save."  # peft's name for a module trained beside an adapter
# Keys G2RPOTrainer adds to TRL's batches for the entropy band over an optimiser step: per rollout
# its summed entropy estimate at sampling time; per micro-batch the step's band sides, per-task
# token counts and hinge value (docs/method.md §5).
SCORING_ENTROPY = "scoring_entropy_sum"
BAND_SIDES = "entropy_band_sides"
BAND_TOKENS = "entropy_band_tokens"
BAND_PENALTY = "entropy_band_step_penalty"
# The batch keys TRL's loss passes to its scoring forward, besides ids and masks.
SCORING_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


def move_to_own_learning_rate(
    optimizer: torch.optim.Optimizer, selected: set[int], learning_rate: float
) -> None:
    """Move the parameters whose ``id`` is in ``selected`` out of their param groups into copies
    of those groups (same weight decay, betas, …) at ``learning_rate``. Call before the first
    step: the optimiser holds no state yet, so nothing else needs to follow the move."""
    moved_groups = []
    for group in optimizer.param_groups:
        moved = [p for p in group["params"] if id(p) in selected]
        if moved:
            group["params"] = [p for p in group["params"] if id(p) not in selected]
            moved_groups.append({**group, "params": moved, "lr": learning_rate})
    optimizer.param_groups = [g for g in optimizer.param_groups if g["params"]]
    for group in moved_groups:
        optimizer.add_param_group(group)


def minibatch_token_normalizers(
    chunk_tokens: torch.Tensor, accumulation: int, updates_per_generation: int
) -> torch.Tensor:
    """Token-mean loss over the mini-batch (docs/method.md §3, §8), whatever the micro-batching.

    ``chunk_tokens`` holds the completion-token count of each of a rollout batch's
    ``accumulation × updates_per_generation`` micro-batches, summed over processes, in the order
    they are trained; one optimiser step takes ``accumulation`` consecutive micro-batches. Returns
    the ``num_items_in_batch`` each micro-batch must carry so that TRL's ``dapo`` normalisation
    (``num_items / processes × accumulation / steps_per_generation``) divides every micro-batch of
    a step by that step's own token count: its loss is then exactly the mean over every token of
    the mini-batch, with several updates per rollout batch as with one.
    """
    windows = chunk_tokens.reshape(updates_per_generation, accumulation).sum(dim=1)
    return (windows * updates_per_generation).repeat_interleave(accumulation)


def sign_error_shares(
    accuracy: torch.Tensor, advantages: torch.Tensor, task_ids: torch.Tensor, num_tasks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per task, the share of wrong answers (accuracy 0) given a positive advantage and of right
    answers (accuracy 1) given a negative one: how often the update pushes against the task."""
    wrong, right = accuracy <= 0.0, accuracy >= 1.0
    wrong_up = per_task_means((advantages[wrong] > 0).to(torch.float64), task_ids[wrong], num_tasks)
    right_down = per_task_means(
        (advantages[right] < 0).to(torch.float64), task_ids[right], num_tasks
    )
    return wrong_up, right_down


def layout_group_ids(total: int, num_generations: int) -> torch.Tensor:
    """Prompt group of every gathered rollout: TRL's sampler puts each prompt's G rollouts side
    by side and processes hold contiguous slices, so rollout i belongs to group ``i // G``."""
    if total % num_generations:
        raise RuntimeError(f"{total} rollouts do not split into groups of {num_generations}")
    return torch.arange(total // num_generations).repeat_interleave(num_generations)


def batch_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    stage2_ids: torch.Tensor,
    *,
    estimator: str,
    weights: Sequence[float],
    options: Mapping[str, Any],
) -> torch.Tensor:
    """Advantages of the whole gathered batch from estimator ``estimator`` with its ``options``.

    Every estimator receives the ``[N, K]`` reward components and the weights: multi-component
    G²RPO ranks them separately inside each group (docs/method.md §2), the others sum them first.
    """
    # float64 weights from the Python numbers (TRL's own reward_weights tensor is float32).
    weight = torch.tensor(list(weights), dtype=rewards.dtype)
    rewards = torch.nan_to_num(rewards, nan=0.0)  # an unscorable completion earns nothing
    return compute_advantages(estimator, rewards, group_ids, stage2_ids, weights=weight, **options)


def per_task_means(values: torch.Tensor, task_ids: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Mean of ``values`` per task index (NaN for a task absent from the batch)."""
    counts = segment_count(task_ids, num_tasks).to(values.dtype)
    sums = segment_sum(values, task_ids, num_tasks)
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, torch.nan))


def tied_groups(accuracy: torch.Tensor, group_ids: torch.Tensor, atol: float) -> torch.Tensor:
    """Per prompt group (``0..max(group_ids)``), whether its raw accuracy is all tied."""
    num_groups = int(group_ids.max()) + 1
    lowest = torch.full((num_groups,), -torch.inf, dtype=accuracy.dtype)
    highest = torch.full((num_groups,), torch.inf, dtype=accuracy.dtype)
    spread = lowest.scatter_reduce(0, group_ids, accuracy, "amax") - highest.scatter_reduce(
        0, group_ids, accuracy, "amin"
    )
    return spread <= atol


def tied_group_share(
    accuracy: torch.Tensor, group_ids: torch.Tensor, task_ids: torch.Tensor, num_tasks: int, atol
) -> torch.Tensor:
    """Per task, the share of prompt groups whose raw accuracy is all tied (no task signal)."""
    tied = tied_groups(accuracy, group_ids, atol)
    group_task = torch.zeros(tied.numel(), dtype=torch.int64).scatter(0, group_ids, task_ids)
    return per_task_means(tied.to(torch.float32), group_task, num_tasks)


def live_advantage_scale(
    advantages: torch.Tensor, live: torch.Tensor, task_ids: torch.Tensor, num_tasks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per task, the mean |A| and the root mean square of A over its live rollouts (those of
    groups whose accuracy varies): how large an update each task gets per rollout that carries a
    signal, the equity G²RPO's stage 2 is for (NaN for a task with no live rollout)."""
    values = advantages[live]
    tasks = task_ids[live]
    absolute = per_task_means(values.abs(), tasks, num_tasks)
    return absolute, per_task_means(values.square(), tasks, num_tasks).sqrt()


@dataclass
class BatchAdvantages:
    rewards: torch.Tensor  # [N, K] gathered, float64, CPU
    group_ids: torch.Tensor  # [N]
    task_ids: torch.Tensor  # [N] content task index
    advantages: torch.Tensor  # [N] for the whole gathered batch
    local_advantages: torch.Tensor  # this process's slice
    local_task_ids: torch.Tensor
    record_ids: list[str]  # gathered, one per rollout
    stage2_ids: torch.Tensor  # [N] stage-2 key index
    trained: torch.Tensor  # [N] bool: False for the online filter's padding rows


def distributed_advantages(
    process_index: int,
    gathered_rewards: torch.Tensor,
    local_inputs: list[dict[str, Any]],
    generations: int,
    *,
    estimator: str,
    weights: Sequence[float],
    options: Mapping[str, Any],
    local_padding: torch.Tensor | None = None,
) -> BatchAdvantages:
    """Advantages computed identically on every process from the full gathered batch.

    ``gathered_rewards`` is every process's ``[n, K]`` rewards concatenated in process order (TRL
    gathers them so); the task and stage-2 ids and record ids of the local inputs are gathered
    the same way, so each process slices out exactly the advantages one process would have
    computed for its rollouts. ``estimator``, ``weights`` and ``options`` are
    :func:`batch_advantages`'. ``local_padding`` marks this process's padding rows (dropped
    groups that only keep the batch's shape, :meth:`G2RPOTrainer._fill_with_live_groups`): they
    get 0 and take no part in the computation, so they neither count toward a stage-2 pool nor
    move any trained rollout's advantage.
    """
    device = gathered_rewards.device
    local_tasks = torch.tensor([x["task_index"] for x in local_inputs], device=device)
    local_stage2 = torch.tensor([x["stage2_index"] for x in local_inputs], device=device)
    task_ids = gather(local_tasks).cpu()
    stage2_ids = gather(local_stage2).cpu()
    record_ids = gather_object([x["record_id"] for x in local_inputs])
    check_layout(record_ids, generations)
    group_ids = layout_group_ids(len(record_ids), generations)
    rewards = gathered_rewards.detach().cpu().to(torch.float64)
    trained = torch.ones(len(record_ids), dtype=torch.bool)
    if local_padding is not None:
        trained = ~gather(local_padding.to(device=device, dtype=torch.int64)).cpu().bool()
    advantages = torch.zeros(len(record_ids), dtype=rewards.dtype)
    if bool(trained.any()):
        advantages[trained] = batch_advantages(
            rewards[trained],
            group_ids[trained],
            stage2_ids[trained],
            estimator=estimator,
            weights=weights,
            options=options,
        )
    local = slice(process_index * len(local_inputs), (process_index + 1) * len(local_inputs))
    return BatchAdvantages(
        rewards,
        group_ids,
        task_ids,
        advantages,
        advantages[local],
        local_tasks.cpu(),
        record_ids,
        stage2_ids,
        trained,
    )


def check_equal_across_processes(size: int, what: str) -> None:
    """Fail loudly, on every process, when processes are about to enter a collective with
    different sizes of ``what`` (it would crash, hang or misalign rows)."""
    sizes = gather_object([size])
    if len(set(sizes)) > 1:
        raise RuntimeError(f"processes disagree on the number of {what}: {sizes}")


def check_layout(record_ids: list[str], generations: int) -> None:
    """Fail loudly if TRL ever stops putting a prompt's rollouts side by side."""
    for start in range(0, len(record_ids), generations):
        block = record_ids[start : start + generations]
        if len(set(block)) != 1:
            raise RuntimeError(
                f"rollouts {start}..{start + generations - 1} come from different prompts "
                f"({sorted(set(block))[:3]}); this TRL version no longer groups a prompt's "
                "rollouts contiguously"
            )


def reward_metric_keys(names: Sequence[str]) -> list[str]:
    """The reward metrics TRL logs at each generation call, for reward functions ``names``."""
    per_function = [f"rewards/{name}/{stat}" for name in names for stat in ("mean", "std")]
    return [*per_function, "reward", "reward_std", "frac_reward_zero_std"]


def reward_summary(
    rewards: torch.Tensor, weights: torch.Tensor, generations: int, names: Sequence[str]
) -> dict[str, float]:
    """TRL's reward metrics (:func:`reward_metric_keys`) of one batch of ``[N, K]`` rewards of
    the functions ``names``, computed as TRL computes them (NaN marks an unscored completion):
    each function's mean and std, and of the weighted reward its mean (``reward``), std
    (``reward_std``) and the share of prompt groups in which it does not vary
    (``frac_reward_zero_std``)."""
    summary: dict[str, float] = {}
    for name, column in zip(names, rewards.unbind(dim=1), strict=True):
        summary[f"rewards/{name}/mean"] = torch.nanmean(column).item()
        summary[f"rewards/{name}/std"] = nanstd(column).item()
    weighted = (rewards * weights.to(rewards.device).unsqueeze(0)).nansum(dim=1)
    weighted[torch.isnan(rewards).all(dim=1)] = torch.nan
    group_std = nanstd(weighted.view(-1, generations), dim=1)
    zero_std = torch.isclose(group_std, torch.zeros_like(group_std))
    summary["reward"] = torch.nanmean(weighted).item()
    summary["reward_std"] = nanstd(weighted).item()
    summary["frac_reward_zero_std"] = zero_std.float().mean().item()
    return summary


#: The columns the trainer reads from every row, derived from ``task`` where a dataset lacks them.
METHOD_COLUMNS = ("task_index", "stage2_index", "record_id")
DEFAULT_TASK = "default"  # the task of every row of a dataset without a ``task`` column


def prompt_hash(prompt: Any) -> str:
    """A stable id of a prompt (a string or a conversation): its JSON's SHA-1, 16 hex digits."""
    text = json.dumps(prompt, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def with_method_columns(args: G2RPOConfig, *datasets: Any) -> list[Any]:
    """``datasets`` (each a ``datasets.Dataset``, a dict of them, or None) with the columns the
    trainer reads added where missing, so that a plain TRL dataset with a ``task`` column (any
    string) trains: ``task_index`` (the task's position in ``args.task_names``, which are set to
    the sorted tasks when empty), ``stage2_index`` (the ``stage2_key`` column's value, else the
    task, by sorted position) and ``record_id`` (the ``id`` column, else a hash of the prompt;
    a repeated prompt's later rows get ``#1``, ``#2``, …). A dataset without a ``task`` column
    is one task, ``"default"``."""
    flat = [d for item in datasets for d in (item.values() if isinstance(item, dict) else [item])]
    todo = [d for d in flat if d is not None and not set(METHOD_COLUMNS) <= set(d.column_names)]
    if not todo:
        return list(datasets)
    for dataset in todo:
        if not hasattr(dataset, "add_column") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"G2RPOTrainer derives {', '.join(METHOD_COLUMNS)} from a map-style "
                f"datasets.Dataset; give a {type(dataset).__name__} those columns itself"
            )

    def column(dataset: Any, name: str, default: Any) -> list[Any]:
        if name in dataset.column_names:
            return list(dataset[name])
        return [default] * len(dataset)

    tasks = {id(d): [str(t) for t in column(d, "task", DEFAULT_TASK)] for d in todo}
    keys = {id(d): column(d, "stage2_key", None) for d in todo}
    if not args.task_names:
        args.task_names = sorted({t for values in tasks.values() for t in values})
    task_index = {task: i for i, task in enumerate(args.task_names)}
    unknown = sorted({t for values in tasks.values() for t in values} - set(task_index))
    if unknown:
        raise ValueError(f"tasks {unknown} are not in G2RPOConfig.task_names {args.task_names}")
    stage2_values = {
        id(d): [str(t if k is None else k) for t, k in zip(tasks[id(d)], keys[id(d)], strict=True)]
        for d in todo
    }
    stage2_names = sorted({v for values in stage2_values.values() for v in values})
    stage2_index = {name: i for i, name in enumerate(stage2_names)}

    def complete(dataset: Any) -> Any:
        if id(dataset) not in tasks:  # None, or a dataset that has the columns
            return dataset
        derived = {
            "task_index": [task_index[t] for t in tasks[id(dataset)]],
            "stage2_index": [stage2_index[v] for v in stage2_values[id(dataset)]],
        }
        if "id" in dataset.column_names:
            derived["record_id"] = [str(i) for i in dataset["id"]]
        else:
            seen: dict[str, int] = {}
            derived["record_id"] = []
            for prompt in dataset["prompt"]:
                digest = prompt_hash(prompt)
                count = seen[digest] = seen.get(digest, -1) + 1
                derived["record_id"].append(digest if count == 0 else f"{digest}#{count}")
        for name, values in derived.items():
            if name in dataset.column_names:
                dataset = dataset.remove_columns(name)
            dataset = dataset.add_column(name, values)
        return dataset

    return [
        type(item)({name: complete(d) for name, d in item.items()})
        if isinstance(item, dict)
        else complete(item)
        for item in datasets
    ]


def accuracy_column(accuracy_reward: int | str, names: Sequence[str]) -> int:
    """Column of the reward function ``accuracy_reward`` (a name or an index) among ``names``."""
    if isinstance(accuracy_reward, str) and not accuracy_reward.isdigit():
        if accuracy_reward not in names:
            raise ValueError(
                f"G2RPOConfig.accuracy_reward {accuracy_reward!r} names no reward function; "
                f"they are {list(names)}"
            )
        return list(names).index(accuracy_reward)
    index = int(accuracy_reward)
    if not 0 <= index < len(names):
        raise ValueError(
            f"G2RPOConfig.accuracy_reward {index} is out of range for {len(names)} reward functions"
        )
    return index


class G2RPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with G²RPO advantages and the per-task entropy band; every setting
    of the method is read from ``args``, a :class:`G2RPOConfig`. Takes ``GRPOTrainer``'s
    arguments; a dataset needs a ``task`` column, the rest is derived
    (:func:`with_method_columns`)."""

    args: G2RPOConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._gathered_rewards: torch.Tensor | None = None
        self._entropy_inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._capture_scoring = False  # keep the entropies of TRL's no-grad scoring pass
        self._scoring_pass: tuple[torch.Tensor, torch.Tensor | None] | None = None
        bound = inspect.signature(GRPOTrainer.__init__).bind(self, *args, **kwargs)
        config = bound.arguments.get("args")
        if not isinstance(config, G2RPOConfig):
            raise TypeError(f"G2RPOTrainer needs a G2RPOConfig, got {type(config).__name__}")
        train, evaluation = with_method_columns(
            config, bound.arguments.get("train_dataset"), bound.arguments.get("eval_dataset")
        )
        bound.arguments["train_dataset"], bound.arguments["eval_dataset"] = train, evaluation
        super().__init__(*bound.args[1:], **bound.kwargs)
        bands = self.args.entropy_bands
        self._entropy_bands = None if bands is None else torch.tensor(bands, dtype=torch.float32)
        if bands is not None and len(bands) != len(self.args.task_names):
            raise ValueError(
                f"G2RPOConfig.entropy_bands has {len(bands)} bands for "
                f"{len(self.args.task_names)} tasks {self.args.task_names}"
            )
        self._accuracy_column = accuracy_column(self.args.accuracy_reward, self.reward_func_names)
        self._estimator_options = dict(self.args.estimator_options)
        if "gate_component" in estimator_options(self.args.estimator):
            self._estimator_options.setdefault("gate_component", self._accuracy_column)

    def _reward_weights(self) -> list[float]:
        """``args.reward_weights``, or TRL's (all 1) where the config gives none."""
        if self.args.reward_weights is not None:
            return list(self.args.reward_weights)
        return self.reward_weights.tolist()

    # ------------------------------------------------------------------ optimiser
    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """Transformers' optimiser, with the modules trained in full beside a LoRA adapter
        (peft's ``modules_to_save``) at ``args.modules_to_save_learning_rate``."""
        optimizer = super().create_optimizer(model)
        learning_rate = self.args.modules_to_save_learning_rate
        if learning_rate is None:
            return optimizer
        named = (self.model if model is None else model).named_parameters()
        selected = {id(p) for name, p in named if MODULES_TO_SAVE in name and p.requires_grad}
        if not selected:
            raise ValueError(
                "modules_to_save_learning_rate is set but no trainable parameter belongs to "
                "peft's modules_to_save (model.lora_modules_to_save)"
            )
        move_to_own_learning_rate(optimizer, selected, learning_rate)
        return optimizer

    # ------------------------------------------------------------------ advantages
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = rewards
        return rewards

    def _rollout(self, inputs: list[dict[str, Any]]) -> tuple[dict[str, Any], torch.Tensor]:
        """TRL's generation and scoring of ``inputs``; returns its output and the local rows'
        reward components ``[n, K]``."""
        band = self._band_on() and self.model.training
        self._capture_scoring, self._scoring_pass = band, None
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self._capture_scoring = False
        rewards = self._gathered_rewards
        if rewards is None:
            raise RuntimeError("TRL did not call _calculate_rewards; the override needs updating")
        self._gathered_rewards = None
        if band:
            if output.get("old_per_token_logps") is None:
                # TRL ran no scoring pass of the policy: what was captured (if anything) was the
                # reference model's, for the KL term.
                self._scoring_pass = None
            output[SCORING_ENTROPY] = self._scoring_entropy_sums(output)
        start = self.accelerator.process_index * len(inputs)
        return output, rewards[start : start + len(inputs)]

    # ------------------------------------------------------------------ entropy band, per step
    def _band_on(self) -> bool:
        return self._entropy_bands is not None and self.args.entropy_band_coef > 0

    def _scoring_entropy_sums(self, output: dict[str, Any]) -> torch.Tensor:
        """Per rollout, its response tokens' summed entropy estimate under the policy that
        sampled it: from TRL's own no-grad scoring pass where it ran (several updates per rollout
        batch, vLLM), else from one no-grad pass here. The entropy band reads it to decide, per
        task and optimiser step, which side of the band binds (:meth:`_set_band_steps`)."""
        scored = self._scoring_pass
        self._scoring_pass = None
        if scored is None:
            with torch.no_grad():
                scored = self._score_rows(output)
        logps, entropies = scored
        estimate = entropies if self.args.entropy_estimate == "entropy" else -logps
        mask = output["completion_mask"]
        if "tool_mask" in output:
            mask = mask * output["tool_mask"]
        return (estimate * mask.to(estimate.dtype)).sum(dim=1).detach()

    def _score_rows(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs and entropies of ``batch``'s completions, called as TRL's loss
        calls its scoring (same keys), chunked at the training micro-batch size."""
        prompt_ids, completion_ids = batch["prompt_ids"], batch["completion_ids"]
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            self.model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
            completion_ids.size(1),
            batch_size=self.args.per_device_train_batch_size,
            compute_entropy=True,
            **{key: batch.get(key) for key in SCORING_KEYS},
        )
        return logps, entropies

    def _set_band_steps(self, chunks: list[dict[str, Any]]) -> None:
        """Give every buffered micro-batch its optimiser step's entropy-band sides and per-task
        token counts (:func:`~vlthinker.algorithms.entropy_band_sides`), summed over the step's
        micro-batches and every process: the band acts on each task's entropy over the step."""
        num_tasks = len(self.args.task_names)
        sums, tokens = [], []
        for chunk in chunks:
            mask = chunk["completion_mask"]
            if "tool_mask" in chunk:
                mask = mask * chunk["tool_mask"]
            count = mask.sum(dim=1).to(torch.float64)
            tasks = chunk["task_index"]
            # a padding row of the online filter has its mask zeroed: it adds nothing
            entropy = chunk[SCORING_ENTROPY].double() * (count > 0)
            sums.append(segment_sum(entropy, tasks, num_tasks))
            tokens.append(segment_sum(count, tasks, num_tasks))
        totals = self.accelerator.reduce(torch.stack([torch.stack(sums), torch.stack(tokens)]))
        accumulation = self.args.gradient_accumulation_steps
        steps = totals.reshape(2, -1, accumulation, num_tasks).sum(dim=2)
        bands = self._entropy_bands.to(steps.device)
        sides = entropy_band_sides(steps[0], steps[1], bands)
        present = (steps[1] > 0).to(steps.dtype)
        hinge = band_violation(steps[0] / steps[1].clamp(min=1), bands) * present
        for index, chunk in enumerate(chunks):
            step = index // accumulation
            chunk[BAND_SIDES] = sides[step]
            chunk[BAND_TOKENS] = steps[1, step]
            chunk[BAND_PENALTY] = self.args.entropy_band_coef * hinge[step].sum()

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        generations = self.num_generations if mode == "train" else self.num_generations_eval
        filtering = mode == "train" and self.args.online_filter is not None
        # .get: looking a key up in the defaultdict would add it (and TRL would log it as None).
        keys = reward_metric_keys(self.reward_func_names)
        logged = {key: len(self._metrics[mode].get(key, ())) for key in keys}
        output, rewards = self._rollout(inputs)
        padded = torch.zeros(len(inputs), dtype=torch.bool)
        if filtering:
            output, rewards, inputs, padded = self._fill_with_live_groups(output, rewards, inputs)

        gathered = gather(rewards)
        batch = distributed_advantages(
            self.accelerator.process_index,
            gathered,
            inputs,
            generations,
            estimator=self.args.estimator,
            weights=self._reward_weights(),
            options=self._estimator_options,
            local_padding=padded,
        )
        local_advantages = batch.local_advantages
        if mode == "train" and self.accelerator.is_main_process:
            # The prompts of each step, so a resumed run can be checked against an unbroken one.
            prompts = batch.record_ids[::generations]
            append_log(self.args.output_dir, BATCHES_FILE, self.state.global_step + 1, prompts)
        device = rewards.device
        output["advantages"] = local_advantages.to(device=device, dtype=torch.float32)
        output["task_index"] = batch.local_task_ids.to(device)

        # Metrics describe the rollouts the update trains on: padding rows (masked out of the
        # loss) are left out, and TRL's reward metrics of every generation call are replaced by
        # those of the batch as trained.
        trained = batch.trained
        self._replace_reward_metrics(
            mode, gathered[trained.to(gathered.device)], generations, logged
        )
        lengths = gather(output["completion_mask"].sum(dim=1)).cpu().to(torch.float64)
        if bool(trained.any()):
            self._log_task_metrics(
                mode,
                batch.rewards[trained],
                batch.advantages[trained],
                lengths[trained],
                batch.group_ids[trained],
                batch.task_ids[trained],
                batch.stage2_ids[trained],
            )
        return output

    def _replace_reward_metrics(
        self, mode: str, rewards: torch.Tensor, generations: int, logged: dict[str, int]
    ) -> None:
        """One value per reward metric for the trained batch (``rewards``: its gathered ``[N, K]``
        rows), in place of what TRL logged at each generation call since ``logged`` (each key's
        count before): with the online filter, those calls include dropped groups and the fresh
        rounds. A batch without a trained row logs none."""
        metrics = self._metrics[mode]
        summary = {}
        if rewards.shape[0]:
            summary = reward_summary(
                rewards, self.reward_weights, generations, self.reward_func_names
            )
        for key, count in logged.items():
            if key in metrics:
                del metrics[key][count:]
            if key in summary:
                metrics[key].append(summary[key])
            elif key in metrics and not metrics[key]:
                del metrics[key]

    # ------------------------------------------------------------------ online filter
    def _fill_with_live_groups(
        self, output: dict[str, Any], rewards: torch.Tensor, inputs: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], torch.Tensor, list[dict[str, Any]], torch.Tensor]:
        """DAPO-style dynamic sampling (docs/method.md §8): keep the groups the online filter passes
        and generate for fresh prompts, up to ``max_resample`` times, until every process has as
        many live groups as it started with. Any shortfall is filled with dropped groups whose
        completion mask is zeroed: they keep the batch's shape and take no part in the loss.

        Every process takes part in every resampling round (generation and gathers are
        collective); fresh prompts come from a generator seeded by the run seed, the step and the
        round, so a resumed run draws the same ones.
        """
        generations = self.num_generations
        low, high = self.args.online_filter
        target = len(inputs) // generations
        device = rewards.device
        if len(inputs) % generations:
            raise RuntimeError(
                f"online filtering needs whole prompt groups on each process; {len(inputs)} "
                f"rollouts do not split into groups of {generations}"
            )
        pieces = [(output, rewards, inputs)]
        accuracy = self._accuracy_column
        keeps = [live_groups(rewards[:, accuracy], generations, low, high)]
        extra_rollouts = 0
        for attempt in range(1, self.args.max_resample + 1):
            kept = sum(int(k.sum()) for k in keeps)
            seen = sum(k.numel() for k in keeps)
            # Every process must draw the same number of fresh prompts (TRL's reward gather and
            # a vLLM server slice by equal sizes), so the draw is sized from counts gathered
            # across processes: the largest shortfall over the pass rate of all processes.
            counts = gather(torch.tensor([[max(target - kept, 0), kept, seen]], device=device))
            shortfall = int(counts[:, 0].max())
            if shortfall == 0:
                break
            kept_all, seen_all = int(counts[:, 1].sum()), int(counts[:, 2].sum())
            # Ask for the shortfall divided by the pass rate seen so far (at least a quarter).
            rate = max(kept_all / seen_all, 0.25) if seen_all else 1.0
            draw = min(target, math.ceil(shortfall / rate))
            fresh = self._resample_inputs(draw, attempt)
            check_equal_across_processes(len(fresh), "fresh rollouts to generate")
            extra_output, extra_rewards = self._rollout(fresh)
            extra_rollouts += len(fresh) * self.accelerator.num_processes
            pieces.append((extra_output, extra_rewards, fresh))
            keeps.append(live_groups(extra_rewards[:, accuracy], generations, low, high))

        selected, chosen_rewards, chosen_inputs, pad_flags = [], [], [], []

        def take(piece: tuple, groups: torch.Tensor, padding: bool) -> None:
            """Append the rows of ``groups`` of one generation call; padding rows are masked."""
            batch, piece_rewards, piece_inputs = piece
            rows = group_rows(groups, generations)
            taken = take_rows(batch, rows)
            if padding:
                taken["completion_mask"] = torch.zeros_like(taken["completion_mask"])
            selected.append(taken)
            chosen_rewards.append(piece_rewards[rows.to(piece_rewards.device)])
            chosen_inputs.extend(piece_inputs[i] for i in rows.tolist())
            pad_flags.append(torch.full((rows.numel(),), padding, dtype=torch.bool))

        remaining = target
        for piece, keep in zip(pieces, keeps, strict=True):
            groups = torch.nonzero(keep, as_tuple=True)[0][:remaining]
            remaining -= groups.numel()
            if groups.numel():
                take(piece, groups, padding=False)
        if remaining:  # the bound was reached: pad with dropped groups of the first batch
            take(pieces[0], torch.nonzero(~keeps[0], as_tuple=True)[0][:remaining], padding=True)

        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        merged = concat_rows(selected, tokenizer.pad_token_id)
        merged["num_items_in_batch"] = gather(merged["completion_mask"].sum()).sum()
        self._log_filter_metrics(pieces, keeps, extra_rollouts, remaining)
        return merged, torch.cat(chosen_rewards), chosen_inputs, torch.cat(pad_flags)

    def _resample_inputs(self, groups: int, attempt: int) -> list[dict[str, Any]]:
        """``groups`` fresh prompts for this process, each repeated ``num_generations`` times.

        Drawn from the training set by a generator seeded with the run seed, the global step and
        the round: every process draws the same global sample and keeps its own slice.
        """
        world = self.accelerator.num_processes
        seed = (self.args.seed * 1_000_003 + self.state.global_step) * 101 + attempt
        generator = torch.Generator().manual_seed(seed)
        dataset = self.train_dataset
        order = torch.randperm(len(dataset), generator=generator)
        picks = order.repeat(math.ceil(groups * world / len(dataset)))[: groups * world]
        start = self.accelerator.process_index * groups
        rows = [dataset[int(i)] for i in picks[start : start + groups]]
        return [row for row in rows for _ in range(self.num_generations)]

    def _log_filter_metrics(self, pieces, keeps, extra_rollouts: int, padded_groups: int) -> None:
        """Per task, the share of examined groups the filter dropped; the cost in rollouts."""
        names = self.args.task_names
        generations = self.num_generations
        group_tasks = torch.cat(
            [torch.tensor([x["task_index"] for x in p[2][::generations]]) for p in pieces]
        )
        dropped = (~torch.cat(keeps)).to(torch.float64)
        tasks = gather(group_tasks.to(self.accelerator.device)).cpu()
        dropped = gather(dropped.to(self.accelerator.device)).cpu()
        metrics = self._metrics["train"]
        self._append_per_task(
            metrics, "filter_dropped_share", per_task_means(dropped, tasks, len(names))
        )
        metrics["filter/resampled_rollouts"].append(float(extra_rollouts))
        metrics["filter/padded_groups"].append(float(padded_groups))

    # ------------------------------------------------------------------ token-mean loss
    def _prepare_inputs(self, generation_batch):
        before = self._buffered_inputs
        whole_groups = self.args.group_micro_batches and self.model.training
        with WholeGroupShuffle(self.num_generations) if whole_groups else contextlib.nullcontext():
            inputs = super()._prepare_inputs(generation_batch)
        fresh = self.model.training and self._buffered_inputs is not before
        if fresh and self.loss_type == "dapo":
            self._set_minibatch_normalizers(self._buffered_inputs)
        if fresh and self._band_on():
            self._set_band_steps(self._buffered_inputs)
        return inputs

    def _set_minibatch_normalizers(self, chunks: list[dict[str, Any]]) -> None:
        """Give every buffered micro-batch its mini-batch's token count
        (:func:`minibatch_token_normalizers`)."""
        local = torch.stack([chunk["completion_mask"].sum() for chunk in chunks]).to(torch.float64)
        totals = self.accelerator.reduce(local, reduction="sum")
        updates = self.args.steps_per_generation // self.args.gradient_accumulation_steps
        normalizers = minibatch_token_normalizers(
            totals, self.args.gradient_accumulation_steps, updates
        )
        for chunk, value in zip(chunks, normalizers, strict=True):
            chunk["num_items_in_batch"] = value.to(chunk["completion_mask"].device)

    def _log_task_metrics(
        self, mode, rewards, advantages, lengths, group_ids, task_ids, stage2_ids
    ) -> None:
        names = self.args.task_names
        num_tasks = len(names)
        metrics = self._metrics[mode]
        columns = {name: rewards[:, i] for i, name in enumerate(self.reward_func_names)}
        # float32 weights, promoted to the rewards' float64
        columns["reward"] = (rewards * torch.tensor(self._reward_weights())).sum(dim=1)
        columns["length_tokens"] = lengths
        columns["advantage_mean"] = advantages
        for label, values in columns.items():
            self._append_per_task(metrics, label, per_task_means(values, task_ids, num_tasks))
        squares = per_task_means(advantages**2, task_ids, num_tasks)
        means = per_task_means(advantages, task_ids, num_tasks)
        stds = torch.sqrt((squares - means**2).clamp(min=0))
        atol = self.args.estimator_options.get("tie_atol", 1e-6)
        group, _ = dense_ids(group_ids)
        accuracy = rewards[:, self._accuracy_column]
        tied_rollouts = tied_groups(accuracy, group, atol)[group]
        tied = tied_group_share(accuracy, group, task_ids, num_tasks, atol)
        wrong_up, right_down = sign_error_shares(accuracy, advantages, task_ids, num_tasks)
        absolute, rms = live_advantage_scale(advantages, ~tied_rollouts, task_ids, num_tasks)
        self._append_per_task(metrics, "advantage_std", stds)
        self._append_per_task(metrics, "advantage_abs_live", absolute)
        self._append_per_task(metrics, "advantage_rms_live", rms)
        self._append_per_task(metrics, "tied_group_share", tied)
        self._append_per_task(metrics, "wrong_positive_share", wrong_up)
        self._append_per_task(metrics, "right_negative_share", right_down)
        options = self.args.estimator_options
        if self.args.estimator == "g2rpo" and options.get("per_task", True):
            ran = stage2_ran(
                group,
                stage2_ids,
                tied_rollouts,
                stage2=options.get("stage2", "rms"),
                min_groups=options.get("stage2_min_groups", 0),
            )
            live = ~tied_rollouts
            active = per_task_means(ran[live].double(), task_ids[live], num_tasks)
            self._append_per_task(metrics, "stage2_active", active)

    def _append_per_task(self, metrics: dict[str, list], label: str, values: torch.Tensor) -> None:
        """``<task>/<label>`` for every task with a value (NaN: the task was absent)."""
        for name, value in zip(self.args.task_names, values.tolist(), strict=True):
            if value == value:
                metrics[f"{name}/{label}"].append(value)

    # ------------------------------------------------------------------ entropy band
    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
        capture = self._capture_scoring and not torch.is_grad_enabled()
        if capture:  # TRL's scoring pass at generation: the band needs its entropies too
            kwargs["compute_entropy"] = True
        scored = None
        if self.args.shared_prompt_pass:
            with self.accelerator.autocast():  # as TRL's own scoring runs
                scored = shared_prompt_batches(*args, **kwargs)
        if scored is None:
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        else:
            (logps, entropies), aux = scored, None
        if kwargs.get("compute_entropy") and torch.is_grad_enabled():
            self._entropy_inputs = (logps, entropies)
        if capture and self._scoring_pass is None:  # the first: the policy's, not the KL's
            self._scoring_pass = (logps, entropies)
        return logps, entropies, aux

    def _compute_loss(self, model, inputs):
        self._entropy_inputs = None
        loss = super()._compute_loss(model, inputs)
        if self._entropy_inputs is None:
            return loss
        logps, entropies = self._entropy_inputs
        self._entropy_inputs = None
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        tasks = inputs["task_index"]
        mode = "train" if self.model.training else "eval"
        # Measured on the last micro-batch of every N-th optimiser step (one extra backward per
        # task); global_step counts finished steps, so steps 1, N+1, 2N+1, … are measured.
        if (
            self.args.task_gradient_norms
            and mode == "train"
            and self.accelerator.sync_gradients
            and self.state.global_step % self.args.task_gradient_norms_every == 0
        ):
            equity = task_gradient_metrics(self, model, logps, mask, tasks, inputs)
            for key, value in equity.items():
                self._metrics[mode][key].append(value)
        token_estimate = entropies if self.args.entropy_estimate == "entropy" else -logps
        if self._band_on():
            bands = self._entropy_bands.to(token_estimate.device)
            coef = self.args.entropy_band_coef
            if BAND_SIDES in inputs:  # training: this micro-batch's share of its step's hinge
                sides, step_tokens = inputs[BAND_SIDES], inputs[BAND_TOKENS]
                share = entropy_band_step_penalty(
                    token_estimate, mask, tasks, sides, step_tokens, bands, coef
                )
                # DDP averages the processes' gradients; their shares add up to the hinge.
                loss = loss + share * self.accelerator.num_processes
                logged = float(inputs[BAND_PENALTY])
            else:  # no step around it (evaluation): the hinge of this batch
                penalty, _info = entropy_band_penalty(token_estimate, mask, tasks, bands, coef)
                loss = loss + penalty
                logged = float(penalty.detach())
            self._metrics[mode]["entropy_band_penalty"].append(logged)
        self._log_task_loss_metrics(mode, logps.detach(), entropies.detach(), mask, tasks, inputs)
        return loss

    def _log_task_loss_metrics(self, mode, logps, entropies, mask, tasks, inputs) -> None:
        names = self.args.task_names
        weight = mask.to(logps.dtype)
        tokens = segment_sum(weight.sum(dim=1), tasks, len(names))
        entropy = segment_sum((entropies * weight).sum(dim=1), tasks, len(names))
        old = inputs.get("old_per_token_logps")
        ratio = torch.exp(logps - old) if old is not None else torch.ones_like(logps)
        advantages = inputs["advantages"][:, None]
        clipped = ((ratio < 1 - self.epsilon_low) & (advantages < 0)) | (
            (ratio > 1 + self.epsilon_high) & (advantages > 0)
        )
        clip = segment_sum((clipped.to(weight.dtype) * weight).sum(dim=1), tasks, len(names))
        present = tokens > 0
        for i, name in enumerate(names):
            if bool(present[i]):
                self._metrics[mode][f"{name}/entropy"].append(float(entropy[i] / tokens[i]))
                self._metrics[mode][f"{name}/clip_frac"].append(float(clip[i] / tokens[i]))
