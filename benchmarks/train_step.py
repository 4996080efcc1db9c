"""Training-step speed: `vlthinker train` (G²RPO, all shaping on) vs stock TRL GRPOTrainer.

Both trainers get the same tiny model, data, rollout batch, group size and lengths; their steps
are run alternately in one process (one step of each, repeated), so machine noise hits both
alike. Prints steps/s of each, the ratio (target ≥ 0.95) and peak memory.

    python benchmarks/train_step.py [--steps 6] [--prompts 6] [--generations 8] [--tokens 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from trl import GRPOConfig, GRPOTrainer

from vlthinker.models import load_policy, resolve_model_path
from vlthinker.train.config import load_config
from vlthinker.train.run import build_trainer


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="measured steps per trainer")
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", default="embedded:tiny_vlm")
    args = parser.parse_args()
    overrides = [
        f"model.path={args.model}",
        f"training.max_steps={args.steps + 1}",
        f"training.prompts_per_step={args.prompts}",
        f"training.per_device_batch_size={args.prompts * args.generations}",
        f"rollout.num_generations={args.generations}",
        f"rollout.max_new_tokens={args.tokens}",
        "training.eval_steps=0",
        "training.save_steps=1000000",
        "data.validation_size=0",
        "logging.report_to=[]",
        "logging.progress=false",
        "logging.plots=false",
    ]
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(None, [*overrides, f"training.output_dir={folder}/ours"])
        ours = build_trainer(config, Path(folder) / "ours").trainer
        stock_model, processor = load_policy(resolve_model_path(config.model.path))
        stock = GRPOTrainer(
            model=stock_model,
            processing_class=processor,
            reward_funcs=ours.reward_funcs,
            args=stock_arguments(ours.args, f"{folder}/stock"),
            train_dataset=ours.train_dataset,
        )
        timings: dict[str, list[float]] = {"vlthinker": [], "stock TRL": []}
        steppers = {"vlthinker": StepRunner(ours), "stock TRL": StepRunner(stock)}
        for name in steppers:  # warm-up step each
            steppers[name].step()
        for _ in range(args.steps):
            for name, stepper in steppers.items():
                timings[name].append(stepper.step())
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        f"tiny model, {args.prompts} prompts × {args.generations} rollouts, ≤ {args.tokens} "
        f"new tokens, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    for name, seconds in medians.items():
        print(f"{name:<10} {1 / seconds:7.3f} steps/s   (median step {seconds:.2f} s)")
    ratio = medians["stock TRL"] / medians["vlthinker"]
    print(f"speed ratio vlthinker / stock TRL: {ratio:.3f}   (target ≥ 0.95)")
    print(f"peak memory (RSS, whole process, both trainers): {peak_rss_mib():.0f} MiB")
    if torch.cuda.is_available():
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def stock_arguments(ours, output_dir: str) -> GRPOConfig:
    """TRL's own fields of our G2RPOConfig, as a plain GRPOConfig for stock TRL
    (``generation_batch_size`` is derived, not set)."""
    trl_fields = {f.name for f in dataclasses.fields(GRPOConfig) if f.init}
    values = {k: v for k, v in ours.to_dict().items() if k in trl_fields}
    return GRPOConfig(**{**values, "output_dir": output_dir, "generation_batch_size": None})


class StepRunner:
    """Drives a Trainer one optimiser step at a time through its public training loop."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.iterator = None

    def step(self) -> float:
        trainer = self.trainer
        if self.iterator is None:
            self.iterator = iter(trainer.get_train_dataloader())
            trainer.create_optimizer_and_scheduler(num_training_steps=trainer.args.max_steps)
            trainer.model.train()
            trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
        start = time.perf_counter()
        batch = next(self.iterator)
        loss = trainer.training_step(trainer.model, batch, num_items_in_batch=None)
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.args.max_grad_norm)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        del loss
        return time.perf_counter() - start


if __name__ == "__main__":
    main()
