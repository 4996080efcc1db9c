"""`vlthinker train [--config FILE] [--resume RUN_DIR] [key.sub=value ...]`."""

from __future__ import annotations

import argparse
import re
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
        help="continue a run from its last complete checkpoint (a finished run is left as it is)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in training.output_dir (by default a folder that holds a run is "
        "refused); files vlthinker did not write stay",
    )
    parser.add_argument(
        "--allow-changes",
        action="store_true",
        help="with --resume: accept overrides that change the method (e.g. "
        "algorithm.estimator, rollout.temperature); each change is recorded with its step in "
        "the run card. Without it such a resume is refused",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="config overrides, e.g. training.max_steps=5 algorithm.estimator=grpo",
    )
    parser.set_defaults(func=run_command)


_QUOTED_KEY = re.compile(r"config key '([^']+)'")
_LEADING_KEY = re.compile(r"^([a-z_]+(?:\.\w+)+)(?:\[\d+\])*[: (]")


def with_source(error: Exception, config_file: Path | None, overrides: list[str]) -> str:
    """``error`` prefixed with where its key was set: the command-line override that set it, or
    the config file (a key set in both is the override's)."""
    text = str(error)
    prefix = f"{config_file}: " if config_file is not None else None
    if prefix and text.startswith(prefix):
        text = text[len(prefix) :]
    match = _QUOTED_KEY.search(text) or _LEADING_KEY.match(text)
    key = getattr(error, "key", None) or (match.group(1) if match else None)
    if key:
        key = key.rstrip(":")
        for override in reversed(overrides):
            name = override.split("=", 1)[0].strip()
            # the override's key, a section it set (``foo.bar=1`` makes a section ``foo``) or
            # a value inside it
            if name and (key == name or key.startswith(f"{name}.") or name.startswith(f"{key}.")):
                return f"command-line override {override!r}: {text}"
    if config_file is not None and (key or (prefix and str(error).startswith(prefix))):
        return f"{config_file}: {text}"
    return text


def run_command(args: argparse.Namespace) -> int:
    from vlthinker.train.config import ConfigError, load_config
    from vlthinker.train.run import CONFIG_FILE, resume_config

    config_file = (
        args.resume / CONFIG_FILE if args.resume else args.config or packaged_config(DEMO_CONFIG)
    )
    try:
        if args.resume:
            if args.config:
                raise ConfigError("--resume reuses the run's own config.yaml; drop --config")
            if args.overwrite:
                raise ConfigError(
                    "--resume continues a run and --overwrite replaces it: choose one"
                )
            config = resume_config(args.resume, args.overrides)
        else:
            config = load_config(config_file, args.overrides)
    except ConfigError as error:
        message = with_source(error, config_file, args.overrides)
        raise SystemExit(f"vlthinker train: {message}") from None
    except FileNotFoundError as error:
        raise SystemExit(f"vlthinker train: {error}") from None
    from vlthinker.train.run import TrainDataError, train
    from vlthinker.train.run_folder import RunFolderError, write_failure

    allow_changes = bool(getattr(args, "allow_changes", False))
    output_dir = Path(args.resume or config.training.output_dir)
    try:
        result = train(
            config, resume=args.resume, overwrite=args.overwrite, allow_changes=allow_changes
        )
    except KeyboardInterrupt:
        raise SystemExit(interrupted_message(output_dir)) from None
    except ConfigError as error:
        message = with_source(error, config_file, args.overrides)
        raise SystemExit(f"vlthinker train: {message}") from None
    except (TrainDataError, RunFolderError) as error:
        raise SystemExit(f"vlthinker train: {error}") from None
    except (OSError, RuntimeError) as error:
        message = write_failure(error, Path(args.resume or config.training.output_dir))
        if message is None:
            raise
        raise SystemExit(f"vlthinker train: {message}") from None
    print(f"\nrun folder: {result.output_dir}")
    print(result.table)
    return 0


def interrupted_message(output_dir: Path) -> str:
    """The one line Ctrl-C leaves: the step reached, the checkpoint kept and the command that
    resumes from it (or that nothing was kept)."""
    from vlthinker.train.run_folder import latest_complete_checkpoint, read_metrics

    steps: list[int] = []
    if output_dir.is_dir():
        try:
            steps = [e["step"] for e in read_metrics(output_dir) if e.get("split") == "train"]
        except (ValueError, OSError):
            steps = []
    checkpoint = latest_complete_checkpoint(output_dir) if output_dir.is_dir() else None
    reached = f"interrupted at step {max(steps, default=0)}"
    if checkpoint is not None:
        return (
            f"vlthinker train: {reached}; checkpoint kept: {checkpoint.path} (step "
            f"{checkpoint.step}); resume with: vlthinker train --resume {output_dir}"
        )
    if steps:
        return (
            f"vlthinker train: {reached}, before the first checkpoint (none kept); "
            f"vlthinker train --resume {output_dir} starts it again from step 0"
        )
    return f"vlthinker train: {reached}, before the first step; nothing was kept"
