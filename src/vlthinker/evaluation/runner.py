"""The scoring loop: generate for items in batches, score each response, average.

``evaluate_records`` is the one scoring path: ``vlthinker eval`` and the trainer's per-task
validation both call it. It generates greedily (by default) in batches, scores every response
with ``scoring.score_prediction`` and averages per task and per benchmark.

``run_eval`` wraps it for the command line: it reads each benchmark (``specs``), skips items
already in ``predictions.jsonl`` (so an interrupted run resumes where it stopped), appends each
batch's predictions as soon as they are scored (``predictions``), and writes the results table;
the folder's settings key and lock are ``folder``'s, the generation back-ends ``generators``'.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlthinker.evaluation.folder import (
    RESULTS_JSON,
    RESULTS_MD,
    SETTINGS_FILE,
    check_generation_key,
    folder_lock,
    generation_key,
    read_json,
    write_json,
)
from vlthinker.evaluation.generators import Generator, hf_generator, load_generator
from vlthinker.evaluation.predictions import (
    PREDICTIONS_FILE,
    Prediction,
    append_predictions,
    read_predictions,
    repair_tail,
)
from vlthinker.evaluation.scoring import eval_meta, score_prediction
from vlthinker.evaluation.specs import DataSpec, Item, benchmark_of, item_key, load_items
from vlthinker.evaluation.table import summarize, task_means


@dataclass
class EvalResult:
    """Predictions with per-item scores, and their means per task and per benchmark.

    ``per_task[task]`` holds ``score``, ``accuracy``, ``format`` (means) and ``count``;
    ``per_benchmark[name]`` the benchmark's reported number (``score``, in its display unit)
    with its metric, count and the paper's reference numbers (see ``table.summarize``).
    """

    predictions: list[Prediction]
    per_task: dict[str, dict[str, float]]
    per_benchmark: dict[str, dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        from vlthinker.evaluation.table import markdown

        return markdown(self.summary)


def _default_prompt_config(prompt_config: Any) -> Any:
    if prompt_config is not None:
        return prompt_config
    from vlthinker.data import PromptConfig

    return PromptConfig()


def predict(
    items: Sequence[Item],
    generator: Generator,
    *,
    batch_size: int,
    prompt_config: Any,
    progress: bool = True,
    description: str = "eval",
    on_batch: Callable[[list[Prediction]], None] | None = None,
) -> list[Prediction]:
    """Generate and score items in batches (order kept); ``on_batch`` sees each scored batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    from tqdm.auto import tqdm

    predictions: list[Prediction] = []
    bar = tqdm(total=len(items), desc=description, unit="item", disable=not progress)
    try:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            responses = generator([item.record for item in batch])
            if len(responses) != len(batch):
                raise RuntimeError(
                    f"the generator returned {len(responses)} responses for {len(batch)} prompts"
                )
            scored = [
                make_prediction(item, response, prompt_config)
                for item, response in zip(batch, responses, strict=True)
            ]
            predictions.extend(scored)
            if on_batch is not None:
                on_batch(scored)
            bar.update(len(batch))
    finally:
        bar.close()
    return predictions


def make_prediction(item: Item, response: str, prompt_config: Any) -> Prediction:
    record = item.record
    scores = score_prediction(record, response, prompt_config)
    details = eval_meta(record)
    extra = {
        k: v
        for k, v in scores.items()
        if k not in ("score", "accuracy", "format", "extracted", "numbers")
    }
    return Prediction(
        benchmark=item.benchmark,
        id=item.key,
        task=record.task,
        answer_type=record.answer_type,
        score=scores["score"],
        accuracy=scores["accuracy"],
        format=scores["format"],
        response=response,
        extracted=scores["extracted"],
        answer=record.answer,
        question=record.question,
        group=details.get("group"),
        subset=details.get("subset"),
        extra=extra,
        numbers=scores.get("numbers"),
    )


def evaluate_records(
    model: Any,
    processor: Any,
    records: Sequence[Any],
    *,
    batch_size: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    prompt_config: Any = None,
    progress: bool = True,
    generator: Generator | None = None,
) -> EvalResult:
    """Generate for ``records`` with an in-memory model and score them (the trainer's validation).

    Greedy by default (``temperature`` 0); ``generator`` replaces the model's generation (tests,
    other backends). Records carry their benchmark in ``meta["benchmark"]`` when they come from
    an adapter; plain records are grouped under their ``source``.
    """
    prompt_config = _default_prompt_config(prompt_config)
    if generator is None:
        generator = hf_generator(
            model,
            processor,
            prompt_config,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
        )
    items = [
        Item(benchmark_of(record), record, item_key(record, i)) for i, record in enumerate(records)
    ]
    predictions = predict(
        items, generator, batch_size=batch_size, prompt_config=prompt_config, progress=progress
    )
    return result_from(predictions)


def result_from(
    predictions: Sequence[Prediction], timings: dict[str, float] | None = None
) -> EvalResult:
    rows = [p.to_json() for p in predictions]
    summary = summarize(rows, timings=timings)
    return EvalResult(
        predictions=list(predictions),
        per_task=task_means(rows),
        per_benchmark={b["name"]: b for b in summary["benchmarks"]},
        summary=summary,
    )


def run_eval(
    specs: Sequence[DataSpec],
    *,
    out_dir: str | Path,
    model_path: str | Path | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 1024,
    temperature: float = 0.0,
    top_p: float = 1.0,
    limit: int | None = None,
    prompt_config: Any = None,
    backend: str = "auto",
    generator: Generator | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate every spec, resuming from ``out_dir/predictions.jsonl``; write the tables.

    The model is loaded only if some item still needs a response. ``backend`` is ``hf``,
    ``vllm`` or ``auto`` (vLLM when installed with a GPU, else Hugging Face generation).
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p:g}")
    if temperature < 0:
        raise ValueError(f"temperature must not be negative, got {temperature:g}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the output folder {out}: {error.strerror}") from None
    prompt_config = _default_prompt_config(prompt_config)
    with folder_lock(out):
        return _run_eval_locked(
            specs,
            out=out,
            model_path=model_path,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            limit=limit,
            prompt_config=prompt_config,
            backend=backend,
            generator=generator,
            progress=progress,
        )


def _run_eval_locked(
    specs: Sequence[DataSpec],
    *,
    out: Path,
    model_path: str | Path | None,
    batch_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    limit: int | None,
    prompt_config: Any,
    backend: str,
    generator: Generator | None,
    progress: bool,
) -> EvalResult:
    predictions_path = out / PREDICTIONS_FILE
    repair_tail(predictions_path)
    key = generation_key(model_path, max_new_tokens, temperature, top_p, prompt_config)
    key = check_generation_key(out, key)
    done = {(p.benchmark, p.id) for p in read_predictions(predictions_path)}
    wanted: set[tuple[str, str]] = set()

    labels = [spec.label() for spec in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f"--data names {', '.join(repeated)} more than once; give each benchmark once "
            "(a record-format folder is labelled by its name)"
        )
    plan: list[tuple[DataSpec, list[Item]]] = []
    for spec in specs:
        items = load_items(spec, image_dir=out / "images", limit=limit)
        plan.append((spec, [item for item in items if (item.benchmark, item.key) not in done]))
        wanted.update((item.benchmark, item.key) for item in items)

    previous = read_json(out / RESULTS_JSON)
    # generation seconds per benchmark, summed over the runs that filled the predictions file
    timings: dict[str, float] = {
        str(k): float(v)
        for k, v in (previous.get("timings") or {}).items()
        if isinstance(v, int | float) and k in {spec.label() for spec in specs}
    }
    if any(pending for _, pending in plan) and generator is None:
        generator = load_generator(
            model_path, prompt_config, backend, max_new_tokens, temperature, top_p
        )
    if any(pending for _, pending in plan):
        write_json(out / SETTINGS_FILE, key)
    for spec, pending in plan:
        if not pending:
            continue
        started = time.perf_counter()
        predict(
            pending,
            generator,
            batch_size=batch_size,
            prompt_config=prompt_config,
            progress=progress,
            description=spec.label(),
            on_batch=lambda batch: append_predictions(predictions_path, batch),
        )
        spent = time.perf_counter() - started
        timings[spec.label()] = round(timings.get(spec.label(), 0.0) + spent, 3)

    # the last line for an item wins (a file appended to by two runs keeps one row per item)
    latest = {(p.benchmark, p.id): p for p in read_predictions(predictions_path)}
    rows = [p for key, p in latest.items() if key in wanted]
    result = result_from(rows, timings=timings)
    result.summary["model"] = key["model"]
    result.summary["settings"] = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "limit": limit,
    }
    (out / RESULTS_JSON).write_text(json.dumps(result.summary, indent=2) + "\n")
    (out / RESULTS_MD).write_text(result.table() + "\n")
    return result


__all__ = [
    "EvalResult",
    "evaluate_records",
    "make_prediction",
    "predict",
    "result_from",
    "run_eval",
]
