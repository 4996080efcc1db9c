"""Per-task format and accuracy of a checkpoint on held-out synthetic items, greedy and sampled.

    python benchmarks/eval_checkpoint.py [--model embedded:tiny_vlm] [--per-task 32]

Sampling is at temperature 1 (the RL rollout setting); the shipped checkpoint must reach format
≥ 0.9 on every task there, with accuracy between 0.1 and 0.8 (learnable, not solved).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from vlthinker.data import TASKS, PromptConfig, build_messages, synthetic, verifier_meta
from vlthinker.models import load_policy
from vlthinker.rewards import score
from vlthinker.rollout import generate

HELD_OUT_SEED = 987_654


def evaluate(
    model, processor, records, *, temperature: float, batch_size: int, max_new_tokens: int
):
    config = PromptConfig()
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        responses = generate(
            model,
            processor,
            [build_messages(r, config) for r in batch],
            [r.load_images() for r in batch],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            do_sample=temperature > 0,
        )
        for record, response in zip(batch, responses, strict=True):
            meta = verifier_meta(record, config)
            scores = score(response, record.answer, record.answer_type, **meta)
            row = totals[record.task]
            row["n"] += 1
            row["format"] += scores["format"]
            row["accuracy"] += scores["accuracy"]
    return {
        task: {k: v / row["n"] if k != "n" else v for k, v in row.items()}
        for task, row in totals.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:tiny_vlm")
    parser.add_argument("--per-task", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model, processor = load_policy(args.model, dtype="float32")
    records = synthetic.generate(args.per_task * len(TASKS), seed=HELD_OUT_SEED)
    results = {}
    for name, temperature in (("greedy", 0.0), ("sampled t=1", 1.0)):
        started = time.perf_counter()
        results[name] = evaluate(
            model,
            processor,
            records,
            temperature=temperature,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
        print(f"{name}: {time.perf_counter() - started:.1f} s for {len(records)} items")
    print("\n| task | greedy format | greedy accuracy | sampled format | sampled accuracy |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        g, s = results["greedy"][task], results["sampled t=1"][task]
        print(
            f"| {task} | {g['format']:.3f} | {g['accuracy']:.3f} "
            f"| {s['format']:.3f} | {s['accuracy']:.3f} |"
        )


if __name__ == "__main__":
    main()
