"""`vlthinker ablate [--config BASE.yaml] [--arms ...] [--seeds 0 1 2] [--out runs/ablate]
[--quick] [--parallel N] [key.sub=value ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_OUT = Path("runs/ablate")
QUICK_OUT = Path("runs/ablate-quick")
# The table's gradient-equity column needs every arm to log its per-task gradient norms.
GRADIENT_NORMS = "logging.task_gradient_norms=true"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate",
        help="train every arm of the G²RPO ablation on the same data, budget and seeds; one table",
        description="The paper's ablation: GRPO, Dr. GRPO, G²RPO with the paper's stage 2 and "
        "with the sound one (the default), with length, with entropy shaping and the full "
        "recipe, each a normal run folder OUT/<arm>/seed<k>. "
        "Writes OUT/ablation.md, ablation.png and ablation.json. Rerunning the command skips "
        "finished runs and resumes an unfinished one.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="base run config (default: the packaged demo.yaml with the ablation's CPU budget)",
    )
    parser.add_argument("--arms", nargs="+", metavar="ARM", help="arms to run (default: all)")
    parser.add_argument(
        "--arms-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a YAML of extra arms/claims/budgets, same form as configs/ablation_arms.yaml",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), metavar="K", help="seeds"
    )
    parser.add_argument(
        "--out", type=Path, help=f"output folder (default: {DEFAULT_OUT}, --quick: {QUICK_OUT})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a first look: one seed (unless --seeds), few steps, a small validation set",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="runs at once, as subprocesses (one per GPU where there are GPUs); default 1: "
        "one after another in this process",
    )
    parser.add_argument(
        "--launcher",
        metavar="CMD",
        help="start each run as a subprocess with CMD instead of python, e.g. 'accelerate "
        "launch --num_processes 8 --config_file configs/accelerate/deepspeed_zero3.yaml'",
    )
    parser.add_argument(
        "--gradient-norms",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log per-task gradient norms (one extra backward per task each micro-batch); "
        "default: on for the CPU ablation, off with --config (large models)",
    )
    parser.add_argument(
        "--greedy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after training, validate each run's start and final model greedily (what was "
        "learned beyond sharpening the sampler); default on",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the outputs from the finished runs in --out without training",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="overrides for every arm (an arm's own overrides win)",
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from vlthinker.ablation.analysis import summarize, verdict_line, write_outputs
    from vlthinker.ablation.plan import load_arms, plan_runs, run_state
    from vlthinker.train.cli import DEMO_CONFIG, packaged_config
    from vlthinker.train.config import ConfigError

    if args.parallel < 1:
        raise SystemExit("vlthinker ablate: --parallel must be ≥ 1")
    seeds = args.seeds
    if args.quick and seeds == list(DEFAULT_SEEDS):
        seeds = [DEFAULT_SEEDS[0]]
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    try:
        spec = load_arms(args.arms_file)
        # `--arms a b key=value`: a key=value after the arms is an override, not an arm.
        given = args.arms or []
        names = [name for name in given if "=" not in name] or list(spec.arms)
        args.overrides = [*[item for item in given if "=" in item], *args.overrides]
        unknown = [name for name in names if name not in spec.arms]
        if unknown:
            raise ConfigError(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(spec.arms)}")
        common: list[str] = []
        gradient_norms = args.config is None if args.gradient_norms is None else args.gradient_norms
        if gradient_norms:
            common.append(GRADIENT_NORMS)
        if args.config is None:
            common += spec.budgets.get("default", [])
        if args.quick:
            common += spec.budgets.get("quick", [])
        common += args.overrides
        base = args.config or packaged_config(DEMO_CONFIG)
        arms = [spec.arms[name] for name in names]
        runs = plan_runs(base, arms, seeds, out, common)
    except ConfigError as error:
        raise SystemExit(f"vlthinker ablate: {error}") from None

    print(f"ablation: {len(arms)} arm(s) × {len(seeds)} seed(s) → {out}")
    if not args.report_only:
        from vlthinker.train.run_folder import RunFolderError

        try:
            failed = train_all(runs, args)
        except (ConfigError, RunFolderError) as error:
            raise SystemExit(f"vlthinker ablate: {error}") from None
        if failed:
            raise SystemExit(f"vlthinker ablate: {failed} run(s) failed; rerun to resume them")
    finished = [run for run in runs if run_state(run.folder) == "done"]
    if not finished:
        raise SystemExit(f"vlthinker ablate: no finished run in {out}")
    if args.greedy:
        from vlthinker.ablation.greedy import validate_all

        validate_all([run.folder for run in finished], parallel=args.parallel)
    folders: dict[str, dict[int, Path]] = {}
    for run in finished:
        folders.setdefault(run.arm, {})[run.seed] = run.folder
    tasks = list(runs[0].config.data.tasks)
    summary = summarize(folders, tasks, spec.claims, {arm.name: arm.overrides for arm in arms})
    summary["base_config"] = str(base)
    summary["common_overrides"] = common
    summary["missing"] = [f"{run.arm}/seed{run.seed}" for run in runs if run not in finished]
    paths = write_outputs(summary, out)
    print((out / "ablation.md").read_text())
    for claim in summary["claims"]:
        print(verdict_line(claim))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def train_all(runs: list, args: argparse.Namespace) -> int:
    """Train the planned runs; returns how many failed."""
    from vlthinker.ablation.runner import run_in_subprocesses, run_sequentially

    if args.parallel == 1 and not args.launcher:
        run_sequentially(runs)
        return 0
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    outcomes = run_in_subprocesses(runs, args.parallel, gpus, args.launcher)
    return sum(outcome.status == "failed" for outcome in outcomes)
