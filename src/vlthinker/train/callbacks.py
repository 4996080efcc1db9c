"""Trainer callbacks: the metrics file and per-task validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import ProgressCallback, TrainerCallback
from transformers.integrations import TensorBoardCallback

from vlthinker.train.run_folder import (
    append_metrics,
    append_validation_items,
    read_metrics,
    read_validation_items,
)

if TYPE_CHECKING:
    from vlthinker.data import PromptConfig, Record


class MetricsFileCallback(TrainerCallback):
    """Every training log line (TRL's metrics and ours, per task) → ``metrics.jsonl``."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            entry = {"step": state.global_step, "split": "train"}
            entry.update({k: v for k, v in logs.items() if isinstance(v, int | float)})
            if "train_loss" in entry:  # the summary: the mean over every step, resumed or not
                entry["train_loss"] = mean_loss(state.log_history, entry["train_loss"])
            bad = [k for k, v in entry.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                entry["non_finite"] = bad
            append_metrics(self.output_dir, entry)


#: (log key, label, format) of the compact console line, in order; absent keys are left out.
COMPACT_KEYS = (
    ("loss", "loss", "{:.4f}"),
    ("reward", "reward", "{:.3f}"),
    ("rewards/accuracy/mean", "acc", "{:.3f}"),
    ("rewards/format/mean", "format", "{:.3f}"),
    ("completions/mean_length", "len", "{:.1f}"),
    ("entropy", "entropy", "{:.3f}"),
    ("grad_norm", "grad", "{:.3g}"),
    ("step_time", "s/step", "{:.2f}"),
)


def mean_loss(history: list[dict[str, Any]], fallback: Any = None) -> Any:
    """The mean training loss over every step in ``history`` (``state.log_history``, which a
    resumed run restores from its checkpoint), each logged loss weighted by the steps it covers.
    transformers' own ``train_loss`` averages only the steps this process trained."""
    total = covered = 0.0
    previous = 0
    for entry in sorted(
        (e for e in history if isinstance(e.get("loss"), int | float) and "step" in e),
        key=lambda e: e["step"],
    ):
        span = max(int(entry["step"]) - previous, 1)
        total += float(entry["loss"]) * span
        covered += span
        previous = int(entry["step"])
    return total / covered if covered else fallback


def compact_line(
    step: int, max_steps: int, logs: dict[str, Any], history: list[dict[str, Any]] | None = None
) -> str:
    """One console line for a training log entry (the full entry goes to ``metrics.jsonl``);
    the end-of-training summary's mean loss is :func:`mean_loss` over ``history``."""
    if "train_runtime" in logs:  # the summary HF Trainer logs once at the end
        loss = mean_loss(history or [], logs.get("train_loss"))
        return f"step {step}/{max_steps} done in {logs['train_runtime']:.1f} s" + (
            f" · mean loss {loss:.4f}" if isinstance(loss, int | float) else ""
        )
    parts = [f"step {step}/{max_steps}"]
    for key, label, form in COMPACT_KEYS:
        value = logs.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{label} {form.format(value)}")
    return " · ".join(parts)


def _postfix(logs: dict[str, Any]) -> str | None:
    reward, seconds = logs.get("reward"), logs.get("step_time")
    if not isinstance(reward, int | float) or not isinstance(seconds, int | float):
        return None
    return f"reward {reward:.3f}, {seconds:.2f} s/step"


class CompactProgressCallback(ProgressCallback):
    """The progress bar (with the step time and mean reward) and one short line per logging
    step, in place of the full dict transformers prints."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (logs and state.is_world_process_zero):
            return
        line = compact_line(state.global_step, state.max_steps, logs, state.log_history)
        if self.training_bar is None:
            print(line, flush=True)
            return
        postfix = _postfix(logs)
        if postfix:
            self.training_bar.set_postfix_str(postfix, refresh=False)
        self.training_bar.write(line)


class CompactLogCallback(TrainerCallback):
    """Without a progress bar: one short line per logging step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            print(
                compact_line(state.global_step, state.max_steps, logs, state.log_history),
                flush=True,
            )


class ValidationCallback(TrainerCallback):
    """Per-task validation before training, every ``args.validation_steps`` steps and at the end.

    Its settings are the trainer's arguments (a :class:`~vlthinker.train.trainer.G2RPOConfig`):
    ``validation_*``, ``max_completion_length``, ``output_dir``, ``report_to`` (TensorBoard) and
    ``disable_tqdm``. Scores with ``vlthinker.evaluation`` — the same code `vlthinker eval` uses.
    Sampled validation (``validation_temperature`` > 0) draws from its own generator reseeded with
    ``validation_seed`` at every pass: each pass sees the same random stream (so passes differ by
    the model, not by the draws — item-level sampling noise remains) and the training run's random
    state is left as it was (so resume stays exact).

    Each item is answered ``validation_samples`` times and scored by the mean, so a task's
    accuracy is its items' expected accuracy under the sampling policy. Every pass's per-item
    scores go to ``validation_items.jsonl``, from which the final table's paired bands are
    computed.
    """

    def __init__(
        self, *, processor: Any, records: list[Record], prompt_config: PromptConfig, args: Any
    ) -> None:
        self.processor = processor
        # Grouped by task (stable), so a generation batch holds answers of one length range and
        # stops at its own longest instead of running every batch to the reasoning tasks' length.
        self.records = sorted(records, key=lambda record: record.task)
        self.prompt_config = prompt_config
        self.args = args
        self.output_dir = Path(args.output_dir)
        self._writer = None
        #: set by a resumed run: TensorBoard forgets this step and later ones of earlier files
        self.purge_step: int | None = None
        self._done: set[int] = {
            e["step"] for e in read_metrics(self.output_dir) if e.get("split") == "validation"
        }

    def _validate(self, model: Any, step: int, state) -> None:
        if step in self._done or not self.records:
            return
        from vlthinker.evaluation import evaluate_records
        from vlthinker.evaluation.table import task_means

        args = self.args
        was_training = model.training
        model.eval()
        with torch.random.fork_rng():
            torch.manual_seed(args.validation_seed)
            result = evaluate_records(
                model,
                self.processor,
                list(self.records) * args.validation_samples,
                batch_size=args.validation_batch_size,
                max_new_tokens=args.max_completion_length,
                temperature=args.validation_temperature,
                top_p=args.validation_top_p,
                prompt_config=self.prompt_config,
                progress=not args.disable_tqdm,
            )
        if was_training:
            model.train()
        self._done.add(step)
        if not state.is_world_process_zero:
            return
        items = item_means(result.predictions, len(self.records))
        entry: dict[str, Any] = {"step": step, "split": "validation"}
        for task, scores in task_means(items).items():
            for name, value in scores.items():
                entry[f"{task}/{name}"] = value
        append_metrics(self.output_dir, entry)
        append_validation_items(
            self.output_dir,
            step,
            {f"#{i}": (row["task"], row["accuracy"]) for i, row in enumerate(items)},
        )
        if "tensorboard" in args.report_to:
            self._log_tensorboard(entry, step)

    def _log_tensorboard(self, entry: dict[str, Any], step: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run drops the points the killed run logged after its checkpoint
            self._writer = SummaryWriter(
                str(self.output_dir / "tensorboard" / "validation"), purge_step=self.purge_step
            )
        for key, value in entry.items():
            if key not in ("step", "split") and isinstance(value, int | float):
                self._writer.add_scalar(f"validation/{key}", value, step)
        self._writer.flush()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        # The pass before training; a resumed run keeps its schedule (every validation_steps and
        # the end), so the step it resumes at is not validated again.
        if state.global_step == 0:
            self._validate(model, state.global_step, state)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.args.validation_steps
        if every > 0 and state.global_step % every == 0:
            self._validate(model, state.global_step, state)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._validate(model, state.global_step, state)
        if self._writer is not None:
            self._writer.close()

    def history(self, output_dir: Path) -> list[dict[str, Any]]:
        return [e for e in read_metrics(output_dir) if e.get("split") == "validation"]

    def item_scores(self, output_dir: Path) -> dict[int, dict[str, tuple[str, float]]]:
        """Per validation step, every item's ``(task, mean accuracy)``."""
        return read_validation_items(output_dir)


def item_means(predictions: list[Any], num_items: int) -> list[dict[str, Any]]:
    """Per item, the mean accuracy, format and score of its samples. Prediction ``k·n + i`` is
    sample ``k`` of item ``i`` (the records were repeated whole, in order)."""
    if len(predictions) % num_items:
        raise RuntimeError(f"{len(predictions)} predictions for {num_items} items")
    samples = len(predictions) // num_items
    rows = []
    for i in range(num_items):
        drawn = predictions[i::num_items]
        rows.append(
            {
                "task": drawn[0].task,
                **{
                    name: sum(float(getattr(p, name)) for p in drawn) / samples
                    for name in ("accuracy", "format", "score")
                },
            }
        )
    return rows


class PurgingTensorBoardCallback(TensorBoardCallback):
    """transformers' TensorBoard logger for a resumed run: its writer starts with
    ``purge_step`` (the step after the checkpoint), so TensorBoard drops what the interrupted run
    logged from that step on and keeps one point per step."""

    def __init__(self, purge_step: int, logging_dir: str | None = None) -> None:
        super().__init__()
        self.purge_step = purge_step
        if logging_dir is not None:
            self.logging_dir = logging_dir

    def _init_summary_writer(self, args, *more, **kwargs):
        if self._SummaryWriter is not None:
            self.tb_writer = self._SummaryWriter(
                log_dir=self.logging_dir, purge_step=self.purge_step
            )
