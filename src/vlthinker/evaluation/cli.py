"""`vlthinker eval --model PATH --data SPEC... [--out DIR]`: score a checkpoint on benchmarks.

``SPEC`` is ``name=path`` (one of the 18 benchmarks, its published files saved under ``path``),
``synthetic`` (the held-out synthetic suite, drawn in memory) or a path to records in
``vlthinker.data``'s own format. Writes ``predictions.jsonl`` (every prediction with its
score), ``results.md`` and ``results.json`` under ``--out``; a rerun with the same ``--out``
skips the items already scored.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlthinker.configuration import ConfigError, flat_sections, flat_settings, load_sections
from vlthinker.evaluation.generators import BACKENDS

DEFAULT_OUT = "runs/eval"


@dataclass
class EvalSettings:
    """Every setting of ``vlthinker eval`` (one per flag), with its default."""

    model: str | None = None
    data: list[str] = field(default_factory=list)
    limit: int | None = None
    allow_absolute_images: bool = False
    plugins: list[str] = field(default_factory=list)
    batch_size: int = 8
    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    backend: str = "auto"
    think_tag: str = "think"
    out: str = DEFAULT_OUT
    no_progress: bool = False
    judge: str | None = None
    judge_model: str = "gpt-4o"
    judge_key_env: str = "OPENAI_API_KEY"


#: Where each setting lives in an eval config file; its flag is ``--<setting>`` (``_`` → ``-``).
EVAL_KEYS: dict[str, str] = {
    "model": "model.path",
    "data": "data.specs",
    "limit": "data.limit",
    "allow_absolute_images": "data.allow_absolute_images",
    "plugins": "data.plugins",
    "batch_size": "generation.batch_size",
    "max_new_tokens": "generation.max_new_tokens",
    "temperature": "generation.temperature",
    "top_p": "generation.top_p",
    "backend": "generation.backend",
    "think_tag": "generation.think_tag",
    "out": "output.dir",
    "no_progress": "output.no_progress",
    "judge": "judge.url",
    "judge_model": "judge.model",
    "judge_key_env": "judge.key_env",
}

#: The sectioned form of :class:`EvalSettings` that ``--config`` reads.
EvalSections = flat_sections(EvalSettings, EVAL_KEYS, "Eval")


def load_eval_settings(
    path: str | Path | None, flags: dict[str, object] | None = None
) -> EvalSettings:
    """:class:`EvalSettings` from an eval config file (or the defaults), then the flags given on
    the command line, through the loader ``vlthinker train`` uses (keys and types checked)."""
    pairs = [(EVAL_KEYS[name], value) for name, value in (flags or {}).items()]
    return flat_settings(EvalSettings, EVAL_KEYS, load_sections(EvalSections, path, pairs))


def _benchmark_list() -> str:
    from vlthinker.evaluation.adapters import all_benchmarks
    from vlthinker.evaluation.adapters.registry import category_order

    chosen = [b for b in all_benchmarks() if b.name != "records"]
    ordered = sorted(chosen, key=lambda b: (category_order(b.category), chosen.index(b)))
    return ", ".join(b.name for b in ordered)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a checkpoint on benchmarks (local files) and the synthetic suite",
        description="Generate, score with each benchmark's own rule and write a results table. "
        "Resumable: items already in OUT/predictions.jsonl are not generated again.",
        epilog=f"benchmarks: {_benchmark_list()}. See docs/evaluation.md for file layouts.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="eval config YAML (sections model, data, generation, output, judge: see the README); "
        "flags given on the command line override it",
    )
    parser.add_argument(
        "--model",
        help="local checkpoint folder (a transformers save_pretrained folder; hub names are not "
        "downloaded); embedded:tiny_vlm is the shipped model",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        metavar="SPEC",
        help="name=path (e.g. chartqa=/data/ChartQA), 'synthetic', or a record-format path",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per batch (8)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=1024, help="response token budget (1024)"
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1] (1)")
    parser.add_argument("--limit", type=int, help="first N items of each benchmark")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: vLLM when installed and a GPU is present, else Hugging Face generate",
    )
    parser.add_argument(
        "--think-tag", default="think", help="reasoning tag the prompts ask for (default think)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--plugins",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="modules or .py files to import first: your own benchmarks, rules, answer types "
        "(docs/extending.md)",
    )
    parser.add_argument(
        "--allow-absolute-images",
        action="store_true",
        help="accept image paths outside a record file's folder",
    )
    parser.add_argument(
        "--judge",
        metavar="URL",
        help="OpenAI-compatible endpoint (e.g. http://localhost:8000/v1) whose model reads the "
        "answers of MathVista, MathVerse, MathVision and CharXiv as their official protocols do; "
        "the judged numbers are added beside the judge-free ones",
    )
    parser.add_argument("--judge-model", default="gpt-4o", help="judge model name (gpt-4o)")
    parser.add_argument(
        "--judge-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the judge's API key (default OPENAI_API_KEY)",
    )
    for action in parser._actions:
        # A flag not given leaves the config file's value (or EvalSettings' default) in place.
        if action.dest in EVAL_KEYS:
            action.default = argparse.SUPPRESS
    parser.set_defaults(func=run_command)


def settings_from_args(args: argparse.Namespace) -> argparse.Namespace:
    """The flags given, over ``--config``'s file, over the defaults, as one namespace."""
    given = {name: getattr(args, name) for name in EVAL_KEYS if hasattr(args, name)}
    try:
        settings = load_eval_settings(getattr(args, "config", None), given)
    except ConfigError as error:
        raise SystemExit(f"vlthinker eval: {error}") from None
    if not settings.data:
        raise SystemExit(
            "vlthinker eval: nothing to score: give --data SPEC ... (or data.specs in --config)"
        )
    return argparse.Namespace(**asdict(settings))


def run_command(args: argparse.Namespace) -> int:
    from vlthinker.evaluation.runner import run_eval
    from vlthinker.evaluation.specs import DataSpec

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = settings_from_args(args)
    if args.backend not in BACKENDS:
        raise SystemExit(
            f"vlthinker eval: generation.backend (--backend) {args.backend!r} is not one of "
            f"{', '.join(BACKENDS)}"
        )
    if args.batch_size < 1:
        raise SystemExit("vlthinker eval: --batch-size must be at least 1")
    if args.max_new_tokens < 1:
        raise SystemExit("vlthinker eval: --max-new-tokens must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise SystemExit("vlthinker eval: --limit must be at least 1")
    if args.temperature < 0:
        raise SystemExit("vlthinker eval: --temperature must not be negative")
    if not 0 < args.top_p <= 1:
        raise SystemExit(f"vlthinker eval: --top-p must be in (0, 1], got {args.top_p:g}")
    if args.allow_absolute_images:
        import os

        from vlthinker.data.readers import ALLOW_ABSOLUTE_ENV

        os.environ[ALLOW_ABSOLUTE_ENV] = "1"
    from vlthinker.plugins import PluginError, import_plugins

    try:
        import_plugins(args.plugins, Path.cwd())
    except PluginError as error:
        raise SystemExit(f"vlthinker eval: {error}") from None
    try:
        specs = [DataSpec.parse(text) for text in args.data]
    except (KeyError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"vlthinker eval: {error}") from None
    from vlthinker.data import PromptConfig

    try:
        result = run_eval(
            specs,
            out_dir=Path(args.out),
            model_path=args.model,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            limit=args.limit,
            prompt_config=PromptConfig(think_tag=args.think_tag),
            backend=args.backend,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"vlthinker eval: {error}") from None
    if args.judge:
        from vlthinker.evaluation.judge import JudgeError, judge_from_args, judge_run

        judge = judge_from_args(args.judge, args.judge_model, args.judge_key_env)
        try:
            judge_run(judge, specs, Path(args.out), result.summary, limit=args.limit)
        except JudgeError as error:
            raise SystemExit(f"vlthinker eval --judge: {error}") from None
    print(result.table())
    print(f"\nwritten: {args.out}/predictions.jsonl, results.md, results.json")
    return 0
