"""`vlthinker data synth` and `vlthinker data check`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value:g}")
    return value


def _image_side(text: str) -> int:
    value = int(text)
    if value < 32:
        raise argparse.ArgumentTypeError(f"must be at least 32 pixels, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from vlthinker.data.records import TASKS

    data = subparsers.add_parser("data", help="write the synthetic suite or check a data set")
    actions = data.add_subparsers(dest="data_command", required=True)

    synth = actions.add_parser("synth", help="write synthetic items in the reference record format")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument(
        "--n", type=_positive, default=600, help="number of items, at least 1 (tasks cycle)"
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.add_argument(
        "--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), help="tasks to draw"
    )
    synth.add_argument("--difficulty", type=_unit_interval, default=0.0, help="0 (easy) … 1 (hard)")
    synth.add_argument(
        "--image-size", type=_image_side, default=112, help="image side in pixels (≥ 32)"
    )
    synth.set_defaults(func=run_synth)

    check = actions.add_parser(
        "check",
        help="validate a data set; print per-task counts and problems",
        description="Read every record and decode every image. Exits 1 if any record is "
        "unusable, an id repeats, a task is unknown, or there are no records.",
    )
    check.add_argument("path", type=Path, help="data file, folder or saved `datasets` folder")
    check.add_argument("--split", default=None, help="split of a saved `datasets` DatasetDict")
    check.add_argument(
        "--max-problems", type=_non_negative, default=20, help="problems to print (default 20)"
    )
    check.add_argument(
        "--allow-absolute-images",
        action="store_true",
        help="accept image paths outside the data file's folder",
    )
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(func=run_check)


def run_synth(args: argparse.Namespace) -> int:
    from vlthinker.data import synthetic
    from vlthinker.data.writer import write_records

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


def check_records(
    path: Path,
    split: str | None = None,
    *,
    progress: bool = False,
    allow_absolute_images: bool | None = None,
) -> tuple[list, list]:
    """Load every record (skipping bad ones) and decode every image; all problems found.

    Problems also cover repeated ids (``eval`` refuses them) and tasks outside the known six.
    """
    from tqdm.auto import tqdm

    from vlthinker.data.readers import LoadReport, iter_records
    from vlthinker.data.records import TASKS, RecordError

    report = LoadReport()
    problems: list[RecordError] = []
    good = []
    first_seen: dict[str, str] = {}
    # The reader's own "skipped N bad record(s)" warning would repeat every problem printed here.
    reader_log = logging.getLogger("vlthinker.data.readers")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    records = iter_records(
        path,
        on_bad_record="skip",
        split=split,
        report=report,
        check_images=False,
        allow_absolute_images=allow_absolute_images,
    )
    bar = tqdm(
        desc=f"checking {path.name}",
        unit="record",
        disable=not progress,
        file=sys.stderr,
        delay=1.0,  # shown only when the check takes more than a second
    )
    try:
        for record in records:
            bar.update(1)
            try:
                record.load_images()
            except RecordError as error:
                problems.append(error)
                continue
            if record.task not in TASKS:
                problems.append(
                    RecordError(
                        record.origin,
                        "task",
                        f"unknown task {record.task!r}; known: {list(TASKS)}",
                    )
                )
                continue
            previous = first_seen.setdefault(str(record.id), record.origin)
            if previous != record.origin:
                problems.append(
                    RecordError(record.origin, "id", f"id {record.id!r} repeats that of {previous}")
                )
            good.append(record)
    finally:
        bar.close()
        reader_log.setLevel(level)
    return good, [*report.problems, *problems]


def run_check(args: argparse.Namespace) -> int:
    from vlthinker.data.records import RecordError

    try:
        good, problems = check_records(
            args.path,
            args.split,
            progress=not args.no_progress,
            allow_absolute_images=True if args.allow_absolute_images else None,
        )
    except (RecordError, FileNotFoundError, ValueError) as error:
        print(f"vlthinker data check: {error}", file=sys.stderr)
        return 1
    counts = Counter((r.task, r.answer_type) for r in good)
    print(f"{args.path}: {len(good)} usable record(s), {len(problems)} problem(s)")
    print(f"{'task':<24}{'answer type':<18}{'records':>8}")
    for (task, answer_type), count in sorted(counts.items()):
        print(f"{task:<24}{answer_type:<18}{count:>8}")
    for problem in problems[: args.max_problems]:
        print(f"  problem: {problem}")
    if len(problems) > args.max_problems:
        print(f"  … and {len(problems) - args.max_problems} more")
    if not good and not problems:
        print(f"  problem: {args.path} holds no records")
        return 1
    return 1 if problems or not good else 0
