"""Which lever moves one task, and which hurts it: single-task runs of the demo recipe, one change
each, with the paired change in validation accuracy.

    python benchmarks/levers.py [--task math] [--steps 120] [--prompts 4] [--out runs/levers]
                                [--parallel 2] [--variants recipe null ...]

Every variant trains the shipped model on ``--task`` alone (``--prompts`` prompts per step, the
demo's other settings) from the same seed, so all see the same first batches and are validated
on the same held-out items (96 × 4 samples); each is a normal run folder ``OUT/<variant>``
(a finished one is reused). ``null`` is the control that tells signal from noise: the recipe's
advantages shuffled within each group (benchmarks/plugins/shuffled_advantages.py), i.e. updates
of the same size that carry no information about which answer was right.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from vlthinker.ablation import analysis

HERE = Path(__file__).resolve().parent
# The base every variant changes one thing of: the demo recipe on full weights at lr 1e-4 (the
# shipped demo trains LoRA and the output norm, variants below, because of what this measures).
FULL_WEIGHTS = [
    "model.lora_rank=0",
    "training.learning_rate=1e-4",
    "model.lora_modules_to_save=[]",
    "training.modules_to_save_learning_rate=null",
]
VARIANTS: dict[str, list[str]] = {
    "recipe": [],
    "null": [
        f"plugins=[{HERE / 'plugins' / 'shuffled_advantages.py'}]",
        "algorithm.estimator=shuffled_g2rpo",
    ],
    "no_filter": ["rollout.online_filter=null"],
    "one_update": ["algorithm.num_iterations=1"],
    "lr_3e-5": ["training.learning_rate=3e-5"],
    "kl_0.05": ["algorithm.kl_coef=0.05"],
    "lora_16": ["model.lora_rank=16"],
    "lora_16_lr_3e-4": ["model.lora_rank=16", "training.learning_rate=3e-4"],
    "lora_16_norm": [  # the demo's setting: LoRA and the output norm's gain at its own step
        "model.lora_rank=16",
        "training.learning_rate=3e-4",
        "model.lora_modules_to_save=[language_model.norm]",
        "training.modules_to_save_learning_rate=3e-2",
    ],
}


def command(args: argparse.Namespace, variant: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vlthinker.cli",
        "train",
        f"training.output_dir={args.out / variant}",
        f"data.tasks=[{args.task}]",
        f"training.prompts_per_step={args.prompts}",
        f"training.per_device_batch_size={args.prompts * 8}",
        f"training.max_steps={args.steps}",
        f"training.eval_steps={args.steps}",
        f"training.save_steps={args.steps}",
        "training.torch_threads=1",
        "logging.progress=false",
        *FULL_WEIGHTS,
        *VARIANTS[variant],
    ]


def run_all(args: argparse.Namespace) -> dict[str, float]:
    """Train the unfinished variants, ``--parallel`` at a time (one torch thread each)."""
    pending = [v for v in args.variants if not (args.out / v / "results.json").exists()]
    args.out.mkdir(parents=True, exist_ok=True)
    wall: dict[str, float] = {}
    for start in range(0, len(pending), args.parallel):
        batch = pending[start : start + args.parallel]
        began = time.perf_counter()
        procs = {
            v: subprocess.Popen(
                command(args, v),
                stdout=subprocess.DEVNULL,
                stderr=(args.out / f"{v}.log").open("w"),
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            for v in batch
        }
        for variant, proc in procs.items():
            if proc.wait():
                raise SystemExit(f"variant {variant} failed; see {args.out / variant}.log")
            wall[variant] = time.perf_counter() - began
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="math")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--out", type=Path, default=Path("runs/levers"))
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    args.out = args.out / args.task
    wall = run_all(args)
    lines = [
        f"{args.task} alone, {args.steps} steps × {args.prompts} prompts × 8 rollouts, seed 0; "
        "paired change in validation accuracy (96 items × 4 samples)",
        "",
        "| variant | Δ accuracy | ± 2 s.e. | beyond band | format @ end |",
        "|---|---:|---:|---|---:|",
    ]
    for variant in args.variants:
        folder = args.out / variant
        change = analysis.seed_task_changes(folder, [args.task])[args.task]
        band = 2 * change.se
        verdict = "rises" if change.mean > band else "falls" if change.mean < -band else ""
        fmt = json.loads((folder / "results.json").read_text())[-1][f"{args.task}/format"]
        lines.append(f"| {variant} | {change.mean:+.3f} | ±{band:.3f} | {verdict} | {fmt:.3f} |")
    if wall:
        lines += ["", "wall time (s): " + ", ".join(f"{v} {s:.0f}" for v, s in wall.items())]
    report = "\n".join(lines)
    print(report)
    (args.out / "levers.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
