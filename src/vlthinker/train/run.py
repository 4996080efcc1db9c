"""`vlthinker train`: build the data, model, rewards and trainer from a config and run it."""

from __future__ import annotations

import json
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PrinterCallback, ProgressCallback

from vlthinker.data import PromptConfig, Record, load_records, synthetic
from vlthinker.models import load_policy, resolve_model_path, vision_token_ids
from vlthinker.outputs import RESUME_CHANGES_FILE
from vlthinker.train.callbacks import (
    CompactLogCallback,
    CompactProgressCallback,
    MetricsFileCallback,
    PurgingTensorBoardCallback,
    ValidationCallback,
)
from vlthinker.train.config import (
    ConfigError,
    RunConfig,
    check_environment,
    dump_config,
    estimator_settings,
    load_config,
    trainer_config,
)
from vlthinker.train.dataset import training_rows, within_prompt_length
from vlthinker.train.plots import write_plots
from vlthinker.train.report import final_table
from vlthinker.train.rewards import RewardComponents
from vlthinker.train.run_folder import (
    BATCHES_FILE,
    CARD_FILE,
    CARD_MARKER,
    CONFIG_FILE,
    RESULTS_FILE,
    VALIDATION_ITEMS_FILE,
    Checkpoint,
    RunFolderError,
    RunLock,
    clear_run,
    is_our_card,
    latest_complete_checkpoint,
    make_writable_folder,
    read_metrics,
    reset_logs,
    run_contents,
    truncate_metrics,
)
from vlthinker.train.trainer import G2RPOConfig, G2RPOTrainer

if TYPE_CHECKING:
    from vlthinker.data.readers import LoadReport


class TrainDataError(ValueError):
    """The training or validation data cannot be used; the message names the file and cause."""


@dataclass
class RunResult:
    output_dir: Path
    validation: list[dict[str, Any]]  # one entry per validation pass (step, per-task scores)
    table: str


def prompt_config_for(config: RunConfig) -> PromptConfig:
    """Per-task prompt style from ``shaping.tasks`` (reasoning vs direct), else the defaults."""
    # A task listed only to set its length range keeps its built-in prompt style.
    reasoning = {
        task: shaping.reasoning
        for task, shaping in config.shaping.tasks.items()
        if shaping.reasoning is not None
    }
    return PromptConfig(think_tag=config.shaping.think_tag, reasoning=reasoning or None)


def load_split(config: RunConfig, split: str, report: LoadReport | None = None) -> list[Record]:
    data = config.data
    source = data.train if split == "train" else data.validation
    if source == "synthetic":
        difficulty = {task: data.task_difficulty.get(task, data.difficulty) for task in data.tasks}
        if split == "train":
            return synthetic.generate(
                data.train_size,
                seed=data.seed,
                tasks=data.tasks,
                difficulty=difficulty,
                image_size=data.image_size,
            )
        # Validation items come from a disjoint seed stream so they are held out.
        return synthetic.generate(
            data.validation_size * len(data.tasks),
            seed=data.seed + 1_000_003,
            tasks=data.tasks,
            difficulty=difficulty,
            image_size=data.image_size,
        )
    return load_records(
        source,
        on_bad_record=data.on_bad_record,
        report=report,
        # False leaves the choice to VLTHINKER_ALLOW_ABSOLUTE_IMAGES (the data layer's default).
        allow_absolute_images=data.allow_absolute_images or None,
    )


def _count(names: list[str]) -> str:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} of task {name!r}" for name, n in sorted(counts.items()))


def load_data(config: RunConfig) -> tuple[list[Record], list[Record]]:
    """The training and validation records of ``data.tasks``, read and checked before anything
    else is loaded or written. Raises :class:`TrainDataError` naming the file and the cause,
    also when no training record is left (saying how many were read and why each was dropped)."""
    from vlthinker.data.readers import LoadReport

    tasks = set(config.data.tasks)
    kept: dict[str, list[Record]] = {}
    for split in ("train", "validation"):
        source = getattr(config.data, split)
        report = LoadReport()
        try:
            records = load_split(config, split, report)
        except (OSError, ValueError) as error:  # missing file, unreadable, a bad record
            raise TrainDataError(f"data.{split} ({source}): {error}") from None
        kept[split] = [r for r in records if r.task in tasks]
        dropped = [r.task for r in records if r.task not in tasks]
        if split == "train" and not kept[split]:
            reasons = []
            if dropped:
                reasons.append(
                    f"{len(dropped)} dropped as their task is not in data.tasks "
                    f"{sorted(tasks)} ({_count(dropped)})"
                )
            if report.skipped:
                reasons.append(
                    f"{report.skipped} bad record(s) skipped (data.on_bad_record=skip); "
                    f"first: {report.problems[0]}"
                )
            raise TrainDataError(
                f"data.train ({source}): no usable training records: read {len(records)} "
                f"record(s)" + (f"; {'; '.join(reasons)}" if reasons else " (the data is empty)")
            )
        if split == "validation" and source != "synthetic" and not records:
            skipped = (
                f"; {report.skipped} bad record(s) skipped, first: {report.problems[0]}"
                if report.skipped
                else ""
            )
            raise TrainDataError(
                f"data.validation ({source}): no validation records (the data is empty"
                f"{skipped}); give records, or data.validation=synthetic"
            )
        if split == "validation" and records and not kept[split]:
            print(
                f"vlthinker train: note: data.validation ({source}) has no record of data.tasks "
                f"({_count(dropped)}): no validation passes",
                flush=True,
            )
    return kept["train"], kept["validation"]


def run_arguments(config: RunConfig, output_dir: Path, processor: Any) -> G2RPOConfig:
    """The run's :class:`G2RPOConfig` (:func:`~vlthinker.train.config.trainer_config`), with
    generation barred from the vision placeholder tokens and TensorBoard writing into the run
    folder."""
    banned = [[token] for token in vision_token_ids(processor)]
    # transformers 5 takes TensorBoard's folder from the environment only.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "tensorboard")
    args = trainer_config(config, output_dir, bad_words_ids=banned or None)
    args.save_steps, message = rollout_save_steps(config)
    if message and int(os.environ.get("RANK", "0")) == 0:
        note(message)
    return args


def rollout_save_steps(config: RunConfig) -> tuple[int, str | None]:
    """Checkpoint steps on rollout-batch boundaries: ``training.save_steps`` rounded up to a
    multiple of ``training.updates_per_generation``, and the note saying so (None when it
    already is one). A checkpoint inside a rollout batch would not hold the batch's buffered
    rollouts, so a run resumed from it would generate fresh ones where the unbroken run reuses
    them; from a boundary the resumed run is the unbroken one."""
    every = config.training.updates_per_generation
    steps = config.training.save_steps
    if every <= 1 or steps % every == 0:
        return steps, None
    aligned = -(-steps // every) * every
    return aligned, (
        f"training.save_steps={steps} falls inside a rollout batch "
        f"(training.updates_per_generation={every}): checkpoints every {aligned} steps instead, "
        "so a resumed run continues exactly as an unbroken one"
    )


def lora_config(config: RunConfig) -> Any:
    """A peft LoRA config on every linear layer of the language model, with
    ``model.lora_modules_to_save`` trained in full beside it, or None."""
    if config.model.lora_rank <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.model.lora_rank,
        lora_alpha=config.model.lora_alpha,
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        task_type="CAUSAL_LM",
        modules_to_save=list(config.model.lora_modules_to_save) or None,
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class BuiltRun:
    trainer: G2RPOTrainer
    processor: Any
    validation: ValidationCallback
    tasks: list[str]


def build_trainer(
    config: RunConfig,
    output_dir: Path,
    data: tuple[list[Record], list[Record]] | None = None,
) -> BuiltRun:
    """Model, data, reward components and the G²RPO trainer for ``config``; ``data`` is the
    training and validation records already read by :func:`load_data` (else read here)."""
    train_records, validation_records = data if data is not None else load_data(config)
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    seed_everything(config.training.seed)
    model, processor = load_policy(
        resolve_model_path(config.model.path),
        dtype=config.model.dtype,
        attn_implementation=config.model.attn_implementation,
        min_pixels=config.data.min_pixels,
        max_pixels=config.data.max_pixels,
    )
    if config.model.freeze_vision:
        for parameter in model.model.visual.parameters():
            parameter.requires_grad_(False)
    tasks = list(config.data.tasks)
    prompt_config = prompt_config_for(config)
    if config.data.max_prompt_length is not None:
        train_records, validation_records = limit_prompt_length(
            config, processor, prompt_config, train_records, validation_records
        )
    stage2_names = sorted({getattr(r, config.data.stage2_key) for r in train_records})
    task_index = {task: i for i, task in enumerate(tasks)}
    stage2_index = {name: i for i, name in enumerate(stage2_names)}
    dataset = training_rows(
        train_records, prompt_config, task_index, stage2_index, config.data.stage2_key
    )
    args = run_arguments(config, output_dir, processor)
    rewards = RewardComponents(args.length_envelopes)
    validation = ValidationCallback(
        processor=processor, records=validation_records, prompt_config=prompt_config, args=args
    )
    trainer = G2RPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=rewards.functions(),
        args=args,
        train_dataset=dataset,
        callbacks=[MetricsFileCallback(output_dir), validation],
        peft_config=lora_config(config),
    )
    # One short console line per logging step instead of transformers' full dict.
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(
        CompactProgressCallback() if config.logging.progress else CompactLogCallback()
    )
    # TRL writes a model card to <output_dir>/README.md at every checkpoint, over any file of
    # that name; the run's own card (write_run_card) is written at the end instead.
    trainer.create_model_card = _no_model_card  # type: ignore[method-assign]
    return BuiltRun(trainer, processor, validation, tasks)


def _no_model_card(*args: Any, **kwargs: Any) -> None:
    return None


def limit_prompt_length(
    config: RunConfig,
    processor: Any,
    prompt_config: PromptConfig,
    train_records: list[Record],
    validation_records: list[Record],
) -> tuple[list[Record], list[Record]]:
    """The records whose prompt fits ``data.max_prompt_length`` tokens (text and image tokens
    at the processor's pixel bounds); the others are dropped with a note, as the recipe's loader
    drops them. Raises :class:`TrainDataError` when no training prompt fits."""
    limit = config.data.max_prompt_length
    assert limit is not None
    kept = []
    for split, records in (("train", train_records), ("validation", validation_records)):
        fits, dropped = within_prompt_length(records, processor, prompt_config, limit)
        if split == "train" and not fits:
            raise TrainDataError(
                f"data.train ({config.data.train}): all {len(records)} prompt(s) are longer than "
                f"data.max_prompt_length ({limit} tokens)"
            )
        if dropped:
            note(
                f"{len(dropped)} {split} prompt(s) longer than data.max_prompt_length ({limit} "
                f"tokens) dropped ({_count([r.task for r in dropped])})"
            )
        kept.append(fits)
    return kept[0], kept[1]


def save_final_model(trainer: G2RPOTrainer, folder: Path) -> None:
    """The trained policy as a plain transformers checkpoint; a LoRA adapter is merged first
    (the step checkpoints keep the adapter alone, which is what resume needs)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # a peft model
        model.merge_and_unload().save_pretrained(str(folder))
    else:
        trainer.save_model(str(folder))


def validation_caption(config: RunConfig) -> str:
    """One line saying what the start-vs-end table measured."""
    training = config.training
    if training.eval_temperature <= 0:
        mode = "greedy"
    else:
        nucleus = f", top-p {training.eval_top_p:g}" if training.eval_top_p < 1 else ""
        draws = (
            f", {training.eval_samples} samples per item (an item scores their mean)"
            if training.eval_samples > 1
            else ""
        )
        mode = (
            f"sampled at temperature {training.eval_temperature:g}{nucleus} "
            f"(seed {training.eval_seed}){draws}"
        )
    size = (
        f"{config.data.validation_size} held-out items per task"
        if config.data.validation == "synthetic"
        else f"records of {config.data.validation}"
    )
    return f"Validation: {size}, {mode}."


def quiet_third_party_warnings() -> None:
    """Silence known deprecation notices of transformers/TRL that say nothing about the run
    (they would repeat at every launch); other warnings still show."""
    for pattern in (
        r"`(is_)?gradient_checkpointing` is deprecated",
        r".*`(is_)?gradient_checkpointing_enable` is deprecated",
    ):
        warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)


def note(message: str) -> None:
    print(f"vlthinker train: {message}", flush=True)


def check_model_path(config: RunConfig) -> None:
    """``model.path`` names a model folder (checked before anything is written or loaded)."""
    try:
        path = resolve_model_path(config.model.path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"model.path: {error}") from None
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.path: {path} has no config.json (not a transformers model)")


def finished_run(config: RunConfig, output_dir: Path) -> RunResult | None:
    """The result of a run that already reached ``training.max_steps`` (its ``final/`` and
    ``results.md`` written), else None."""
    checkpoint = latest_complete_checkpoint(output_dir)
    results = output_dir / RESULTS_FILE
    if (
        checkpoint is None
        or checkpoint.step < config.training.max_steps
        or not (output_dir / "final").is_dir()
        or not results.is_file()
    ):
        return None
    history = [e for e in read_metrics(output_dir) if e.get("split") == "validation"]
    return RunResult(output_dir, history, results.read_text().rstrip("\n"))


def refuse_run_folder(output_dir: Path) -> None:
    """Raise if ``output_dir`` holds a run (a new run would mix its logs with the old one's)."""
    found = run_contents(output_dir)
    if found:
        raise RunFolderError(
            f"{output_dir} already holds a run ({', '.join(found[:4])}"
            f"{', …' if len(found) > 4 else ''}); continue it with --resume {output_dir}, "
            "choose another training.output_dir, or replace it with --overwrite"
        )


#: Keys a resumed run may change without ``allow_changes``: how far it trains and how it logs.
#: Every other key changes the method of a run already under way.
RESUME_FREE_KEYS = (
    "training.max_steps",
    "training.output_dir",
    "training.torch_threads",
    "training.save_steps",
    "training.eval_batch_size",
    "training.save_total_limit",
    "logging.",
)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def resume_changes(saved: RunConfig, config: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, new value)}`` for every setting a resume changes."""
    before, after = _flat(saved.to_dict()), _flat(config.to_dict())
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }


def _describe(changes: dict[str, Any]) -> str:
    return ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in changes.items())


def check_resume_changes(
    output_dir: Path, config: RunConfig, allow_changes: bool
) -> dict[str, tuple[Any, Any]]:
    """The settings ``config`` changes from the run's own ``config.yaml``; raises
    :class:`RunFolderError` when one of them changes the method (any key outside
    :data:`RESUME_FREE_KEYS`) and ``allow_changes`` is not set."""
    path = output_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        saved = load_config(path)
    except (ConfigError, OSError):
        return {}
    changes = resume_changes(saved, config)
    method = {k: v for k, v in changes.items() if not k.startswith(RESUME_FREE_KEYS)}
    if method and not allow_changes:
        raise RunFolderError(
            f"--resume would change how {output_dir} trains: {_describe(method)}. A resumed run "
            "continues the method it started with; pass --allow-changes to resume with these "
            "settings anyway (the run card records them with the step), or start a new run"
        )
    return changes


def record_resume_changes(output_dir: Path, step: int, changes: dict[str, Any]) -> None:
    """Append what a resume changed, with the step it resumed at, to ``resume_changes.jsonl``."""
    if not changes or int(os.environ.get("RANK", "0")) != 0:
        return
    entry = {"step": step, "changes": {k: [old, new] for k, (old, new) in changes.items()}}
    with (output_dir / RESUME_CHANGES_FILE).open("a") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")


def read_resume_changes(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / RESUME_CHANGES_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def write_run_card(config: RunConfig, output_dir: Path, steps: int, table: str) -> bool:
    """``README.md``: what the run is (base model, data, method) and its results table. A
    README.md that vlthinker did not write is left as it is; returns whether one was written."""
    path = output_dir / CARD_FILE
    if path.exists() and not is_our_card(path):
        return False
    model, data, algorithm = config.model, config.data, config.algorithm
    lora = f", LoRA rank {model.lora_rank}" if model.lora_rank > 0 else ""
    shaping = [name for name in ("length", "entropy") if getattr(config.shaping, name)]
    # the options the estimator was called with, not the shorthands it may have ignored
    settings = estimator_settings(algorithm)
    options = f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else ""
    lines = [
        CARD_MARKER,
        f"# {output_dir.name}",
        "",
        "A vlthinker training run (`vlthinker train`); this card is rewritten when it ends.",
        "",
        f"- **Base model**: `{model.path}`{lora}",
        f"- **Data**: training `{data.train}`, validation `{data.validation}`; "
        f"tasks {', '.join(data.tasks)}",
        f"- **Method**: {algorithm.estimator}{options}, "
        f"{config.training.prompts_per_step} prompts × {config.rollout.num_generations} "
        f"rollouts per step, shaping: {', '.join(shaping) or 'none'}",
        f"- **Steps**: {steps} of {config.training.max_steps}",
        *(
            f"- **Changed on resume at step {entry['step']}**: "
            + ", ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in entry["changes"].items())
            for entry in read_resume_changes(output_dir)
        ),
        f"- **Files**: `{CONFIG_FILE}` (the full config), `metrics.jsonl`, `plots.png`, "
        f"`{RESULTS_FILE}`, `final/` (the trained model)",
        "",
        "## Results",
        "",
        table,
        "",
    ]
    path.write_text("\n".join(lines))
    return True


def train(
    config: RunConfig,
    resume: str | Path | None = None,
    overwrite: bool = False,
    allow_changes: bool = False,
) -> RunResult:
    """Run (or resume) one training run; returns the validation history and the final table.

    A new run refuses a folder that holds a run unless ``overwrite`` (which deletes what the old
    run wrote, other files staying). Nothing is written before the data has been read and
    checked; ``train.lock`` keeps a second live process out of the folder. Resuming a finished
    run returns its results without training. A resume that changes a setting of the method
    (``config`` against the run's ``config.yaml``; see :data:`RESUME_FREE_KEYS`) is refused
    unless ``allow_changes``; what it changes is recorded with the step in the run card.
    """
    quiet_third_party_warnings()
    output_dir = Path(resume) if resume else Path(config.training.output_dir)
    if resume and overwrite:
        raise RunFolderError("--resume continues a run and --overwrite replaces it: choose one")
    if resume:
        done = finished_run(config, output_dir)
        if done is not None:
            note(
                f"{output_dir} is a finished run (step {config.training.max_steps} of "
                f"{config.training.max_steps}, final/ and {RESULTS_FILE} written): nothing to do; "
                "raise training.max_steps to train it further"
            )
            return done
        changes = check_resume_changes(output_dir, config, allow_changes)
    elif not overwrite and is_main_launch_process():
        refuse_run_folder(output_dir)
    check_model_path(config)
    check_environment(config)
    data = load_data(config)
    if not is_main_launch_process():
        return _train_beside_main(config, output_dir, data, resume=resume is not None)
    created = not output_dir.exists()
    make_writable_folder(output_dir)
    with RunLock(output_dir) as lock:
        checkpoint = None
        if resume:
            checkpoint = latest_complete_checkpoint(output_dir)
            if checkpoint is not None:
                note(
                    f"resuming {output_dir} from {checkpoint.path.name} (step {checkpoint.step} "
                    f"of {config.training.max_steps})"
                )
                truncate_metrics(output_dir, checkpoint.step)
                truncate_metrics(output_dir, checkpoint.step, BATCHES_FILE)
                truncate_metrics(output_dir, checkpoint.step, VALIDATION_ITEMS_FILE)
            else:
                reset = reset_logs(output_dir)
                note(
                    f"{output_dir} has no complete checkpoint yet: starting it again from step 0"
                    + (f" ({', '.join(reset)} reset)" if reset else "")
                )
        elif overwrite:
            removed = clear_run(output_dir)
            if removed:
                note(f"--overwrite: removed the previous run's {', '.join(removed)}")
        else:
            refuse_run_folder(output_dir)  # again, now that the folder is ours
        if resume:
            record_resume_changes(output_dir, checkpoint.step if checkpoint else 0, changes)
        dump_config(config, output_dir / CONFIG_FILE)
        wait_for_launch_processes()  # the other processes start once the folder is ready
        try:
            return _train_locked(config, output_dir, data, checkpoint)
        except BaseException:
            if not resume:
                undo_launch(output_dir, lock, created)
            raise


def launched_processes() -> int:
    """How many processes ``accelerate launch`` / ``torchrun`` started for this run (1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_launch_process() -> bool:
    """Whether this is the process that owns the run folder: the only one, or rank 0 of a
    multi-process launch. The others never check, lock or write the folder's bookkeeping."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_launch_processes() -> None:
    """A barrier across the launched processes (nothing with one process). The process group is
    the one the trainer uses (accelerate's ``PartialState``, set up here if not yet)."""
    if launched_processes() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _train_beside_main(
    config: RunConfig, output_dir: Path, data: tuple[list[Record], list[Record]], resume: bool
) -> RunResult:
    """A process other than rank 0 of a multi-process launch: rank 0 checks, locks and prepares
    the folder (refusing one that holds a run, trimming logs on resume, writing ``config.yaml``);
    this process waits for it, then trains from the checkpoint rank 0 resumes from."""
    wait_for_launch_processes()
    checkpoint = latest_complete_checkpoint(output_dir) if resume else None
    return _train_locked(config, output_dir, data, checkpoint)


def undo_launch(output_dir: Path, lock: RunLock, created: bool) -> None:
    """After a new run failed before its first optimiser step: delete what it wrote (the
    folder too if the run created it), so the corrected command runs as it is. A run that took
    a step keeps its folder (continue it with --resume)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    try:
        stepped = any(e.get("split") == "train" for e in read_metrics(output_dir))
    except ValueError:  # a torn line: some step was logged
        stepped = True
    if stepped or latest_complete_checkpoint(output_dir) is not None:
        return
    clear_run(output_dir)
    lock.release()
    if created and not any(output_dir.iterdir()):
        output_dir.rmdir()


def _train_locked(
    config: RunConfig,
    output_dir: Path,
    data: tuple[list[Record], list[Record]],
    checkpoint: Checkpoint | None,
) -> RunResult:
    built = build_trainer(config, output_dir, data)
    trainer = built.trainer
    if checkpoint is not None:  # TensorBoard keeps one point per step: the resumed run's
        purge_tensorboard_after(trainer, built.validation, checkpoint.step)
    trainer.train(resume_from_checkpoint=str(checkpoint.path) if checkpoint else None)
    history = built.validation.history(output_dir)
    items = built.validation.item_scores(output_dir)
    table = validation_caption(config) + "\n\n" + final_table(history, built.tasks, items)
    if trainer.is_world_process_zero():
        save_final_model(trainer, output_dir / "final")
        built.processor.save_pretrained(str(output_dir / "final"))
        (output_dir / RESULTS_FILE).write_text(table + "\n")
        (output_dir / "results.json").write_text(json.dumps(history, indent=2))
        if config.logging.plots:
            write_plots(output_dir, built.tasks)
        write_run_card(config, output_dir, trainer.state.global_step, table)
    return RunResult(output_dir=output_dir, validation=history, table=table)


def purge_tensorboard_after(trainer: Any, validation: Any, step: int) -> None:
    """Write the resumed run's TensorBoard events with ``purge_step`` = ``step`` + 1, so the
    points the interrupted run logged after its checkpoint are dropped (TensorBoard purges an
    earlier file's events from that step on) and no step has two points."""
    from transformers.integrations import TensorBoardCallback

    validation.purge_step = step + 1
    for callback in list(trainer.callback_handler.callbacks):
        if type(callback) is TensorBoardCallback:
            trainer.remove_callback(callback)
            trainer.add_callback(PurgingTensorBoardCallback(step + 1, callback.logging_dir))


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """The config a run was started with (its ``config.yaml``), plus optional overrides."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {CONFIG_FILE} is missing")
    return load_config(path, overrides)
