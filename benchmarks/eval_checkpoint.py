"""Per-task format and accuracy of a checkpoint on held-out synthetic items, greedy and sampled.

    python benchmarks/eval_checkpoint.py [--model embedded:tiny_vlm] [--per-task 32]
                                         [--temperatures 0 1]

Sampling at temperature 1 is the RL rollout setting; the shipped checkpoint must reach format
≥ 0.9 on every task there, with accuracy between 0.1 and 0.8 (learnable, not solved). Several
temperatures (``--temperatures 1 0.8 0.6 0.4 0``) show how much sharper sampling alone would
gain: what RL at temperature 1 can win without learning anything new.
"""

from __future__ import annotations

import argparse
import time

import torch

from vlthinker.data import TASKS, PromptConfig, synthetic
from vlthinker.evaluation import evaluate_records
from vlthinker.models import load_policy

HELD_OUT_SEED = 987_654


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:tiny_vlm")
    parser.add_argument("--per-task", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 1.0])
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model, processor = load_policy(args.model, dtype="float32")
    records = synthetic.generate(args.per_task * len(TASKS), seed=HELD_OUT_SEED)
    results = {}
    for temperature in args.temperatures:
        name = "greedy" if temperature == 0 else f"t={temperature:g}"
        started = time.perf_counter()
        results[name] = evaluate_records(
            model,
            processor,
            records,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            temperature=temperature,
            prompt_config=PromptConfig(),
            progress=False,
        ).per_task
        print(f"{name}: {time.perf_counter() - started:.1f} s for {len(records)} items")
    print("\n| decoding | " + " | ".join(TASKS) + " | mean | mean format |")
    print("|---" * (len(TASKS) + 3) + "|")
    for name, per_task in results.items():
        accuracy = [per_task[task]["accuracy"] for task in TASKS]
        formats = [per_task[task]["format"] for task in TASKS]
        cells = " | ".join(f"{a:.3f}" for a in accuracy)
        print(
            f"| {name} | {cells} | {sum(accuracy) / len(TASKS):.3f} "
            f"| {sum(formats) / len(TASKS):.3f} |"
        )


if __name__ == "__main__":
    main()
