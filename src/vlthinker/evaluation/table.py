"""The results table: per-benchmark numbers grouped into the paper's six categories.

``summarize`` turns prediction rows (the lines of ``predictions.jsonl``, or
``Prediction.to_json()`` dicts) into a JSON-ready summary; ``markdown`` renders it. Every number
in the summary is recomputed from the rows alone, so a table can always be rebuilt from its
predictions file (``summarize(read_jsonl(path))``).

Per benchmark: the reported ``score`` (the benchmark's aggregate of per-item scores, in its
display unit: percent, OCRBench out of 1000), the sample count, the verifier's ``accuracy`` and
``format`` means, and the paper's two reference numbers. Per category: the mean of its
benchmarks in percent (OCRBench / 10), as the paper's ablation table averages them. Per task:
the means over every prediction of that task (the trainer's validation numbers).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vlthinker.evaluation.adapters.registry import CATEGORIES, OTHER, Benchmark, get_benchmark
from vlthinker.evaluation.aggregates import aggregate, mean, row_field, row_number

PAPER_COLUMNS = ("Qwen3-VL-8B-Instruct", "OpenVLThinkerV2")
JUDGE_MARK = "†"
JUDGE_FOOTNOTE = (
    f"{JUDGE_MARK} judge-free: the official protocol uses an LLM judge (answer extraction for "
    "MathVista, MathVerse and MathVision, grading for CharXiv); this number uses rule-based "
    "extraction from the <answer> tag and is not comparable to judged numbers such as the "
    "paper's. `vlthinker eval --judge URL --judge-model NAME` adds the judged number "
    "(docs/evaluation.md)."
)


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean: sample standard deviation / √n (0 below two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    centre = mean(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / (n - 1) / n)


def _lookup(name: str) -> Benchmark | None:
    try:
        return get_benchmark(name)
    except KeyError:
        return None


def task_means(rows: Iterable[Any]) -> dict[str, dict[str, float]]:
    """``{task: {"accuracy", "accuracy_se", "format", "score", "n"}}``: means over each task's rows.

    ``accuracy`` and ``format`` are the training verifiers' (the trainer's validation numbers);
    ``accuracy_se`` is the standard error of that mean over items (how far a second draw of items
    or samples could move it); ``score`` is the benchmark rule's per-item score; ``n`` the number
    of predictions.
    """
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[str(row_field(row, "task", "unknown"))].append(row)
    return {task: _task_summary(items) for task, items in sorted(grouped.items())}


def _task_summary(items: Sequence[Any]) -> dict[str, float]:
    accuracy = [row_number(r, "accuracy") for r in items]
    return {
        "accuracy": mean(accuracy),
        "accuracy_se": standard_error(accuracy),
        "format": mean([row_number(r, "format") for r in items]),
        "score": mean([row_number(r, "score") for r in items]),
        "n": len(items),
    }


#: How the results line names each number reading (``rewards.NUMBER_READINGS``).
NUMBER_READING_NOTES = {
    "official": "numbers read as the official scorer's float() (no thousands separators or "
    "currency signs)",
    "lenient": "numbers read leniently, as the training rewards (thousands separators and "
    "currency signs accepted)",
}


def number_note(readings: Sequence[str]) -> str:
    """``; numbers read …`` for the results line: which number reading(s) scored the rows."""
    notes = [NUMBER_READING_NOTES.get(r, f"numbers read {r!r}") for r in readings]
    return "".join(f"; {note}" for note in notes)


def _benchmark_entry(name: str, rows: Sequence[Any], seconds: float | None) -> dict[str, Any]:
    info = _lookup(name)
    readings = sorted({str(row_field(r, "numbers")) for r in rows} - {"None"})
    rule = info.aggregate if info else "mean"
    scale = info.scale if info else 100.0
    value, count = aggregate(rows, rule)
    subsets: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        if row_field(row, "subset") is not None:
            subsets[str(row_field(row, "subset"))].append(row)
    return {
        "name": name,
        "title": info.title if info else name,
        "category": info.category if info else OTHER,
        "metric": info.metric if info else "training verifier accuracy",
        "aggregate": rule,
        "n": count,
        "predictions": len(rows),
        "value": value,
        "score": value * scale,
        "unit": "/1000" if scale == 1000.0 else "%",
        "percent": value * 100.0,
        "accuracy": mean([row_number(r, "accuracy") for r in rows]),
        "format": mean([row_number(r, "format") for r in rows]),
        "judged": bool(info and info.judged),
        "note": info.note if info else "",
        "numbers": readings,
        "scored_by": (
            info.scored_by()
            if info
            else "the training verifiers (vlthinker.rewards); comparable: no paper number"
        )
        + number_note(readings),
        "paper": dict(zip(PAPER_COLUMNS, info.paper, strict=True)) if info and info.paper else None,
        "subsets": {
            key: mean([row_number(r, "score") for r in v]) * scale
            for key, v in sorted(subsets.items())
        },
        "seconds": seconds,
    }


def summarize(rows: Iterable[Any], timings: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The JSON summary of prediction rows: benchmarks, categories, tasks, footnotes."""
    rows = list(rows)
    timings = dict(timings or {})
    by_benchmark: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_benchmark[str(row_field(row, "benchmark", "records"))].append(row)

    def order(name: str) -> tuple[int, int, str]:
        info = _lookup(name)
        if info is None:
            return (len(CATEGORIES) + 1, 0, name)
        from vlthinker.evaluation.adapters.registry import all_benchmarks, category_order

        names = [b.name for b in all_benchmarks()]
        return (category_order(info.category), names.index(info.name), name)

    benchmarks = [
        _benchmark_entry(name, by_benchmark[name], timings.get(name))
        for name in sorted(by_benchmark, key=order)
    ]
    categories = []
    for category in (*CATEGORIES, OTHER):
        members = [b for b in benchmarks if b["category"] == category]
        if not members:
            continue
        entry: dict[str, Any] = {
            "name": category,
            "benchmarks": [b["name"] for b in members],
            "mean": mean([b["percent"] for b in members]),
            "n": sum(b["n"] for b in members),
        }
        if category != OTHER:
            expected = [b.name for b in _category_members(category)]
            entry["complete"] = all(name in entry["benchmarks"] for name in expected)
            known = [b for b in _category_members(category) if b.paper]
            if entry["complete"] and known:
                entry["paper"] = {
                    column: mean([_percent(b.paper[i], b) for b in known])
                    for i, column in enumerate(PAPER_COLUMNS)
                }
        categories.append(entry)
    footnotes = [JUDGE_FOOTNOTE] if any(b["judged"] for b in benchmarks) else []
    return {
        "benchmarks": benchmarks,
        "categories": categories,
        "tasks": task_means(rows),
        "n": len(rows),
        "timings": timings,
        "footnotes": footnotes,
    }


def _category_members(category: str) -> list[Benchmark]:
    from vlthinker.evaluation.adapters.registry import all_benchmarks

    return [b for b in all_benchmarks() if b.category == category]


def _percent(value: float, benchmark: Benchmark) -> float:
    return value * 100.0 / benchmark.scale


def _fmt(value: float | None, unit: str = "%") -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if unit == "/1000" else f"{value:.1f}"


def markdown(summary: Mapping[str, Any]) -> str:
    """The summary as markdown: the benchmark table (by category, with category means), the
    per-task table and the footnotes."""
    lines = ["# Evaluation results", ""]
    if summary.get("model"):
        lines.append(f"Model: `{summary['model']}`")
    settings = summary.get("settings")
    if settings:
        lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    if summary.get("model") or settings:
        lines.append("")
    header = (
        "| category | benchmark | metric | n | score | "
        + " | ".join(PAPER_COLUMNS)
        + " | accuracy | format | seconds |"
    )
    lines += [header, "|" + "---|" * 10]
    benchmarks = summary.get("benchmarks", [])
    for category in summary.get("categories", []):
        members = [b for b in benchmarks if b["category"] == category["name"]]
        for b in members:
            mark = JUDGE_MARK if b.get("judged") else ""
            paper = b.get("paper") or {}
            seconds = b.get("seconds")
            lines.append(
                f"| {category['name']} | {b['title']}{mark} | {b['metric']} | {b['n']} | "
                f"{_fmt(b['score'], b['unit'])}{' /1000' if b['unit'] == '/1000' else ''} | "
                + " | ".join(_fmt(paper.get(c), b["unit"]) for c in PAPER_COLUMNS)
                + f" | {b['accuracy'] * 100:.1f} | {b['format'] * 100:.1f} | "
                f"{'' if seconds is None else f'{seconds:.1f}'} |"
            )
            judged = b.get("judge")
            if judged:
                lines.append(
                    f"| {category['name']} | {b['title']} (judged: {judged['model']}) | "
                    f"{b['metric']} | {judged['n']} | {_fmt(judged['score'])} | "
                    + " | ".join(_fmt(paper.get(c), b["unit"]) for c in PAPER_COLUMNS)
                    + " | | | |"
                )
        if category["name"] != OTHER:
            complete = category.get("complete", False)
            paper = category.get("paper") or {}
            shown = len(category["benchmarks"])
            note = "" if complete else f" ({shown}/3 benchmarks)"
            lines.append(
                f"| **{category['name']} mean**{note} | | percent | {category['n']} | "
                f"**{_fmt(category['mean'])}** | "
                + " | ".join(_fmt(paper.get(c)) for c in PAPER_COLUMNS)
                + " | | | |"
            )
    tasks = summary.get("tasks", {})
    if tasks:
        lines += [
            "",
            "## Per task",
            "",
            "| task | n | accuracy | format | score |",
            "|---|---|---|---|---|",
        ]
        for task, values in tasks.items():
            lines.append(
                f"| {task} | {values['n']} | {values['accuracy'] * 100:.1f} | "
                f"{values['format'] * 100:.1f} | {values['score'] * 100:.1f} |"
            )
    lines += ["", *scoring_lines(benchmarks)]
    notes = [
        "score: the benchmark's own rule, in percent (OCRBench out of 1000); accuracy / format: "
        "the training verifiers' means, in percent. Category means are in percent (OCRBench / 10).",
        *summary.get("footnotes", []),
    ]
    lines += ["", *notes]
    return "\n".join(lines)


def scoring_lines(benchmarks: Sequence[Mapping[str, Any]]) -> list[str]:
    """``## How each number was scored``: per benchmark, the rule that scored it, the official
    rule it follows (repository and file) and whether the number is comparable with the
    paper's; a judged number adds the judge's line."""
    if not benchmarks:
        return []
    lines = ["## How each number was scored", ""]
    for b in benchmarks:
        lines.append(f"- {b['title']}: {b.get('scored_by') or b['metric']}")
        judged = b.get("judge")
        if judged:
            lines.append(
                f"- {b['title']} (judged): answers read by {judged['model']} at "
                f"{judged['endpoint']} following open-compass/VLMEvalKit's judged protocol "
                "(vlthinker/evaluation/judge.py); comparable: yes"
            )
    return lines


__all__ = [
    "JUDGE_FOOTNOTE",
    "aggregate",
    "markdown",
    "scoring_lines",
    "summarize",
    "task_means",
]
