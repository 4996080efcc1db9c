"""`vlthinker train`: build the data, model, rewards and trainer from a config and run it."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig

from vlthinker.algorithms import length_envelope
from vlthinker.data import PromptConfig, Record, load_records, synthetic
from vlthinker.models import load_policy, resolve_model_path, vision_token_ids
from vlthinker.train.callbacks import MetricsFileCallback, ValidationCallback
from vlthinker.train.config import RunConfig, dump_config, load_config
from vlthinker.train.dataset import training_rows
from vlthinker.train.report import final_table, write_plots
from vlthinker.train.rewards import RewardComponents
from vlthinker.train.run_folder import (
    BATCHES_FILE,
    VALIDATION_ITEMS_FILE,
    latest_complete_checkpoint,
    truncate_metrics,
)
from vlthinker.train.trainer import G2RPOTrainer, MethodSettings

CONFIG_FILE = "config.yaml"


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


def load_split(config: RunConfig, split: str) -> list[Record]:
    data = config.data
    source = data.train if split == "train" else data.validation
    if source == "synthetic":
        if split == "train":
            return synthetic.generate(
                data.train_size,
                seed=data.seed,
                tasks=data.tasks,
                difficulty=data.difficulty,
                image_size=data.image_size,
            )
        # Validation items come from a disjoint seed stream so they are held out.
        return synthetic.generate(
            data.validation_size * len(data.tasks),
            seed=data.seed + 1_000_003,
            tasks=data.tasks,
            difficulty=data.difficulty,
            image_size=data.image_size,
        )
    return load_records(source, on_bad_record=data.on_bad_record)


def task_tensors(config: RunConfig, tasks: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task length envelopes ``[T, 4]`` and entropy bands ``[T, 2]`` from the config."""
    envelopes, bands = [], []
    for task in tasks:
        shaping = config.shaping.tasks.get(task)
        points = shaping.length if shaping and shaping.length else None
        if points is None:
            envelopes.append((0.0, 0.0, float("inf"), float("inf")))
        elif len(points) == 2:
            envelopes.append(length_envelope(points[0], points[1], config.shaping.length_slack))
        else:
            envelopes.append(tuple(points))
        band = shaping.entropy_band if shaping and shaping.entropy_band else None
        bands.append(tuple(band) if band else (0.0, float("inf")))
    return torch.tensor(envelopes, dtype=torch.float64), torch.tensor(bands, dtype=torch.float32)


def grpo_arguments(config: RunConfig, output_dir: Path, processor: Any) -> GRPOConfig:
    training, rollout, algorithm = config.training, config.rollout, config.algorithm
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rollouts = training.prompts_per_step * rollout.num_generations
    per_process = rollouts // world
    if per_process % training.per_device_batch_size:
        raise ValueError(
            f"training.per_device_batch_size ({training.per_device_batch_size}) must divide the "
            f"{per_process} rollouts each of {world} process(es) handles per step"
        )
    accumulation = per_process // training.per_device_batch_size
    banned = [[token] for token in vision_token_ids(processor)]
    # transformers 5 takes TensorBoard's folder from the environment only.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "tensorboard")
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=training.max_steps,
        per_device_train_batch_size=training.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation * training.updates_per_generation,
        num_generations=rollout.num_generations,
        max_completion_length=rollout.max_new_tokens,
        vllm_max_model_length=rollout.max_model_length,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        generation_kwargs={"bad_words_ids": banned} if banned else None,
        use_vllm=rollout.use_vllm,
        vllm_mode=rollout.vllm_mode,
        vllm_gpu_memory_utilization=rollout.vllm_gpu_memory_utilization,
        learning_rate=training.learning_rate,
        weight_decay=training.weight_decay,
        warmup_steps=training.warmup_steps,
        lr_scheduler_type="constant",  # the recipe: constant lr, no warm-up (method.md §8)
        max_grad_norm=training.max_grad_norm,
        # token: mean over every token of the optimiser step's mini-batch — TRL's "dapo"
        # normalisation, made exact per step by G2RPOTrainer; seq: per sequence ("grpo").
        loss_type="dapo" if algorithm.loss_aggregation == "token" else "grpo",
        epsilon=algorithm.clip_low,
        epsilon_high=algorithm.clip_high,
        delta=algorithm.dual_clip,  # TRL's ratio cap = dual clip for A < 0 (see test_trl_contract)
        beta=algorithm.kl_coef,
        num_iterations=algorithm.num_iterations,
        seed=training.seed,
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
        eval_strategy="no",
    )


def lora_config(config: RunConfig) -> Any:
    """A peft LoRA config on every linear layer of the language model, or None."""
    if config.model.lora_rank <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.model.lora_rank,
        lora_alpha=config.model.lora_alpha,
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        task_type="CAUSAL_LM",
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


def build_trainer(config: RunConfig, output_dir: Path) -> BuiltRun:
    """Model, data, reward components and the G²RPO trainer for ``config``."""
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    seed_everything(config.training.seed)
    model, processor = load_policy(
        resolve_model_path(config.model.path),
        dtype=config.model.dtype,
        attn_implementation=config.model.attn_implementation,
    )
    if config.model.freeze_vision:
        for parameter in model.model.visual.parameters():
            parameter.requires_grad_(False)
    tasks = list(config.data.tasks)
    prompt_config = prompt_config_for(config)
    train_records = [r for r in load_split(config, "train") if r.task in tasks]
    validation_records = [r for r in load_split(config, "validation") if r.task in tasks]
    stage2_names = sorted({getattr(r, config.data.stage2_key) for r in train_records})
    task_index = {task: i for i, task in enumerate(tasks)}
    stage2_index = {name: i for i, name in enumerate(stage2_names)}
    dataset = training_rows(
        train_records, prompt_config, task_index, stage2_index, config.data.stage2_key
    )

    envelopes, bands = task_tensors(config, tasks)
    rewards = RewardComponents(envelopes, length_enabled=config.shaping.length)
    weights = list(config.algorithm.reward_weights)
    if not config.shaping.length:
        weights[2] = 0.0
    method = MethodSettings(
        estimator=config.algorithm.estimator,
        estimator_options={
            "tie_atol": config.algorithm.tie_atol,
            "per_task": config.algorithm.per_task,
            "keep_tied_groups": config.algorithm.keep_tied_groups,
            "stage2_min_groups": config.algorithm.stage2_min_groups,
        },
        multi_component=config.algorithm.multi_component,
        reward_weights=tuple(weights),
        task_names=tuple(tasks),
        stage2_names=tuple(stage2_names),
        entropy_bands=bands if config.shaping.entropy else None,
        entropy_coef=config.shaping.entropy_coef if config.shaping.entropy else 0.0,
        entropy_estimate=config.shaping.entropy_estimate,
        online_filter=tuple(config.rollout.online_filter) if config.rollout.online_filter else None,
        max_resample=config.rollout.max_resample,
        resample_seed=config.training.seed,
        task_gradient_norms=config.logging.task_gradient_norms,
    )
    validation = ValidationCallback(
        processor=processor,
        records=validation_records,
        prompt_config=prompt_config,
        output_dir=output_dir,
        every=config.training.eval_steps,
        batch_size=config.training.eval_batch_size,
        max_new_tokens=config.rollout.max_new_tokens,
        temperature=config.training.eval_temperature,
        seed=config.training.eval_seed,
        top_p=config.training.eval_top_p,
        samples=config.training.eval_samples if config.training.eval_temperature > 0 else 1,
        tensorboard="tensorboard" in config.logging.report_to,
        progress=config.logging.progress,
    )
    trainer = G2RPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=rewards.functions(),
        args=grpo_arguments(config, output_dir, processor),
        train_dataset=dataset,
        method=method,
        callbacks=[MetricsFileCallback(output_dir), validation],
        peft_config=lora_config(config),
    )
    return BuiltRun(trainer, processor, validation, tasks)


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


def train(config: RunConfig, resume: str | Path | None = None) -> RunResult:
    """Run (or resume) one training run; returns the validation history and the final table."""
    output_dir = Path(resume) if resume else Path(config.training.output_dir)
    checkpoint = None
    if resume:
        checkpoint = latest_complete_checkpoint(output_dir)
        if checkpoint is not None:
            truncate_metrics(output_dir, checkpoint.step)
            truncate_metrics(output_dir, checkpoint.step, BATCHES_FILE)
            truncate_metrics(output_dir, checkpoint.step, VALIDATION_ITEMS_FILE)
    output_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, output_dir / CONFIG_FILE)
    built = build_trainer(config, output_dir)
    trainer = built.trainer
    trainer.train(resume_from_checkpoint=str(checkpoint.path) if checkpoint else None)
    history = built.validation.history(output_dir)
    items = built.validation.item_scores(output_dir)
    table = validation_caption(config) + "\n\n" + final_table(history, built.tasks, items)
    if trainer.is_world_process_zero():
        save_final_model(trainer, output_dir / "final")
        built.processor.save_pretrained(str(output_dir / "final"))
        (output_dir / "results.md").write_text(table + "\n")
        (output_dir / "results.json").write_text(json.dumps(history, indent=2))
        if config.logging.plots:
            write_plots(output_dir, built.tasks)
    return RunResult(output_dir=output_dir, validation=history, table=table)


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """The config a run was started with (its ``config.yaml``), plus optional overrides."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {CONFIG_FILE} is missing")
    return load_config(path, overrides)
