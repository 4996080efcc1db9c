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
from pathlib import Path

from vlthinker.evaluation.generators import BACKENDS

DEFAULT_OUT = "runs/eval"


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
        "--model",
        help="local checkpoint folder (a transformers save_pretrained folder; hub names are not "
        "downloaded); embedded:tiny_vlm is the shipped model",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
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
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="output folder")
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
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from vlthinker.evaluation.runner import run_eval
    from vlthinker.evaluation.specs import DataSpec

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
            out_dir=args.out,
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
            judge_run(judge, specs, args.out, result.summary, limit=args.limit)
        except JudgeError as error:
            raise SystemExit(f"vlthinker eval --judge: {error}") from None
    print(result.table())
    print(f"\nwritten: {args.out}/predictions.jsonl, results.md, results.json")
    return 0
