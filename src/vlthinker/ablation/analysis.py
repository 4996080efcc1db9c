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

from vlthinker.ablation.greedy import greedy_items
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


def task_summary(per_task: dict[str, Estimate]) -> dict[str, Any]:
    """Per-task estimates with their mean over tasks and the worst task, as ``ablation.json``
    stores them."""
    worst = worst_task(per_task)
    return {
        "tasks": {task: e.as_dict() for task, e in per_task.items()},
        "mean": mean_over_tasks(list(per_task.values())).as_dict() if per_task else None,
        "worst_task": {"task": worst[0], **worst[1].as_dict()} if worst else None,
    }


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


def greedy_task_changes(folder: Path, tasks: Sequence[str]) -> dict[str, Estimate]:
    """Per task, the change in *greedy* accuracy from the start model to the run's final model,
    paired over the validation items (:mod:`vlthinker.ablation.greedy`); empty without them."""
    found = greedy_items(folder)
    if found is None:
        return {}
    changes = {}
    for task in tasks:
        mean, se, n = paired_change(
            task_items(found["start"], task), task_items(found["end"], task)
        )
        if n:
            changes[task] = Estimate(mean, se, n)
    return changes


def greedy_task_difference(arm_folder: Path, baseline_folder: Path, task: str) -> Estimate | None:
    """One seed's difference between two arms' greedy changes on ``task``, paired by item."""
    arm, baseline = greedy_items(arm_folder), greedy_items(baseline_folder)
    if arm is None or baseline is None:
        return None
    arm_end, base_end = task_items(arm["end"], task), task_items(baseline["end"], task)
    # both arms start from the same model on the same items: the start pass cancels
    mean, se, n = paired_change(base_end, arm_end)
    return Estimate(mean, se, n) if n else None


def pass_changes(folder: Path, tasks: Sequence[str]) -> dict[str, dict[int, Estimate]]:
    """Per task and validation step, the change from the first pass, paired over items."""
    passes = read_validation_items(folder)
    if not passes:
        return {task: {} for task in tasks}
    first = passes[min(passes)]
    out: dict[str, dict[int, Estimate]] = {task: {} for task in tasks}
    for step, items in passes.items():
        for task in tasks:
            mean, se, n = paired_change(task_items(first, task), task_items(items, task))
            if n:
                out[task][step] = Estimate(mean, se, n)
    return out


#: Per-task training metrics the ablation reports (mean over logged steps and seeds): the sign
#: errors of the advantages, their scale per live rollout, the advantage's own gradient factor
#: ‖g_t(A)‖ / ‖g_t(sign A)‖, the share of steps stage 2 ran, and the raw per-task gradient norm
#: with its share of the tasks' total.
TRAIN_METRICS = (
    "wrong_positive_share",
    "right_negative_share",
    "advantage_abs_live",
    "advantage_rms_live",
    "advantage_gradient_ratio",
    "stage2_active",
    "grad_norm",
    "grad_share",
)


def train_metric_values(folder: Path, tasks: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Per metric of :data:`TRAIN_METRICS` and task, every value a training step logged."""
    found: dict[str, dict[str, list[float]]] = {m: {t: [] for t in tasks} for m in TRAIN_METRICS}
    for entry in read_metrics(folder):
        if entry.get("split") != "train":
            continue
        for metric in TRAIN_METRICS:
            for task in tasks:
                value = entry.get(f"{task}/{metric}")
                if isinstance(value, int | float) and value == value:
                    found[metric][task].append(float(value))
    return found


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
    logged: dict[str, dict[str, list[float]]] = {m: {t: [] for t in tasks} for m in TRAIN_METRICS}
    seed_ratios = {}
    for seed, folder in folders.items():
        seed_logged = train_metric_values(folder, tasks)
        seed_means = {t: _mean(v) for t, v in seed_logged["grad_norm"].items() if v}
        if seed_means:
            seed_ratios[seed] = norm_ratio(list(seed_means.values()))
        for metric, per_task_values in seed_logged.items():
            for task, values in per_task_values.items():
                logged[metric][task] += values
    norms, shares = logged["grad_norm"], logged["grad_share"]
    mean_norms = {t: _mean(v) for t, v in norms.items() if v}
    greedy_seeds = {seed: greedy_task_changes(folder, tasks) for seed, folder in folders.items()}
    greedy: dict[str, Estimate] = {}
    for task in tasks:
        found = [changes[task] for changes in greedy_seeds.values() if task in changes]
        if found and len(found) == len(folders):
            greedy[task] = combine_seeds(found)
    advantages = {
        metric: {t: _mean(v) for t, v in per_task_values.items() if v}
        for metric, per_task_values in logged.items()
    }
    ratios = advantages["advantage_gradient_ratio"]
    seed_passes = [pass_changes(folder, tasks) for folder in folders.values()]
    pass_curves = {}
    for task in tasks:
        steps = sorted(set.intersection(*(set(p[task]) for p in seed_passes)))
        combined = [combine_seeds([p[task][step] for p in seed_passes]) for step in steps]
        pass_curves[task] = {
            "steps": steps,
            "change": [e.mean for e in combined],
            "band": [e.band for e in combined],
        }
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
            "advantage_ratio": norm_ratio(list(ratios.values())) if ratios else None,
        },
        "greedy": task_summary(greedy),
        "advantages": advantages,
        "curves": curves,
        "pass_changes": pass_curves,
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
    greedy: dict[str, Estimate] = {}
    for task in tasks:
        found = [greedy_task_difference(arm_folders[s], baseline_folders[s], task) for s in seeds]
        if seeds and all(e is not None for e in found):
            greedy[task] = combine_seeds([e for e in found if e is not None])
    return {
        "label": claim.label,
        "arm": claim.arm,
        "baseline": claim.baseline,
        "seeds": seeds,
        "tasks": {task: e.as_dict() for task, e in per_task.items()},
        "mean": mean_over_tasks(list(per_task.values())).as_dict() if per_task else None,
        "worst_task": {"task": worst[0], **worst[1].as_dict()} if worst else None,
        "greedy": task_summary(greedy),
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
    """``"G²RPO vs GRPO: mean +x ± y, worst task (name) +x ± y; greedy mean +x ± y"``."""
    worst = claim["worst_task"]
    worst_text = f"worst task ({worst['task']}) {_signed(worst)}" if worst else "worst task —"
    line = f"{claim['label']}: mean {_signed(claim['mean'])}, {worst_text}"
    greedy = claim.get("greedy") or {}
    if greedy.get("mean"):
        greedy_worst = greedy["worst_task"]
        line += f"; greedy mean {_signed(greedy['mean'])}"
        if greedy_worst:
            line += f", worst task ({greedy_worst['task']}) {_signed(greedy_worst)}"
    return line


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _metric_table(
    summary: dict[str, Any], title: str, cell: Any, note: str, extra: tuple[str, Any] | None = None
) -> list[str]:
    tasks = summary["tasks"]
    header = "| arm | " + " | ".join(tasks) + (f" | {extra[0]} |" if extra else " |")
    rule = "|---|" + "---:|" * (len(tasks) + (1 if extra else 0))
    lines = ["", f"## {title}", "", note, "", header, rule]
    for arm, numbers in summary["arms"].items():
        cells = [cell(numbers, task) for task in tasks]
        if extra:
            cells.append(extra[1](numbers))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def twins(summary: dict[str, Any]) -> dict[str, str]:
    """Arms whose validation curves equal an earlier arm's on every task and pass (a shaping
    term that never bound), mapped to that arm: the plot marks them instead of hiding one line
    under the other."""
    found: dict[str, str] = {}
    arms = list(summary["arms"])
    for index, arm in enumerate(arms):
        mine = summary["arms"][arm].get("pass_changes") or {}
        for earlier in arms[:index]:
            theirs = summary["arms"][earlier].get("pass_changes") or {}
            if mine and mine == theirs and earlier not in found:
                found[arm] = earlier
                break
    return found


def markdown(summary: dict[str, Any], title: str = "Ablation") -> str:
    """``ablation.md``: sampled and greedy accuracy changes per arm × task, the verdicts, the
    advantages' sign errors, their scale per live rollout, the advantage's own gradient factor,
    how often stage 2 ran, and the raw per-task gradient norms."""
    tasks = summary["tasks"]
    passes = summary["passes"] or {"first": "?", "last": "?"}
    lines = [
        f"# {title}",
        "",
        f"Seeds {', '.join(map(str, summary['seeds']))}; validation accuracy change from step "
        f"{passes['first']} to step {passes['last']} (the sampling policy), mean over seeds ± 2 "
        "s.e.; greedy: the start model against the final one, decoding greedily.",
        "",
        "| arm | " + " | ".join(tasks) + " | mean | worst task | greedy mean | greedy worst |",
        "|---|" + "---:|" * len(tasks) + "---:|---|---:|---|",
    ]
    twin_of = twins(summary)
    for arm, numbers in summary["arms"].items():
        cells = [_signed(numbers["tasks"].get(task)) for task in tasks]
        worst = numbers["worst_task"]
        worst_text = f"{worst['task']} {_signed(worst)}" if worst else "—"
        greedy = numbers.get("greedy") or {}
        greedy_worst = greedy.get("worst_task")
        greedy_worst_text = (
            f"{greedy_worst['task']} {_signed(greedy_worst)}" if greedy_worst else "—"
        )
        label = f"{arm} (= {twin_of[arm]})" if arm in twin_of else arm
        seeds = len(numbers["seeds"])
        if seeds < len(summary["seeds"]):  # an arm with fewer finished seeds says so
            label += f" ({seeds} seed{'s' if seeds != 1 else ''})"
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {_signed(numbers['mean'])} | {worst_text} "
            f"| {_signed(greedy.get('mean'))} | {greedy_worst_text} |"
        )
    if summary.get("missing"):
        lines += ["", f"Not finished, left out: {', '.join(summary['missing'])}."]
    if summary["claims"]:
        lines += ["", "## Verdicts (arm − baseline, paired by seed and item)", ""]
        lines += [f"- {verdict_line(claim)}" for claim in summary["claims"]]

    def advantage(metric: str, form: str = "{:.2f}"):
        def cell(numbers: dict[str, Any], task: str) -> str:
            value = (numbers.get("advantages") or {}).get(metric, {}).get(task)
            return "—" if value is None else form.format(value)

        return cell

    def signs(numbers: dict[str, Any], task: str) -> str:
        found = numbers.get("advantages") or {}
        up = found.get("wrong_positive_share", {}).get(task)
        down = found.get("right_negative_share", {}).get(task)
        return f"{_share(up)} / {_share(down)}"

    def scale(numbers: dict[str, Any], task: str) -> str:
        found = numbers.get("advantages") or {}
        absolute = found.get("advantage_abs_live", {}).get(task)
        rms = found.get("advantage_rms_live", {}).get(task)
        return "—" if absolute is None else f"{absolute:.2f} / {rms:.2f}"

    lines += _metric_table(
        summary,
        "Sign errors: wrong answers with A > 0 / right answers with A < 0",
        signs,
        "Share of the trained rollouts of each task with accuracy 0 given a positive advantage, "
        "and with accuracy 1 given a negative one, averaged over steps and seeds.",
    )
    lines += _metric_table(
        summary,
        "Equity: mean |A| / RMS of A per live rollout",
        scale,
        "Over the rollouts of groups whose accuracy varies (the ones that carry a signal).",
    )
    lines += _metric_table(
        summary,
        "Equity: the advantage's own gradient factor ‖g_t(A)‖ / ‖g_t(sign A)‖",
        advantage("advantage_gradient_ratio"),
        "Each task's policy-gradient norm over the same micro-batch's with every advantage "
        "replaced by its sign: token counts and per-token gradients divided out.",
        ("max/min", lambda numbers: _ratio(numbers["gradient_equity"].get("advantage_ratio"))),
    )
    lines += _metric_table(
        summary,
        "Stage 2 ran (share of steps, per task)",
        advantage("stage2_active"),
        "1: G²RPO's stage 2 acted on every step the task had a live group (— for arms without "
        "stage 2).",
    )
    lines += _metric_table(
        summary,
        "Secondary: raw per-task gradient norm (share of the total)",
        lambda numbers, task: (
            "—"
            if numbers["gradient_equity"]["mean_norm"].get(task) is None
            else f"{numbers['gradient_equity']['mean_norm'][task]:.3g} "
            f"({numbers['gradient_equity']['mean_share'][task]:.2f})"
        ),
        "The norm of each task's share of the policy gradient: it mixes the task's token count, "
        "its gradient per token and its advantages, so it measures the tasks more than the "
        "estimator.",
        ("max/min", lambda numbers: _ratio(numbers["gradient_equity"]["ratio"])),
    )
    lines += [
        "",
        "Each change is paired within a seed over the same validation items (last − first pass "
        "per item); across seeds it is the mean of the seeds' changes with standard error "
        "√(Σ se²)/S from the within-seed errors (the seed-to-seed spread is in ablation.json as "
        "between_seed_se). The mean over tasks has standard error √(Σ se²)/T. A verdict's "
        "difference is paired by seed and item (both arms of a seed score the same items); its "
        "worst task is the one where the arm's advantage is smallest. An arm marked (= other) "
        "validated exactly as that arm at every pass. A difference inside its band is not "
        "evidence either way.",
    ]
    return "\n".join(lines) + "\n"


def write_plot(summary: dict[str, Any], path: Path) -> Path:
    """``ablation.png``: per task, the change in validation accuracy from the first pass at every
    pass, a line per arm with its ± 2 s.e. band as error bars, one y-scale for every panel; an arm
    that coincides with an earlier one is drawn dashed and named after it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    columns = min(3, max(len(tasks), 1))
    rows = math.ceil(len(tasks) / columns) if tasks else 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False, sharey=True
    )
    twin_of = twins(summary)
    arms = list(summary["arms"])
    offsets = {arm: (i - (len(arms) - 1) / 2) * 0.12 for i, arm in enumerate(arms)}
    for index, task in enumerate(tasks):
        axis = axes[index // columns][index % columns]
        for arm, numbers in summary["arms"].items():
            curve = (numbers.get("pass_changes") or {}).get(task)
            if not curve or not curve["steps"]:
                continue
            # arms side by side at each pass, so error bars do not hide one another
            steps = [step + offsets[arm] for step in curve["steps"]]
            label = f"{arm} (= {twin_of[arm]})" if arm in twin_of else arm
            axis.errorbar(
                steps,
                curve["change"],
                yerr=curve["band"],
                marker="o",
                markersize=3,
                capsize=2,
                linestyle="--" if arm in twin_of else "-",
                label=label,
            )
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_title(f"{task}: Δ validation accuracy")
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
