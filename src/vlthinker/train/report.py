"""The end of a run: the per-task start-vs-end table and PNG plots over steps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vlthinker.train.run_folder import read_metrics

PLOTTED = (
    ("reward", "reward (weighted)"),
    ("length_tokens", "response length (tokens)"),
    ("entropy", "policy entropy"),
    ("accuracy", "training accuracy"),
)


BAND_NOTE = (
    "± 2 s.e.: two standard errors of the change, from the spread of item scores at each pass "
    "(the passes taken as independent, so the band errs wide); a change inside it is not "
    "evidence either way."
)


def change_band(start_se: float | None, end_se: float | None) -> float | None:
    """Two standard errors of an end − start accuracy change, the passes taken as independent.

    Both passes score the same items, whose outcomes are positively correlated, so the true
    band is narrower: this one errs wide. None when a pass did not record its standard error.
    """
    if start_se is None or end_se is None:
        return None
    return 2.0 * math.sqrt(start_se**2 + end_se**2)


def final_table(history: list[dict[str, Any]], tasks: list[str]) -> str:
    """Markdown table: per task, validation accuracy and format at the first and last pass, and
    the change with its two-standard-error band (:func:`change_band`)."""
    if not history:
        return "(no validation pass recorded)"
    start, end = history[0], history[-1]
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
        band = change_band(start.get(f"{task}/accuracy_se"), end.get(f"{task}/accuracy_se"))
        rows.append((a0, a1, f0, f1, band))
        lines.append(
            f"| {task} | {a0:.3f} | {a1:.3f} | {a1 - a0:+.3f} | {_band(band)} "
            f"| {_fmt(f0)} | {_fmt(f1)} |"
        )
    if rows:
        mean = [sum(r[i] or 0.0 for r in rows) / len(rows) for i in range(4)]
        bands = [r[4] for r in rows if r[4] is not None]
        # The mean of independent changes: its variance is the sum of theirs over T².
        mean_band = (
            math.sqrt(sum(b**2 for b in bands)) / len(rows) if len(bands) == len(rows) else None
        )
        lines.append(
            f"| **mean** | {mean[0]:.3f} | {mean[1]:.3f} | {mean[1] - mean[0]:+.3f} "
            f"| {_band(mean_band)} | {mean[2]:.3f} | {mean[3]:.3f} |"
        )
        if mean_band is not None:
            lines += ["", BAND_NOTE]
    return "\n".join(lines)


def _band(value: float | None) -> str:
    return "—" if value is None else f"±{value:.3f}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def write_plots(output_dir: Path, tasks: list[str]) -> list[Path]:
    """One PNG per quantity, a line per task, over training steps (plus validation accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = read_metrics(output_dir)
    train = [m for m in metrics if m.get("split") == "train"]
    validation = [m for m in metrics if m.get("split") == "validation"]
    panels = [(key, title, train) for key, title in PLOTTED]
    panels.append(("accuracy", "validation accuracy", validation))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for axis, (key, title, entries) in zip(axes, panels, strict=True):
        for task in tasks:
            points = [(m["step"], m[f"{task}/{key}"]) for m in entries if f"{task}/{key}" in m]
            if points:
                steps, values = zip(*points, strict=True)
                axis.plot(steps, values, marker="o" if len(points) < 12 else None, label=task)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    path = output_dir / "plots.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [path]
