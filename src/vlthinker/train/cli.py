"""`vlthinker train [--config FILE] [--resume RUN_DIR] [key.sub=value ...]`."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

DEMO_CONFIG = "demo.yaml"


def packaged_config(name: str) -> Path:
    """A config shipped with the package (``configs/`` in the repository)."""
    return Path(str(resources.files("vlthinker") / "configs" / name))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="RL-train a VLM with G²RPO (no arguments: the CPU demo on the synthetic suite)",
        description="Multi-task G²RPO training on TRL. With no arguments: the CPU demo "
        "(configs/demo.yaml) from the shipped tiny checkpoint.",
    )
    parser.add_argument("--config", type=Path, help=f"run config YAML (default: {DEMO_CONFIG})")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run from its last complete checkpoint",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="config overrides, e.g. training.max_steps=5 algorithm.estimator=grpo",
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from vlthinker.train.config import ConfigError, load_config
    from vlthinker.train.run import resume_config, train

    try:
        if args.resume:
            if args.config:
                raise ConfigError("--resume reuses the run's own config.yaml; drop --config")
            config = resume_config(args.resume, args.overrides)
        else:
            config = load_config(args.config or packaged_config(DEMO_CONFIG), args.overrides)
    except (ConfigError, FileNotFoundError) as error:
        raise SystemExit(f"vlthinker train: {error}") from None
    result = train(config, resume=args.resume)
    print(f"\nrun folder: {result.output_dir}")
    print(result.table)
    return 0
