"""The benchmark registry: what each adapter reads, how it is scored and grouped.

Categories and reference numbers are the paper's (method.md §7): six categories of three
benchmarks; the two reference columns are Qwen3-VL-8B-Instruct and OpenVLThinkerV2, in the
benchmark's display unit (percent, OCRBench out of 1000).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The paper's six categories, in its table order; "other" holds the synthetic suite and
# record-format datasets, which have no paper counterpart.
CATEGORIES: tuple[str, ...] = (
    "general VQA",
    "math VQA",
    "charts",
    "documents",
    "spatial reasoning",
    "grounding",
)
OTHER = "other"

Loader = Callable[..., list[Any]]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its loader and how its per-item scores become the reported number.

    ``aggregate`` names the rule applied to the per-item scores (``mean``; ``circular``:
    a question counts only if every rotation of its options is right, MMBench's CircularEval;
    ``subset_mean``: the mean of per-subset means).
    ``scale`` turns the [0, 1] aggregate into the display unit (100 → percent, 1000 for
    OCRBench's score out of 1000). ``judged`` marks benchmarks whose official protocol uses an
    LLM judge: our rule-based number is not comparable to a judged one.
    """

    name: str
    title: str
    category: str
    metric: str
    load: Loader
    aggregate: str = "mean"
    scale: float = 100.0
    judged: bool = False
    note: str = ""
    paper: tuple[float, float] | None = None
    aliases: tuple[str, ...] = ()
    expected_files: str = ""
    source: str = ""
    comparable: bool = True

    def scored_by(self) -> str:
        """``scored by <rule> from <repository/file>, comparable: yes/no`` for the table.

        ``source`` names the official rule our rule follows and the file it was checked against;
        ``comparable`` says whether the judge-free number can be set beside the paper's (False for
        benchmarks the paper scores with an LLM judge, or where our rule knowingly departs).
        """
        comparable = "yes" if self.comparable and not self.judged else "no"
        return f"scored by {self.source or self.metric}; comparable: {comparable}"


_REGISTRY: dict[str, Benchmark] = {}
_ALIASES: dict[str, str] = {}


def register(benchmark: Benchmark) -> Benchmark:
    if benchmark.name in _REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} registered twice")
    _REGISTRY[benchmark.name] = benchmark
    for key in (benchmark.name, *benchmark.aliases):
        _ALIASES[_normalise(key)] = benchmark.name
    return benchmark


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (case, dashes and underscores ignored; aliases allowed)."""
    key = _ALIASES.get(_normalise(name))
    if key is None:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown benchmark {name!r}; known: {known}")
    return _REGISTRY[key]


def all_benchmarks() -> list[Benchmark]:
    return list(_REGISTRY.values())


def category_order(category: str) -> int:
    return CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES)


def load_benchmark(
    name: str, path: str | Path, *, image_dir: str | Path, limit: int | None = None
) -> list[Any]:
    """Read one benchmark's published files under ``path`` into records (images cached under
    ``image_dir``); ``limit`` keeps the first N items (after any expansion such as MMBench's
    option rotations, which stay complete per question)."""
    benchmark = get_benchmark(name)
    return benchmark.load(Path(path), image_dir=Path(image_dir), limit=limit)
