"""Does the demo learn, beyond noise? The demo config for 3× its steps, over several seeds.

    python benchmarks/learning.py [--seeds 0 1 2] [--steps-factor 3] [--out runs/learning]
                                  [--parallel 3] [key.sub=value ...]

Seeds run at once as subprocesses (``--parallel``, one torch thread each: on 2 cores three
one-thread runs finish sooner than three two-thread runs in a row). Each seed is a normal run
folder (``OUT/seed<k>``; a finished one is reused, so an interrupted
benchmark picks up where it stopped). Per task it prints each seed's paired change in validation
accuracy (first vs last pass, the same items) and the mean over seeds with a two-standard-error
band: the larger of the within-seed band (the seeds' paired standard errors, combined) and the
across-seed one (the spread of the seeds' changes), so neither item noise nor seed-to-seed
training noise is left out. A task "rises" when its mean change exceeds its band.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from vlthinker.ablation import analysis
from vlthinker.train.cli import DEMO_CONFIG, packaged_config
from vlthinker.train.config import load_config


def combine_seeds(changes: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean change over seeds and its two-standard-error band: ``2 · max(within, across)``, where
    ``within = √(Σ se_s²) / S`` (:func:`vlthinker.ablation.analysis.combine_seeds`) and ``across =
    sd(changes) / √S`` (:func:`~vlthinker.ablation.analysis.between_seed_se`; 0 for one seed)."""
    combined = analysis.combine_seeds([analysis.Estimate(c, se) for c, se in changes])
    across = analysis.between_seed_se([c for c, _ in changes]) or 0.0
    return combined.mean, 2.0 * max(combined.se, across)


def run_in_parallel(args: argparse.Namespace) -> None:
    """Train the unfinished seeds as ``--parallel`` subprocesses of this script, one thread each;
    the caller then reads their run folders."""
    pending = [s for s in args.seeds if not (args.out / f"seed{s}" / "results.json").exists()]
    args.out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(pending), args.parallel):
        batch = pending[start : start + args.parallel]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--seeds",
                    str(seed),
                    "--steps-factor",
                    str(args.steps_factor),
                    "--out",
                    str(args.out),
                    *(["--config", str(args.config)] if args.config else []),
                    *args.overrides,
                    "training.torch_threads=1",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(args.out / f"seed{seed}.log").open("w"),
            )
            for seed in batch
        ]
        for proc in procs:
            if proc.wait():
                raise SystemExit(f"a seed's run failed (exit {proc.returncode}); see {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="base config (the demo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps-factor", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/learning"))
    parser.add_argument("--parallel", type=int, default=3, help="seeds trained at once")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parser.parse_args()
    began = time.perf_counter()
    if args.parallel > 1 and len(args.seeds) > 1:
        run_in_parallel(args)

    from vlthinker.train.run import train

    base = load_config(args.config or packaged_config(DEMO_CONFIG), args.overrides)
    steps = base.training.max_steps * args.steps_factor
    every = base.training.eval_steps * args.steps_factor if base.training.eval_steps else 0
    tasks = list(base.data.tasks)
    per_seed: dict[int, dict[str, tuple[float, float]]] = {}
    wall: dict[int, float] = {}
    for seed in args.seeds:
        run = args.out / f"seed{seed}"
        if not (run / "results.json").exists():
            config = load_config(
                args.config or packaged_config(DEMO_CONFIG),
                [
                    *args.overrides,
                    f"training.output_dir={run}",
                    f"training.max_steps={steps}",
                    f"training.eval_steps={every}",
                    f"training.seed={seed}",
                    "logging.progress=false",
                ],
            )
            started = time.perf_counter()
            # A folder left by an interrupted benchmark continues from its last checkpoint.
            partial = (run / "config.yaml").exists()
            train(config, resume=run if partial else None)
            wall[seed] = time.perf_counter() - started
        per_seed[seed] = {
            task: (e.mean, e.se) for task, e in analysis.seed_task_changes(run, tasks).items()
        }

    lines = [
        f"{steps} steps per run, seeds {args.seeds}; paired change in validation accuracy "
        "(first vs last pass)",
        "",
        "| task | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | ± 2 s.e. | rises |",
        "|---|" + "---:|" * (len(args.seeds) + 3),
    ]
    summary = {}
    rising = 0
    for task in tasks:
        changes = [per_seed[s][task] for s in args.seeds]
        mean, band = combine_seeds(changes)
        rises = mean > band
        rising += rises
        summary[task] = {"mean": mean, "band": band, "per_seed": changes}
        cells = " | ".join(f"{c:+.3f}" for c, _ in changes)
        lines.append(f"| {task} | {cells} | {mean:+.3f} | ±{band:.3f} | {'yes' if rises else ''} |")
    task_means = [summary[t]["mean"] for t in tasks]
    lines += [
        "",
        f"mean over tasks: {sum(task_means) / len(tasks):+.3f}; "
        f"{rising} of {len(tasks)} tasks rise beyond their band",
    ]
    if wall:
        lines.append("wall time per run (s): " + ", ".join(f"{wall[s]:.0f}" for s in wall))
    lines.append(f"wall time of this benchmark: {(time.perf_counter() - began) / 60:.1f} min")
    report = "\n".join(lines)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning.md").write_text(report + "\n")
    (args.out / "learning.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
