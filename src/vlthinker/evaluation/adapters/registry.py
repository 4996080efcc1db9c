"""The benchmark registry: what each adapter reads, how it is scored and grouped.

Categories and reference numbers are the paper's (docs/method.md §7): six categories of three
benchmarks; the two reference columns are Qwen3-VL-8B-Instruct and OpenVLThinkerV2, in the
benchmark's display unit (percent, OCRBench out of 1000).

Every benchmark is a :class:`Benchmark` in :data:`BENCHMARKS`, added with :func:`register`
(which also checks its aggregate is registered)::

    register(Benchmark(name="mybench", title="My benchmark", category=OTHER,
                       metric="accuracy", load=load_mybench, aliases=("my-bench",)))

``load(path, *, image_dir, limit)`` returns ``vlthinker.data`` records (see
``adapters.base.make_record``); the module holding the call must be imported for the
benchmark to exist (the package's ``__init__`` imports the built-in ones).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlthinker.evaluation.aggregates import AGGREGATES
from vlthinker.registry import Registry, UnknownNameError

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


class UnknownBenchmarkError(UnknownNameError, KeyError):
    """An unknown benchmark name. A ``KeyError`` as well, as lookups by name always raised."""

    # KeyError would print the message quoted; read as the plain sentence it is
    __str__ = BaseException.__str__


def _normalise(name: str) -> str:
    """The lookup key: case and all but letters, digits and ``+`` ignored (``Math-Vision`` =
    ``mathvision``)."""
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


#: Every benchmark by its canonical name; :func:`register` adds one with its aliases.
BENCHMARKS: Registry[Benchmark] = Registry(
    "benchmark", normalise=_normalise, error=UnknownBenchmarkError
)

# Registration order (the paper's, within a category) for the table and the CLI listing; a counter
# rather than len(BENCHMARKS), which repeats once a benchmark has been removed.
_positions = itertools.count()


def register(benchmark: Benchmark) -> Benchmark:
    """Add ``benchmark`` under its name (its aliases look it up too); returns it.

    Its aggregate must be registered (``vlthinker.evaluation.aggregates.AGGREGATES``), so a
    misspelt one fails here, when the adapter is imported, not when the table is drawn.
    """
    AGGREGATES.check(benchmark.aggregate)
    BENCHMARKS.add(benchmark.name, benchmark, aliases=benchmark.aliases, position=next(_positions))
    return benchmark


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (case, dashes and underscores ignored; aliases allowed).

    An unknown name raises :class:`UnknownBenchmarkError` listing the known ones.
    """
    return BENCHMARKS.get(name)


def all_benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in registration order (the paper's, within a category)."""

    def position(name: str) -> float:
        # one added with BENCHMARKS.add directly (no position) comes last
        return float(BENCHMARKS.meta(name).get("position", math.inf))

    return [BENCHMARKS.get(name) for name in sorted(BENCHMARKS.names(), key=position)]


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
