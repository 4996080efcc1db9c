"""The ablation's numbers: per arm × task the change in validation accuracy with its band, the
verdict lines between arms, the gradient-equity ratios; written as ``ablation.md``,
``ablation.png`` and ``ablation.json``.

Every band is ± 2 standard errors. Within a seed a change is paired over the same validation items
(:func:`vlthinker.train.report.paired_change`); across seeds the estimate is the mean of the seed
estimates and its standard error combines the within-seed ones (:func:`combine_seeds`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlthinker.ablation.plan import Claim
from vlthinker.train.gradient_equity import norm_ratio
from vlthinker.train.report import paired_change, task_items
from vlthinker.train.run_folder import read_metrics, read_validation_items

MARKDOWN_FILE = "ablation.md"
PLOT_FILE = "ablation.png"
JSON_FILE = "ablation.json"


@dataclass(frozen=True)
class Estimate:
    """A mean change and its standard error (``n``: items, or seeds × items, behind it)."""

    mean: float
    se: float
    n: int = 0

    @property
    def band(self) -> float:
        return 2.0 * self.se

    def as_dict(self) -> dict[str, Any]:
        return {"change": self.mean, "se": self.se, "band": self.band, "n": self.n}


# ------------------------------------------------------------------ the arithmetic
def combine_seeds(estimates: Sequence[Estimate]) -> Estimate:
    """Across S seeds: the mean of the seed estimates, with standard error ``√(Σ_s se_s²) / S``.

    This is the standard error of a mean of S independent estimates whose own errors are the
    within-seed (item-sampling) ones: it measures how precisely the validation items pin down
    each seed's change, and it does not include the run-to-run spread of training itself, which
    two or three seeds cannot estimate reliably (:func:`between_seed_se` reports that spread
    separately, in ``ablation.json``). A seed with an infinite error makes the result infinite.
    """
    return _mean_of_independent(estimates)


def _mean_of_independent(estimates: Sequence[Estimate]) -> Estimate:
    """The mean of independent estimates, standard error ``√(Σ se²) / count``."""
    if not estimates:
        return Estimate(math.nan, math.inf, 0)
    count = len(estimates)
    mean = sum(e.mean for e in estimates) / count
    se = math.sqrt(sum(e.se**2 for e in estimates)) / count
    return Estimate(mean, se, sum(e.n for e in estimates))


def between_seed_se(means: Sequence[float]) -> float | None:
    """The standard error of the mean from the seeds' spread, ``sd(means) / √S`` (sample standard
    deviation); None for fewer than two seeds."""
    if len(means) < 2:
        return None
    mean = sum(means) / len(means)
    variance = sum((m - mean) ** 2 for m in means) / (len(means) - 1)
    return math.sqrt(variance / len(means))


def mean_over_tasks(estimates: Sequence[Estimate]) -> Estimate:
    """The mean of T tasks' changes, standard error ``√(Σ_t se_t²) / T`` (the tasks' validation
    items are disjoint, so their errors are independent; as ``report.mean_change_band``)."""
    return _mean_of_independent(estimates)


def worst_task(per_task: dict[str, Estimate]) -> tuple[str, Estimate] | None:
    """The task with the lowest mean change (ties: the first in order); None for no tasks."""
    finite = [(task, e) for task, e in per_task.items() if e.mean == e.mean]
    if not finite:
        return None
    return min(finite, key=lambda pair: pair[1].mean)


# ------------------------------------------------------------------ one run's numbers
def first_last_items(
    folder: Path,
) -> tuple[int, int, dict[str, tuple[str, float]], dict[str, tuple[str, float]]] | None:
    """The first and last validation pass of a run: their steps and per-item scores."""
    passes = read_validation_items(folder)
    if len(passes) < 2:
        return None
    first, last = min(passes), max(passes)
    return first, last, passes[first], passes[last]


def seed_task_changes(folder: Path, tasks: Sequence[str]) -> dict[str, Estimate]:
    """Per task, the change in validation accuracy from a run's first to its last pass, paired
    over its items (:func:`~vlthinker.train.report.paired_change`)."""
    found = first_last_items(folder)
    if found is None:
        return {}
    _, _, start, end = found
    changes = {}
    for task in tasks:
        mean, se, n = paired_change(task_items(start, task), task_items(end, task))
        if n:
            changes[task] = Estimate(mean, se, n)
    return changes


def item_changes(folder: Path, task: str) -> dict[str, float]:
    """Per validation item of ``task``, its last-pass minus first-pass score."""
    found = first_last_items(folder)
    if found is None:
        return {}
    _, _, start, end = found
    first, last = task_items(start, task), task_items(end, task)
    return {key: last[key] - first[key] for key in first.keys() & last.keys()}


def seed_task_difference(arm_folder: Path, baseline_folder: Path, task: str) -> Estimate | None:
    """One seed's difference between two arms' changes on ``task``, paired by item: the mean of
    ``Δ_arm,i − Δ_baseline,i`` over the items both scored, with its standard error (both arms of
    one seed validate on the same items, so item difficulty cancels)."""
    baseline, arm = item_changes(baseline_folder, task), item_changes(arm_folder, task)
    mean, se, n = paired_change(baseline, arm)
    return Estimate(mean, se, n) if n else None


def validation_curves(folder: Path, tasks: Sequence[str]) -> dict[str, dict[int, float]]:
    """Per task, validation accuracy by step (from ``metrics.jsonl``)."""
    curves: dict[str, dict[int, float]] = {task: {} for task in tasks}
    for entry in read_metrics(folder):
        if entry.get("split") != "validation":
            continue
        for task in tasks:
            value = entry.get(f"{task}/accuracy")
            if value is not None:
                curves[task][int(entry["step"])] = float(value)
    return curves


def gradient_norms(folder: Path, tasks: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Per task, the logged ``grad_norm`` and ``grad_share`` of every training step."""
    found: dict[str, dict[str, list[float]]] = {
        t: {"grad_norm": [], "grad_share": []} for t in tasks
    }
    for entry in read_metrics(folder):
        if entry.get("split") != "train":
            continue
        for task in tasks:
            for key in ("grad_norm", "grad_share"):
                value = entry.get(f"{task}/{key}")
                if isinstance(value, int | float) and value == value:
                    found[task][key].append(float(value))
    return found


# ------------------------------------------------------------------ the summary
def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_arm(
    folders: dict[int, Path], tasks: Sequence[str], overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """One arm's numbers across its seeds' run folders (seed → folder)."""
    seeds = {seed: seed_task_changes(folder, tasks) for seed, folder in folders.items()}
    per_task: dict[str, Estimate] = {}
    tasks_out: dict[str, Any] = {}
    for task in tasks:
        found = [changes[task] for changes in seeds.values() if task in changes]
        if not found or len(found) < len(seeds):
            continue
        per_task[task] = combine_seeds(found)
        tasks_out[task] = {
            **per_task[task].as_dict(),
            "between_seed_se": between_seed_se([e.mean for e in found]),
        }
    worst = worst_task(per_task)
    norms: dict[str, list[float]] = {task: [] for task in tasks}
    shares: dict[str, list[float]] = {task: [] for task in tasks}
    seed_ratios = {}
    for seed, folder in folders.items():
        logged = gradient_norms(folder, tasks)
        seed_means = {t: _mean(v["grad_norm"]) for t, v in logged.items() if v["grad_norm"]}
        if seed_means:
            seed_ratios[seed] = norm_ratio(list(seed_means.values()))
        for task in tasks:
            norms[task] += logged[task]["grad_norm"]
            shares[task] += logged[task]["grad_share"]
    mean_norms = {t: _mean(v) for t, v in norms.items() if v}
    curves = {}
    seed_curves = {seed: validation_curves(folder, tasks) for seed, folder in folders.items()}
    for task in tasks:
        steps = sorted(set.intersection(*(set(c[task]) for c in seed_curves.values())))
        values = [[c[task][step] for c in seed_curves.values()] for step in steps]
        curves[task] = {
            "steps": steps,
            "mean": [sum(v) / len(v) for v in values],
            "low": [min(v) for v in values],
            "high": [max(v) for v in values],
        }
    return {
        "overrides": list(overrides),
        "folders": {str(seed): str(folder) for seed, folder in folders.items()},
        "seeds": {
            str(seed): {task: e.as_dict() for task, e in changes.items()}
            for seed, changes in seeds.items()
        },
        "tasks": tasks_out,
        "mean": mean_over_tasks(list(per_task.values())).as_dict() if per_task else None,
        "worst_task": {"task": worst[0], **worst[1].as_dict()} if worst else None,
        "gradient_equity": {
            "mean_norm": mean_norms,
            "mean_share": {t: _mean(v) for t, v in shares.items() if v},
            "ratio": norm_ratio(list(mean_norms.values())) if mean_norms else None,
            "seed_ratios": {str(s): r for s, r in seed_ratios.items()},
        },
        "curves": curves,
    }


def summarize_claim(
    claim: Claim,
    arm_folders: dict[int, Path],
    baseline_folders: dict[int, Path],
    tasks: Sequence[str],
) -> dict[str, Any]:
    """``claim.arm`` minus ``claim.baseline``: per task paired by seed and item
    (:func:`seed_task_difference`), combined across the seeds both ran (:func:`combine_seeds`);
    the mean over tasks (:func:`mean_over_tasks`) and the worst task, the one where the arm's
    advantage is smallest."""
    seeds = sorted(arm_folders.keys() & baseline_folders.keys())
    per_task: dict[str, Estimate] = {}
    for task in tasks:
        found = [seed_task_difference(arm_folders[s], baseline_folders[s], task) for s in seeds]
        if seeds and all(e is not None for e in found):
            per_task[task] = combine_seeds([e for e in found if e is not None])
    worst = worst_task(per_task)
    return {
        "label": claim.label,
        "arm": claim.arm,
        "baseline": claim.baseline,
        "seeds": seeds,
        "tasks": {task: e.as_dict() for task, e in per_task.items()},
        "mean": mean_over_tasks(list(per_task.values())).as_dict() if per_task else None,
        "worst_task": {"task": worst[0], **worst[1].as_dict()} if worst else None,
    }


def summarize(
    folders: dict[str, dict[int, Path]],
    tasks: Sequence[str],
    claims: Sequence[Claim],
    overrides: dict[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Every number of the ablation: per arm (:func:`summarize_arm`) and per claim whose two
    arms were both run (:func:`summarize_claim`)."""
    overrides = overrides or {}
    arms = {
        arm: summarize_arm(by_seed, tasks, overrides.get(arm, ()))
        for arm, by_seed in folders.items()
    }
    verdicts = [
        summarize_claim(claim, folders[claim.arm], folders[claim.baseline], tasks)
        for claim in claims
        if claim.arm in folders and claim.baseline in folders
    ]
    steps = None
    for by_seed in folders.values():
        for folder in by_seed.values():
            found = first_last_items(folder)
            if found is not None:
                steps = {"first": found[0], "last": found[1]}
                break
        if steps:
            break
    return {
        "tasks": list(tasks),
        "seeds": sorted({seed for by_seed in folders.values() for seed in by_seed}),
        "passes": steps,
        "band": "± 2 standard errors",
        "arms": arms,
        "claims": verdicts,
    }


# ------------------------------------------------------------------ the outputs
def _signed(estimate: dict[str, Any] | None) -> str:
    if not estimate or estimate["change"] != estimate["change"]:
        return "—"
    band = estimate["band"]
    band_text = "∞" if math.isinf(band) else f"{band:.3f}"
    return f"{estimate['change']:+.3f} ± {band_text}"


def _ratio(value: float | None) -> str:
    if value is None or value != value:
        return "—"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def verdict_line(claim: dict[str, Any]) -> str:
    """``"G²RPO vs GRPO: mean +x ± y, worst task (name) +x ± y"``."""
    worst = claim["worst_task"]
    worst_text = f"worst task ({worst['task']}) {_signed(worst)}" if worst else "worst task —"
    return f"{claim['label']}: mean {_signed(claim['mean'])}, {worst_text}"


def markdown(summary: dict[str, Any], title: str = "Ablation") -> str:
    """``ablation.md``: the per arm × task table, the verdict lines and the gradient equity."""
    tasks = summary["tasks"]
    passes = summary["passes"] or {"first": "?", "last": "?"}
    lines = [
        f"# {title}",
        "",
        f"Seeds {', '.join(map(str, summary['seeds']))}; validation accuracy change from step "
        f"{passes['first']} to step {passes['last']}, mean over seeds ± 2 s.e.",
        "",
        "| arm | " + " | ".join(tasks) + " | mean | worst task | grad-norm max/min |",
        "|---|" + "---:|" * len(tasks) + "---:|---|---:|",
    ]
    for arm, numbers in summary["arms"].items():
        cells = [_signed(numbers["tasks"].get(task)) for task in tasks]
        worst = numbers["worst_task"]
        worst_text = f"{worst['task']} {_signed(worst)}" if worst else "—"
        ratio = _ratio(numbers["gradient_equity"]["ratio"])
        lines.append(
            f"| {arm} | " + " | ".join(cells) + f" | {_signed(numbers['mean'])} | {worst_text} "
            f"| {ratio} |"
        )
    if summary.get("missing"):
        lines += ["", f"Not finished, left out: {', '.join(summary['missing'])}."]
    if summary["claims"]:
        lines += ["", "## Verdicts (arm − baseline, paired by seed and item)", ""]
        lines += [f"- {verdict_line(claim)}" for claim in summary["claims"]]
    lines += [
        "",
        "## Gradient equity: mean per-task norm of the policy gradient (share of the total)",
        "",
        "| arm | " + " | ".join(tasks) + " | max/min |",
        "|---|" + "---:|" * len(tasks) + "---:|",
    ]
    for arm, numbers in summary["arms"].items():
        equity = numbers["gradient_equity"]
        cells = []
        for task in tasks:
            norm, share = equity["mean_norm"].get(task), equity["mean_share"].get(task)
            cells.append("—" if norm is None else f"{norm:.3g} ({share:.2f})")
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {_ratio(equity['ratio'])} |")
    lines += [
        "",
        "Each change is paired within a seed over the same validation items (last − first pass "
        "per item); across seeds it is the mean of the seeds' changes with standard error "
        "√(Σ se²)/S from the within-seed errors (the seed-to-seed spread is in ablation.json as "
        "between_seed_se). The mean over tasks has standard error √(Σ se²)/T. A verdict's "
        "difference is paired by seed and item (both arms of a seed score the same items); its "
        "worst task is the one where the arm's advantage is smallest. Gradient norms: the norm "
        "of each task's share of the policy gradient on each step's last micro-batch, averaged "
        "over steps and seeds; max/min over tasks (1 = every task gets an equally large update). "
        "A difference inside its band is not evidence either way.",
    ]
    return "\n".join(lines) + "\n"


def write_plot(summary: dict[str, Any], path: Path) -> Path:
    """``ablation.png``: per task, validation accuracy over steps, a line per arm (mean over
    seeds), the seeds' range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    columns = min(3, max(len(tasks), 1))
    rows = math.ceil(len(tasks) / columns) if tasks else 1
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.3 * rows), squeeze=False)
    for index, task in enumerate(tasks):
        axis = axes[index // columns][index % columns]
        for arm, numbers in summary["arms"].items():
            curve = numbers["curves"].get(task)
            if not curve or not curve["steps"]:
                continue
            (line,) = axis.plot(curve["steps"], curve["mean"], marker="o", label=arm)
            axis.fill_between(
                curve["steps"], curve["low"], curve["high"], color=line.get_color(), alpha=0.15
            )
        axis.set_title(f"{task}: validation accuracy")
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for index in range(len(tasks), rows * columns):
        axes[index // columns][index % columns].axis("off")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_outputs(summary: dict[str, Any], out: Path, title: str = "Ablation") -> list[Path]:
    """``ablation.md``, ``ablation.png`` and ``ablation.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKDOWN_FILE).write_text(markdown(summary, title))
    (out / JSON_FILE).write_text(json.dumps(_finite(summary), indent=2) + "\n")
    write_plot(summary, out / PLOT_FILE)
    return [out / MARKDOWN_FILE, out / PLOT_FILE, out / JSON_FILE]
