"""How a benchmark turns its per-item scores into the number it reports.

Each aggregate is a function ``(rows) -> (value in [0, 1], items counted)`` registered in
:data:`AGGREGATES` under the name a :class:`~vlthinker.evaluation.adapters.registry.Benchmark`
gives in ``aggregate``. Rows are prediction rows (``predictions.jsonl`` lines or
``Prediction`` objects). Adding one is a function and its decorator::

    @AGGREGATES.register("median")
    def median(rows):
        scores = sorted(row_number(r, "score") for r in rows)
        return scores[len(scores) // 2], len(rows)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vlthinker.registry import Registry

__all__ = ["AGGREGATES", "Aggregate", "aggregate", "mean", "row_field", "row_number"]

Aggregate = Callable[[Sequence[Any]], tuple[float, int]]

AGGREGATES: Registry[Aggregate] = Registry("aggregate")


def row_field(row: Any, name: str, default: Any = None) -> Any:
    """A field of a prediction row, whether a dict or an object."""
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def row_number(row: Any, name: str) -> float:
    """A numeric field of a row; missing, non-numeric or non-finite values read as 0."""
    value = row_field(row, name, 0.0)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def aggregate(rows: Sequence[Any], rule: str) -> tuple[float, int]:
    """A benchmark's aggregate of per-item scores in [0, 1], and the number of items it counts.

    ``rule`` names a registered aggregate (an unknown one raises, listing the known ones).
    """
    apply = AGGREGATES.get(rule)
    if not rows:
        return 0.0, 0
    return apply(rows)


@AGGREGATES.register("mean")
def plain_mean(rows: Sequence[Any]) -> tuple[float, int]:
    """The plain mean of the item scores."""
    return mean([row_number(r, "score") for r in rows]), len(rows)


@AGGREGATES.register("circular")
def circular(rows: Sequence[Any]) -> tuple[float, int]:
    """MMBench CircularEval: rows sharing a ``group`` are one question, right only if every
    rotation of its options is right; counts questions."""
    groups: dict[str, list[float]] = defaultdict(list)
    for i, row in enumerate(rows):
        group = row_field(row, "group")
        groups[str(group) if group is not None else f"#{i}"].append(row_number(row, "score"))
    right = [float(all(s >= 1.0 for s in scores)) for scores in groups.values()]
    return mean(right), len(groups)


@AGGREGATES.register("subset_mean")
def subset_mean(rows: Sequence[Any]) -> tuple[float, int]:
    """RoboSpatial: the mean of the per-``subset`` means."""
    subsets: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        subsets[str(row_field(row, "subset"))].append(row_number(row, "score"))
    return mean([mean(v) for v in subsets.values()]), len(rows)
