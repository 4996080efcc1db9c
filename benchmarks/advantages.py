"""Advantage-estimator speed: vectorized G²RPO vs a per-group Python loop vs plain GRPO.

65,536 rollouts = 8,192 prompt groups of 8 over 6 tasks; half the tasks give binary rewards,
half continuous ones. Prints the median time of each and the two ratios (targets: G²RPO ≥ 100×
faster than the loop, ≤ 3× the time of GRPO).

    python benchmarks/advantages.py [--groups 8192] [--group-size 8] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from vlthinker.algorithms import g2rpo_advantages, grpo_advantages


def loop_g2rpo(rewards: torch.Tensor, group_ids: torch.Tensor, task_ids: torch.Tensor, tol=1e-6):
    """The reference code's structure: Python loops over tasks and groups, one group at a time."""

    def map_to_normal(values: list[float]) -> list[float]:
        n = len(values)
        if n < 2 or max(values) - min(values) <= tol:
            return [0.0] * n
        order = sorted(range(n), key=values.__getitem__)
        z = [0.0] * n
        quantiles = [
            float(torch.special.ndtri(torch.tensor((k + 0.5) / n, dtype=torch.float64)))
            for k in range(n)
        ]
        start = 0
        while start < n:
            end = start
            while end + 1 < n and values[order[end + 1]] - values[order[end]] <= tol:
                end += 1
            block = quantiles[start : end + 1]
            for position in range(start, end + 1):
                z[order[position]] = sum(block) / len(block)
            start = end + 1
        return z

    rewards_list, groups, tasks = rewards.tolist(), group_ids.tolist(), task_ids.tolist()
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    stage1 = [0.0] * len(rewards_list)
    tied: set[int] = set()
    for group, indices in members.items():
        mapped = map_to_normal([rewards_list[i] for i in indices])
        if all(value == 0.0 for value in mapped):
            tied.add(group)
        for index, value in zip(indices, mapped, strict=True):
            stage1[index] = value
    out = [0.0] * len(rewards_list)
    for task in sorted(set(tasks)):
        indices = [i for i in range(len(tasks)) if tasks[i] == task and groups[i] not in tied]
        for index, value in zip(indices, map_to_normal([stage1[i] for i in indices]), strict=True):
            out[index] = value
    return torch.tensor(out, dtype=rewards.dtype)


def make_batch(groups: int, group_size: int, tasks: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batch = groups * group_size
    group_ids = torch.arange(groups).repeat_interleave(group_size)
    task_of_group = torch.randint(0, tasks, (groups,), generator=generator)
    task_ids = task_of_group.repeat_interleave(group_size)
    difficulty = torch.rand(groups, generator=generator).repeat_interleave(group_size)
    binary = (torch.rand(batch, generator=generator) < difficulty).float()
    continuous = torch.rand(batch, generator=generator) ** 2
    rewards = torch.where(task_ids < tasks // 2, binary, continuous)
    return rewards, group_ids, task_ids


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rewards, group_ids, task_ids, repeats: int) -> tuple[float, float]:
    t_g2rpo = median_seconds(lambda: g2rpo_advantages(rewards, group_ids, task_ids), repeats)
    t_grpo = median_seconds(lambda: grpo_advantages(rewards, group_ids, task_ids), repeats)
    return t_g2rpo, t_grpo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8192)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rewards, group_ids, task_ids = make_batch(args.groups, args.group_size, args.tasks)
    print(
        f"{rewards.numel():,} rollouts = {args.groups:,} groups × {args.group_size}, "
        f"{args.tasks} tasks (half binary, half continuous), torch {torch.__version__}"
    )
    start = time.perf_counter()
    reference = loop_g2rpo(rewards, group_ids, task_ids)
    t_loop = time.perf_counter() - start
    max_error = float((g2rpo_advantages(rewards, group_ids, task_ids) - reference).abs().max())

    default_threads = torch.get_num_threads()
    rows = []
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        rows.append((threads, *measure(rewards, group_ids, task_ids, args.repeats)))
    torch.set_num_threads(default_threads)

    print(f"per-group Python loop (reference structure): {t_loop * 1e3:.1f} ms")
    columns = ("torch threads", "g2rpo ms", "grpo ms", "loop/g2rpo", "g2rpo/grpo")
    print(
        " ".join(
            f"{name:>{width}}" for name, width in zip(columns, (13, 9, 8, 11, 11), strict=True)
        )
    )
    for threads, t_g2rpo, t_grpo in rows:
        print(
            f"{threads:>13} {t_g2rpo * 1e3:>9.2f} {t_grpo * 1e3:>8.2f} "
            f"{t_loop / t_g2rpo:>10.1f}x {t_g2rpo / t_grpo:>10.2f}x"
        )
    print("targets: loop/g2rpo ≥ 100x, g2rpo/grpo ≤ 3x (the default thread count is the headline)")
    print(f"max |vectorized − loop| = {max_error:.2e}")


if __name__ == "__main__":
    main()
