"""The ``vlthinker`` command line: one sub-command per pipeline stage.

Each stage module exposes ``add_parser(subparsers)`` that registers its sub-command and sets
``func`` on the parsed namespace; imports stay lazy so ``vlthinker --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (module, registers) — the order is the pipeline's: data → sft → train → eval.
_STAGES: tuple[str, ...] = (
    "vlthinker.data.cli",
    "vlthinker.sft",
    "vlthinker.train.cli",
    "vlthinker.ablation.cli",
    "vlthinker.evaluation.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlthinker",
        description="Train vision-language reasoning models with G²RPO (OpenVLThinkerV2 recipe).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _STAGES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # A stage that is not built yet must not break the others.
            if error.name and module_name.startswith(error.name):
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # As under `python -m vlthinker.cli`: the current folder is importable, so a config's
    # `plugins: [my_module]` finds the user's module from the `vlthinker` script too.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = build_parser()
    if not argv:
        # The main job: ``vlthinker`` alone behaves like ``vlthinker train`` (the CPU demo).
        argv = ["train"]
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # a stage without its own message: one line, no traceback
        print(f"vlthinker {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
