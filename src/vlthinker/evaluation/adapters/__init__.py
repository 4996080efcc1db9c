"""Benchmark adapters: each reads one public release's files into ``vlthinker.data`` records.

One module per benchmark family (the paper's six categories, docs/method.md §7) plus the synthetic
suite; importing this package registers them all.
"""

from vlthinker.evaluation.adapters import (  # noqa: F401  (imports register the benchmarks)
    charts,
    documents,
    general,
    grounding,
    math_vqa,
    spatial,
    synthetic,
)
from vlthinker.evaluation.adapters.base import BenchmarkFormatError
from vlthinker.evaluation.adapters.registry import (
    BENCHMARKS,
    CATEGORIES,
    OTHER,
    Benchmark,
    UnknownBenchmarkError,
    all_benchmarks,
    get_benchmark,
    load_benchmark,
    register,
)

__all__ = [
    "BENCHMARKS",
    "CATEGORIES",
    "OTHER",
    "Benchmark",
    "BenchmarkFormatError",
    "UnknownBenchmarkError",
    "all_benchmarks",
    "get_benchmark",
    "load_benchmark",
    "register",
]
