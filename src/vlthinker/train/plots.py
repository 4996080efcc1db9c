"""``plots.png``: the run's per-task training curves and validation accuracy over steps.

At a few prompts per task per step a step's training numbers are noisy, so each training curve is
drawn twice: the raw values as a faint line and, over them, their exponential moving average with
TensorBoard's debiasing (:func:`ema_smooth`), which is what TensorBoard's smoothing slider draws.
Validation accuracy (a few passes, each over many items) is drawn as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from vlthinker.outputs import PLOTS_FILE
from vlthinker.train.run_folder import read_metrics

PLOTTED = (
    ("reward", "reward (weighted)"),
    ("length_tokens", "response length (tokens)"),
    ("entropy", "policy entropy"),
    ("accuracy", "training accuracy"),
)
#: The EMA weight of the training curves: TensorBoard's slider at 0.8 (its default, 0.6, still
#: leaves the demo's 40 steps of 4 prompts per task jagged); about the last 5 steps' mean.
SMOOTHING = 0.8
#: Curves with fewer points than this are drawn raw only (a few points need no smoothing).
SMOOTH_FROM = 5


def ema_smooth(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average of weight ``weight`` on the last
    value, debiased so the first points are not pulled towards 0 (the first value is kept as
    it is). A non-finite value does not enter the average; its place repeats the last one."""
    if not 0 <= weight < 1:
        raise ValueError(f"weight must be in [0, 1), got {weight}")
    smoothed: list[float] = []
    last, count = 0.0, 0
    for value in values:
        if not math.isfinite(value):
            smoothed.append(smoothed[-1] if smoothed else value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        smoothed.append(last / (1 - weight**count))
    return smoothed


def write_plots(output_dir: Path, tasks: list[str]) -> list[Path]:
    """``plots.png``: a 2 × 3 grid (about 1400 × 800 px) of the :data:`PLOTTED` training
    quantities and validation accuracy over steps, a line per task. Each task keeps one colour in
    every panel and the legend is shared (in the grid's last cell); steps are whole numbers. A
    training curve of :data:`SMOOTH_FROM` points or more is its faint raw line under its
    smoothed one (:func:`ema_smooth`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    metrics = read_metrics(output_dir)
    train = [m for m in metrics if m.get("split") == "train"]
    validation = [m for m in metrics if m.get("split") == "validation"]
    panels = [(key, title, train, True) for key, title in PLOTTED]
    panels.append(("accuracy", "validation accuracy", validation, False))
    palette = plt.get_cmap("tab10").colors
    colours = {task: palette[i % len(palette)] for i, task in enumerate(tasks)}
    columns = 3
    rows = max(2, math.ceil((len(panels) + 1) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(14, 4 * rows), squeeze=False)
    axes = list(grid.flat)
    plotted: set[str] = set()
    smoothed_any = False
    for axis, (key, title, entries, smooth) in zip(axes, panels, strict=False):
        drawn: list[int] = []
        for task in tasks:
            points = [(m["step"], m[f"{task}/{key}"]) for m in entries if f"{task}/{key}" in m]
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            colour = colours[task]
            if smooth and len(points) >= SMOOTH_FROM:
                axis.plot(steps, values, color=colour, alpha=0.25, linewidth=1.0)
                axis.plot(steps, ema_smooth(values), color=colour, linewidth=1.8, label=task)
                smoothed_any = True
            else:
                marker = "o" if len(points) < 12 else None
                axis.plot(steps, values, marker=marker, color=colour, label=task)
            plotted.add(task)
            drawn += steps
        if drawn and max(drawn) - min(drawn) < 2:  # room for whole-number ticks
            axis.set_xlim(min(drawn) - 1, max(drawn) + 1)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    legend_axis = axes[len(panels)]
    for axis in axes[len(panels) :]:
        axis.axis("off")
    handles = [
        Line2D([], [], color=colours[task], marker="o", label=task)
        for task in tasks
        if task in plotted
    ]
    if handles:
        legend_axis.legend(
            handles=handles,
            title="task",
            loc="center",
            fontsize=11,
            frameon=False,
        )
        if smoothed_any:
            legend_axis.text(
                0.5,
                0.02,
                f"training curves: faint = per step, bold = smoothed\n"
                f"(exponential moving average, weight {SMOOTHING}, as TensorBoard)",
                ha="center",
                va="bottom",
                fontsize=9,
                transform=legend_axis.transAxes,
            )
    figure.tight_layout()
    path = output_dir / PLOTS_FILE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return [path]
