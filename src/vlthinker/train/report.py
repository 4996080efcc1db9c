"""The end of a run: the per-task start-vs-end table (plots: :mod:`vlthinker.train.plots`)."""

from __future__ import annotations

import math
from typing import Any

BAND_NOTE = (
    "± 2 s.e.: two standard errors of the change, paired: from the spread of the per-item "
    "differences between the two passes over the same items (each item's score is the mean of "
    "its samples); a change inside its band is not evidence either way."
)
UNPAIRED_NOTE = (
    "± 2 s.e.: two standard errors of the change from each pass's spread of item scores, the "
    "passes taken as independent (no per-item scores were recorded), so the band errs wide."
)


def paired_change(start: dict[str, float], end: dict[str, float]) -> tuple[float, float, int]:
    """Mean change of the items scored at both passes, its standard error and the item count.

    Paired: the standard error is that of the per-item differences ``end_i − start_i``
    (sample standard deviation over √n), which removes the items' own spread of difficulty —
    the same items measured twice. ``n < 2`` gives an infinite standard error.
    """
    common = sorted(start.keys() & end.keys())
    n = len(common)
    if n == 0:
        return math.nan, math.inf, 0
    diffs = [end[k] - start[k] for k in common]
    mean = sum(diffs) / n
    if n < 2:
        return mean, math.inf, n
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(variance / n), n


def change_band(start_se: float | None, end_se: float | None) -> float | None:
    """Two standard errors of an end − start change with the passes taken as independent (the
    fallback when no per-item scores exist). None when a pass did not record its error."""
    if start_se is None or end_se is None:
        return None
    return 2.0 * math.sqrt(start_se**2 + end_se**2)


def mean_change_band(task_ses: list[float]) -> float:
    """Two standard errors of the mean over T tasks of their changes; the tasks' items are
    disjoint, so the variance of the mean is ``Σ se_t² / T²``."""
    return 2.0 * math.sqrt(sum(se**2 for se in task_ses)) / len(task_ses)


def task_items(items: dict[str, tuple[str, float]], task: str) -> dict[str, float]:
    return {key: score for key, (item_task, score) in items.items() if item_task == task}


def final_table(
    history: list[dict[str, Any]],
    tasks: list[str],
    items: dict[int, dict[str, tuple[str, float]]] | None = None,
) -> str:
    """Markdown table: per task, validation accuracy and format at the first and last pass, and
    the change with its two-standard-error band — paired over the same items
    (:func:`paired_change`) where per-item scores were recorded, else :func:`change_band`."""
    if not history:
        return "(no validation pass recorded)"
    start, end = history[0], history[-1]
    items = items or {}
    paired = start["step"] in items and end["step"] in items
    lines = [
        f"| task | accuracy @ step {start['step']} | accuracy @ step {end['step']} | Δ accuracy "
        f"| ± 2 s.e. | format @ step {start['step']} | format @ step {end['step']} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for task in tasks:
        a0, a1 = start.get(f"{task}/accuracy"), end.get(f"{task}/accuracy")
        f0, f1 = start.get(f"{task}/format"), end.get(f"{task}/format")
        if a0 is None or a1 is None:
            continue
        if paired:
            _, se, _ = paired_change(
                task_items(items[start["step"]], task), task_items(items[end["step"]], task)
            )
        else:
            band = change_band(start.get(f"{task}/accuracy_se"), end.get(f"{task}/accuracy_se"))
            se = None if band is None else band / 2.0
        band = None if se is None else 2.0 * se
        rows.append((a0, a1, f0, f1, se))
        lines.append(
            f"| {task} | {a0:.3f} | {a1:.3f} | {a1 - a0:+.3f} | {_band(band)} "
            f"| {_fmt(f0)} | {_fmt(f1)} |"
        )
    if rows:
        mean = [sum(r[i] or 0.0 for r in rows) / len(rows) for i in range(4)]
        ses = [r[4] for r in rows if r[4] is not None]
        mean_band = mean_change_band(ses) if len(ses) == len(rows) else None
        lines.append(
            f"| **mean** | {mean[0]:.3f} | {mean[1]:.3f} | {mean[1] - mean[0]:+.3f} "
            f"| {_band(mean_band)} | {mean[2]:.3f} | {mean[3]:.3f} |"
        )
        if mean_band is not None:
            lines += ["", BAND_NOTE if paired else UNPAIRED_NOTE]
    return "\n".join(lines)


def _band(value: float | None) -> str:
    return "—" if value is None else f"±{value:.3f}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
