"""Run under ``accelerate launch``: the real trainer with the online filter on, where the
processes' pass rates differ; every process writes what its filter saw, drew and kept.

Usage: ``filter_worker.py OUT_DIR [OVERRIDE ...]`` (overrides of the packaged demo config).

Rewards are a deterministic function of a rollout's place in the global generation batch, so a
one-process run over the same global batch scores every prompt group as the processes of a
many-process run do. In a step's first generation call, the groups of the first half of the
global batch (process 0's share with two processes) all pass the filter and, of the second half,
only the first does: with two processes the pass rates are 100 % and 25 % (4 groups each), the
case where a refill sized from one process's own pass rate draws a different number of fresh
prompts on each process. In a refill round the groups at even global places pass.

The run is built as ``vlthinker train`` builds it (``build_trainer``) and trained with
``trainer.train()``; the run-folder checks and lock of ``train()`` are left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from vlthinker.train.filtering import live_groups
from vlthinker.train.rewards import GATE, RewardComponents
from vlthinker.train.trainer import G2RPOTrainer

#: ``round``: the generation call of the current step (0: its first batch, n: refill round n);
#: ``generations``: rollouts per prompt.
STATE = {"round": 0, "generations": 2}
LOG: dict[str, Any] = {"fills": [], "draws": []}


def _process() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def scripted_scores(self, completions, kwargs) -> list[dict[str, float]]:
    """The verifier's scores with the accuracy replaced: 1 for the first rollout of a passing
    group, else 0 (a passing group's mean accuracy is 1/G)."""
    rank, world = _process()
    generations = STATE["generations"]
    local = len(completions)
    groups = world * local // generations
    scores = []
    for i, verified in enumerate(_scores(self, completions, kwargs)):
        group, member = divmod(rank * local + i, generations)
        passing = group <= groups // 2 if STATE["round"] == 0 else group % 2 == 0
        scores.append({**verified, "accuracy": 1.0 if passing and member == 0 else 0.0})
    return scores


_scores = RewardComponents._scores
_generate = G2RPOTrainer._generate_and_score_completions
_fill = G2RPOTrainer._fill_with_live_groups
_resample = G2RPOTrainer._resample_inputs


def generate(self, inputs):
    STATE["round"] = 0
    return _generate(self, inputs)


def fill(self, output, rewards, inputs):
    generations = self.num_generations
    low, high = self.args.online_filter
    first = live_groups(rewards[:, GATE], generations, low, high)
    merged, kept_rewards, kept_inputs, padded = _fill(self, output, rewards, inputs)
    ids = [x["record_id"] for x in kept_inputs[::generations]]
    pads = padded[::generations].tolist()
    LOG["fills"].append(
        {
            "step": self.state.global_step + 1,
            "groups": len(inputs) // generations,
            "passed_first": int(first.sum()),
            "kept": [i for i, p in zip(ids, pads, strict=True) if not p],
            "padded": [i for i, p in zip(ids, pads, strict=True) if p],
        }
    )
    return merged, kept_rewards, kept_inputs, padded


def resample(self, groups: int, attempt: int):
    fresh = _resample(self, groups, attempt)
    STATE["round"] = attempt
    LOG["draws"].append(
        {
            "step": self.state.global_step + 1,
            "round": attempt,
            "rollouts": len(fresh),
            "record_ids": [x["record_id"] for x in fresh[:: self.num_generations]],
        }
    )
    return fresh


def main(out_dir: str, overrides: list[str]) -> None:
    from vlthinker.train.cli import DEMO_CONFIG, packaged_config
    from vlthinker.train.config import load_config
    from vlthinker.train.run import build_trainer, load_data

    RewardComponents._scores = scripted_scores
    G2RPOTrainer._generate_and_score_completions = generate
    G2RPOTrainer._fill_with_live_groups = fill
    G2RPOTrainer._resample_inputs = resample

    run = Path(out_dir) / "run"
    config = load_config(packaged_config(DEMO_CONFIG), [f"training.output_dir={run}", *overrides])
    STATE["generations"] = config.rollout.num_generations
    run.mkdir(parents=True, exist_ok=True)
    built = build_trainer(config, run, load_data(config))
    built.trainer.train()
    rank, world = _process()
    LOG["processes"] = world
    (Path(out_dir) / f"process{rank}.json").write_text(json.dumps(LOG))
    # Tear the gloo group down before exit: left to interpreter shutdown, its threads can abort
    # the process ("terminate called without an active exception").
    built.trainer.accelerator.wait_for_everyone()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
