"""Where a demo training step spends its time, and how many of the tokens it scores are prompt.

    python benchmarks/step_profile.py [--steps 6] [key.sub=value ...]

Trains the demo config (LoRA, 24 prompts × 8 rollouts, two clipped updates per rollout batch) for
a few steps with timers around the four phases of a step, then prints their shares of the wall
time:

- generation (``model.generate``: sampling the rollouts),
- scoring without gradient (``_get_per_token_logps_and_entropies`` under ``no_grad``: the old
  policy's log-probs that the clipped ratio needs when a rollout batch is used more than once),
- scoring with gradient (the same call inside the loss: the training forward),
- backward (``accelerator.backward``),

the vision tower's share of the forwards, and the token split of the scored sequences: every
rollout of a group repeats its prompt (image tokens included), so the forward and backward passes
process each prompt ``num_generations`` times. The last line estimates what one prompt pass per
group would leave of the scored tokens — the lever that buys more rollouts per CPU minute.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from vlthinker.train.cli import DEMO_CONFIG, packaged_config
from vlthinker.train.config import load_config
from vlthinker.train.run import build_trainer
from vlthinker.train.shared_prompt import base_model

SECONDS: dict[str, float] = defaultdict(float)
TOKENS: dict[str, int] = defaultdict(int)


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        SECONDS[name] += time.perf_counter() - start


def wrap(owner: Any, attribute: str, name: Callable[..., str]) -> None:
    """Replace ``owner.attribute`` with a timed call; ``name(*args, **kwargs)`` labels it."""
    inner = getattr(owner, attribute)

    def timed_call(*args: Any, **kwargs: Any) -> Any:
        with timed(name(*args, **kwargs)):
            return inner(*args, **kwargs)

    setattr(owner, attribute, timed_call)


def count_scored_tokens(trainer: Any) -> None:
    """Count, per scoring call with gradient, the prompt and completion tokens of its rows."""
    inner = trainer._get_per_token_logps_and_entropies

    def counting(model, input_ids, attention_mask, logits_to_keep, *args: Any, **kwargs: Any):
        if torch.is_grad_enabled():
            real = attention_mask.bool()
            completion = real[:, -logits_to_keep:].sum()
            TOKENS["completion"] += int(completion)
            TOKENS["prompt"] += int(real.sum() - completion)
            TOKENS["rows"] += int(input_ids.size(0))
        return inner(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)

    trainer._get_per_token_logps_and_entropies = counting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="training steps to time")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            packaged_config(DEMO_CONFIG),
            [
                f"training.max_steps={args.steps}",
                "training.eval_steps=0",
                "data.validation_size=1",
                "training.eval_samples=1",
                "training.save_steps=1000000",
                "logging.report_to=[]",
                "logging.progress=false",
                f"training.output_dir={tmp}",
                *args.overrides,
            ],
        )
        built = build_trainer(config, Path(tmp))
        trainer = built.trainer
        trainer.remove_callback(built.validation)
        count_scored_tokens(trainer)
        wrap(
            trainer,
            "_get_per_token_logps_and_entropies",
            lambda *a, **k: (
                "score (with gradient)" if torch.is_grad_enabled() else "score (no gradient)"
            ),
        )
        wrap(trainer.accelerator, "backward", lambda *a, **k: "backward")
        policy = trainer.model
        wrap(policy, "generate", lambda *a, **k: "generation")
        wrap(base_model(policy).model.visual, "forward", lambda *a, **k: "vision tower")
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start

    phases = ["generation", "score (no gradient)", "score (with gradient)", "backward"]
    print(f"{args.steps} steps in {total:.1f} s ({total / args.steps:.2f} s/step)")
    print("| phase | seconds | share |\n|---|---:|---:|")
    for phase in phases:
        print(f"| {phase} | {SECONDS[phase]:.1f} | {SECONDS[phase] / total:.0%} |")
    rest = total - sum(SECONDS[p] for p in phases)
    print(f"| rest (rewards, advantages, optimiser, logging) | {rest:.1f} | {rest / total:.0%} |")
    print(
        f"vision tower (inside generation and scoring): {SECONDS['vision tower']:.1f} s, "
        f"{SECONDS['vision tower'] / total:.0%}"
    )
    prompt, completion, rows = TOKENS["prompt"], TOKENS["completion"], TOKENS["rows"]
    if rows:
        group = config.rollout.num_generations
        shared = prompt / group + completion
        print(
            f"scored with gradient: {rows} rows, {prompt / rows:.1f} prompt + "
            f"{completion / rows:.1f} completion tokens per row "
            f"(prompt {prompt / (prompt + completion):.0%} of the tokens)"
        )
        print(
            f"one prompt pass per group of {group}: {shared / (prompt + completion):.0%} of the "
            "scored tokens left"
        )


if __name__ == "__main__":
    main()
