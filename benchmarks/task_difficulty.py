"""Pass rates of a checkpoint per synthetic task and difficulty, sampled as RL samples them.

For every task and every ``--difficulties`` value, ``--per-task`` held-out items are answered
``--generations`` times at ``--temperature`` (default 1; a rollout group each). Prints per
task × difficulty the mean accuracy, the share of groups the online filter keeps
(0.01 < mean accuracy < 0.99) and the mean pass rate of the kept groups: where stage 2 of G²RPO
sees hard pools (≈ 0.15) and easy ones (≈ 0.85). ``--plot`` writes the accuracy histograms of
the rollouts per task and difficulty (graded rewards: OCR's ANLS, grounding's IoU, counting's
partial credit).

    python benchmarks/task_difficulty.py [--per-task 24] [--difficulties 0 0.5 1]
                                         [--temperature 0.7] [--plot docs/reward_histograms.png]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from vlthinker.data import TASKS, PromptConfig, synthetic
from vlthinker.evaluation import evaluate_records
from vlthinker.models import load_policy

HELD_OUT_SEED = 987_654


def group_accuracies(model, processor, task: str, difficulty: float, args) -> torch.Tensor:
    """``[items, generations]`` accuracies of sampled answers to ``task``'s held-out items."""
    records = synthetic.generate(
        args.per_task, seed=HELD_OUT_SEED, tasks=[task], difficulty=difficulty
    )
    repeated = [record for record in records for _ in range(args.generations)]
    result = evaluate_records(
        model,
        processor,
        repeated,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        prompt_config=PromptConfig(),
        progress=False,
    )
    scores = torch.tensor([p.accuracy for p in result.predictions], dtype=torch.float64)
    return scores.view(args.per_task, args.generations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:tiny_vlm")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--difficulties", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--per-task", type=int, default=24)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=192)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0, help="rollout temperature")
    parser.add_argument("--plot", default=None, help="write the reward histograms here (PNG)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model, processor = load_policy(args.model, dtype="float32")
    found: dict[tuple[str, float], torch.Tensor] = {}
    started = time.perf_counter()
    for task in args.tasks:
        for difficulty in args.difficulties:
            found[task, difficulty] = group_accuracies(model, processor, task, difficulty, args)
    print(f"{time.perf_counter() - started:.0f} s; {args.per_task} items × {args.generations} ")
    print("\n| task | difficulty | accuracy | groups kept | kept groups' pass rate |")
    print("|---|---:|---:|---:|---:|")
    for (task, difficulty), scores in found.items():
        means = scores.mean(dim=1)
        kept = (means > 0.01) & (means < 0.99)
        rate = f"{float(means[kept].mean()):.3f}" if bool(kept.any()) else "—"
        print(
            f"| {task} | {difficulty:g} | {float(scores.mean()):.3f} "
            f"| {float(kept.double().mean()):.2f} | {rate} |"
        )
    if args.plot:
        write_histograms(found, args.plot)
        print(f"wrote {args.plot}")


def write_histograms(found: dict[tuple[str, float], torch.Tensor], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task: dict[str, list[tuple[float, torch.Tensor]]] = defaultdict(list)
    for (task, difficulty), scores in found.items():
        by_task[task].append((difficulty, scores.reshape(-1)))
    columns = min(3, len(by_task))
    rows = -(-len(by_task) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for index, (task, series) in enumerate(by_task.items()):
        axis = axes[index // columns][index % columns]
        for difficulty, values in series:
            axis.hist(values.numpy(), bins=20, range=(0, 1), alpha=0.5, label=f"d={difficulty:g}")
        axis.set_title(f"{task}: rollout accuracy")
        axis.set_xlabel("accuracy reward")
        axis.legend(fontsize=7)
    for index in range(len(by_task), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
