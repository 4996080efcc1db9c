"""Evaluation: benchmark adapters, the scoring loop shared with training, the results table.

- ``evaluate_records(model, processor, records, ...)``: generate and score records in memory
  (the trainer's per-task validation and ``vlthinker eval`` share this scoring path);
- ``run_eval(specs, out_dir=..., model_path=...)``: the resumable ``vlthinker eval`` run
  (``predictions.jsonl``, ``results.md``, ``results.json``);
- ``get_benchmark(name)``: one of the paper's 18 benchmarks (or ``synthetic``) with its
  loader, metric and category.
"""

from vlthinker.evaluation.adapters import (
    CATEGORIES,
    Benchmark,
    BenchmarkFormatError,
    all_benchmarks,
    get_benchmark,
    load_benchmark,
)
from vlthinker.evaluation.runner import (
    DataSpec,
    EvalResult,
    Prediction,
    evaluate_records,
    read_predictions,
    run_eval,
)
from vlthinker.evaluation.scoring import score_prediction
from vlthinker.evaluation.table import markdown, summarize, task_means

__all__ = [
    "CATEGORIES",
    "Benchmark",
    "BenchmarkFormatError",
    "DataSpec",
    "EvalResult",
    "Prediction",
    "all_benchmarks",
    "evaluate_records",
    "get_benchmark",
    "load_benchmark",
    "markdown",
    "read_predictions",
    "run_eval",
    "score_prediction",
    "summarize",
    "task_means",
]
