"""Evaluation: benchmark adapters, the scoring loop shared with training, the results table.

- ``evaluate_records(model, processor, records, ...)``: generate and score records in memory
  (the trainer's per-task validation and ``vlthinker eval`` share this scoring path);
- ``run_eval(specs, out_dir=..., model_path=...)``: the resumable ``vlthinker eval`` run
  (``predictions.jsonl``, ``results.md``, ``results.json``);
- ``get_benchmark(name)``: one of the paper's 18 benchmarks (or ``synthetic``) with its
  loader, metric and category.

Modules: ``runner`` (the scoring loop and ``run_eval``), ``specs`` (``--data`` specs and the
items they load), ``predictions`` (the predictions file), ``folder`` (the output folder's
settings key and lock), ``generators`` (HF / vLLM back-ends; ``generation`` is the batched HF
generate), ``scoring`` (item rules), ``aggregates`` and ``table`` (the results table),
``adapters`` (the benchmarks), ``cli`` (``vlthinker eval``). Plug-ins are registered in
``BENCHMARKS``, ``RULES`` and ``AGGREGATES`` (``vlthinker.registry.Registry``).
"""

from vlthinker.evaluation.adapters import (
    BENCHMARKS,
    CATEGORIES,
    Benchmark,
    BenchmarkFormatError,
    all_benchmarks,
    get_benchmark,
    load_benchmark,
)
from vlthinker.evaluation.aggregates import AGGREGATES
from vlthinker.evaluation.predictions import Prediction, read_predictions
from vlthinker.evaluation.runner import EvalResult, evaluate_records, run_eval
from vlthinker.evaluation.scoring import RULES, score_prediction
from vlthinker.evaluation.specs import DataSpec
from vlthinker.evaluation.table import markdown, summarize, task_means

__all__ = [
    "AGGREGATES",
    "BENCHMARKS",
    "CATEGORIES",
    "RULES",
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
