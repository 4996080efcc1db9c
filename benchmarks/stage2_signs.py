"""G²RPO stage 2 on imbalanced pools: how often each stage-2 rule reverses a stage-1 sign.

One task of binary accuracy, G = 8. A pool is 64 live groups whose per-prompt pass rate p is drawn
from Beta(2·m, 2·(1 − m)) around a task pass rate m, k = Binomial(8, p) kept when 1 ≤ k ≤ 7 (what
the online filter keeps); 20 pools per m. Prints, per rule and m, the share of wrong answers given
A > 0, of right answers given A < 0, the largest |sum of a group's advantages|, the task's mean
advantage and its RMS per live rollout (docs/method.md §2, "Stage 2 can reverse signs").

Rules: ``stage1`` (no stage 2), ``reference`` (the paper's rank map), ``rms`` (vlthinker's
default) and ``half_normal`` (ranking positive and negative magnitudes separately onto half-normal
quantiles: a tempting alternative, written here only to measure it).

    python benchmarks/stage2_signs.py [--pools 20] [--groups 64]
"""

from __future__ import annotations

import argparse
import math

import torch

from vlthinker.algorithms import g2rpo_advantages, rank_to_normal

GROUP_SIZE = 8
PASS_RATES = (0.15, 0.30, 0.50, 0.70, 0.85)


def draw_pool(mean: float, groups: int, generator: torch.Generator) -> torch.Tensor:
    """``[groups, 8]`` binary rewards of live groups around task pass rate ``mean``."""
    beta = torch.distributions.Beta(torch.tensor(2.0 * mean), torch.tensor(2.0 * (1 - mean)))
    rows = []
    while len(rows) < groups:
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        p = float(beta.sample())
        k = int(torch.binomial(torch.tensor(float(GROUP_SIZE)), torch.tensor(p)))
        if 1 <= k <= GROUP_SIZE - 1:
            rows.append([1.0] * k + [0.0] * (GROUP_SIZE - k))
    return torch.tensor(rows, dtype=torch.float64)


def half_normal(stage1: torch.Tensor) -> torch.Tensor:
    """Positive and negative stage-1 magnitudes ranked apart onto half-normal quantiles
    ``Φ⁻¹(0.5 + u/2)``: signs kept, group sums not."""
    out = torch.zeros_like(stage1)
    for sign in (1.0, -1.0):
        members = (stage1 * sign) > 0
        if int(members.sum()) < 2:
            out[members] = sign * 0.6745  # the half-normal's median
            continue
        z, _ = rank_to_normal((stage1[members] * sign), torch.zeros(int(members.sum())))
        level = torch.special.ndtr(z)  # the rank map's quantile level, back in (0, 1)
        out[members] = sign * torch.special.ndtri(0.5 + level / 2)
    return out


def advantages(rule: str, rewards: torch.Tensor) -> torch.Tensor:
    flat = rewards.reshape(-1)
    groups = torch.arange(rewards.shape[0]).repeat_interleave(GROUP_SIZE)
    tasks = torch.zeros_like(groups)
    if rule == "stage1":
        return g2rpo_advantages(flat, groups, tasks, per_task=False)
    if rule == "half_normal":
        return half_normal(g2rpo_advantages(flat, groups, tasks, per_task=False))
    return g2rpo_advantages(flat, groups, tasks, stage2=rule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--groups", type=int, default=64)
    args = parser.parse_args()
    print(
        f"binary accuracy, G = {GROUP_SIZE}, {args.groups} live groups per pool, "
        f"{args.pools} pools per task pass rate m\n"
    )
    print("| rule | m | wrong with A > 0 | right with A < 0 | max abs group sum | mean A | RMS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rule in ("stage1", "reference", "rms", "half_normal"):
        for mean in PASS_RATES:
            generator = torch.Generator().manual_seed(int(mean * 1000))
            wrong_up = right_down = group_sum = mean_a = rms = 0.0
            for _ in range(args.pools):
                rewards = draw_pool(mean, args.groups, generator)
                values = advantages(rule, rewards)
                flat = rewards.reshape(-1)
                wrong_up += float((values[flat == 0] > 0).double().mean()) / args.pools
                right_down += float((values[flat == 1] < 0).double().mean()) / args.pools
                sums = values.view(-1, GROUP_SIZE).sum(dim=1).abs().max()
                group_sum = max(group_sum, float(sums))
                mean_a += float(values.mean()) / args.pools
                rms += math.sqrt(float(values.square().mean())) / args.pools
            print(
                f"| {rule} | {mean:.2f} | {wrong_up:.3f} | {right_down:.3f} | {group_sum:.2f} "
                f"| {mean_a:+.3f} | {rms:.2f} |"
            )


if __name__ == "__main__":
    main()
