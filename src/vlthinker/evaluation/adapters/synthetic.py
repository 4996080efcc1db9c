"""The synthetic suite and record-format datasets (``vlthinker.data`` files).

``synthetic`` alone draws a held-out set in memory from a fixed seed that neither the
training stream (seed 0 by default) nor the trainer's validation stream (seed + 1,000,003)
uses; ``synthetic=DIR`` (or any record-format path) reads records written by
``vlthinker data synth`` or prepared by hand. These items are scored by the training
verifiers alone, so evaluation and training validation agree item for item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlthinker.data.records import TASKS
from vlthinker.evaluation.adapters.registry import OTHER, Benchmark, register

EVAL_SEED = 20_260_409


def held_out_synthetic(
    per_task: int = 16, *, seed: int = EVAL_SEED, image_size: int = 112
) -> list[Any]:
    """``per_task`` synthetic items for each of the six tasks, identical on every call."""
    from vlthinker.data import synthetic

    return list(
        synthetic.generate(
            per_task * len(TASKS),
            seed=seed,
            tasks=list(TASKS),
            difficulty=0.0,
            image_size=image_size,
        )
    )


def load_record_files(
    path: Path, *, image_dir: Path | None = None, limit: int | None = None
) -> list[Any]:
    """Records in ``vlthinker.data``'s own format (a file or a directory of them)."""
    from vlthinker.data import load_records

    records = list(load_records(path))
    return records if limit is None else records[:limit]


def load_synthetic(
    path: Path | None, *, image_dir: Path | None = None, limit: int | None = None
) -> list[Any]:
    records = held_out_synthetic() if path is None else load_record_files(path)
    return records if limit is None else records[:limit]


register(
    Benchmark(
        name="synthetic",
        title="Synthetic suite",
        category=OTHER,
        metric="training verifier accuracy",
        load=load_synthetic,
    )
)
register(
    Benchmark(
        name="records",
        title="Record-format dataset",
        category=OTHER,
        metric="training verifier accuracy",
        load=load_record_files,
    )
)
