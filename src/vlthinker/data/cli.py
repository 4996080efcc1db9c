"""`vlthinker data synth` and `vlthinker data check`."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from vlthinker.data import synthetic
from vlthinker.data.readers import LoadReport, load_records
from vlthinker.data.records import TASKS, RecordError
from vlthinker.data.writer import write_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="write the synthetic suite or check a data set")
    actions = data.add_subparsers(dest="data_command", required=True)

    synth = actions.add_parser("synth", help="write synthetic items in the reference record format")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--n", type=int, default=600, help="number of items (tasks cycle)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    synth.add_argument("--difficulty", type=float, default=0.0, help="0 (easy) … 1 (hard)")
    synth.add_argument("--image-size", type=int, default=112)
    synth.set_defaults(func=run_synth)

    check = actions.add_parser(
        "check", help="validate a data set; print per-task counts and problems"
    )
    check.add_argument("path", type=Path)
    check.add_argument("--split", default=None, help="split of a saved `datasets` DatasetDict")
    check.add_argument("--max-problems", type=int, default=20)
    check.set_defaults(func=run_check)


def run_synth(args: argparse.Namespace) -> int:
    records = synthetic.generate(
        args.n,
        seed=args.seed,
        tasks=args.tasks,
        difficulty=args.difficulty,
        image_size=args.image_size,
    )
    path = write_records(records, args.out)
    counts = Counter(r.task for r in records)
    print(f"wrote {len(records)} records to {path} ({dict(sorted(counts.items()))})")
    return 0


def check_records(path: Path, split: str | None = None) -> tuple[list, list[RecordError]]:
    """Load every record (skipping bad ones) and decode every image; all problems found."""
    report = LoadReport()
    records = load_records(path, on_bad_record="skip", split=split, report=report)
    problems = list(report.problems)
    good = []
    for record in records:
        try:
            record.load_images()
        except RecordError as error:
            problems.append(error)
        else:
            good.append(record)
    return good, problems


def run_check(args: argparse.Namespace) -> int:
    good, problems = check_records(args.path, args.split)
    counts = Counter((r.task, r.answer_type) for r in good)
    print(f"{args.path}: {len(good)} usable record(s), {len(problems)} problem(s)")
    print(f"{'task':<24}{'answer type':<18}{'records':>8}")
    for (task, answer_type), count in sorted(counts.items()):
        print(f"{task:<24}{answer_type:<18}{count:>8}")
    for problem in problems[: args.max_problems]:
        print(f"  problem: {problem}")
    if len(problems) > args.max_problems:
        print(f"  … and {len(problems) - args.max_problems} more")
    return 1 if problems else 0
