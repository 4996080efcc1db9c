"""Generation, scoring and the resumable predictions file.

``evaluate_records`` is the one scoring path: ``vlthinker eval`` and the trainer's per-task
validation both call it. It generates greedily (by default) in batches, scores every response
with ``scoring.score_prediction`` and averages per task and per benchmark.

``run_eval`` wraps it for the command line: it reads each benchmark, skips items already in
``predictions.jsonl`` (so an interrupted run resumes where it stopped), appends each batch's
predictions as soon as they are scored, and writes the results table.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlthinker.data.prompts import json_safe
from vlthinker.evaluation.adapters import get_benchmark
from vlthinker.evaluation.scoring import eval_meta, score_prediction
from vlthinker.evaluation.table import summarize, task_means

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"

# A generator turns a batch of records into one response each (the model behind it is its own).
Generator = Callable[[Sequence[Any]], list[str]]


@dataclass
class Prediction:
    """One scored response: a line of ``predictions.jsonl``."""

    benchmark: str
    id: str
    task: str
    answer_type: str
    score: float
    accuracy: float
    format: float
    response: str
    extracted: str
    answer: Any = None
    question: str = ""
    group: Any = None
    subset: Any = None
    extra: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not json_safe(data["answer"]):
            data["answer"] = str(data["answer"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


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


def benchmark_of(record: Any) -> str:
    """The benchmark a record belongs to: its adapter's name, else its source, else records."""
    meta = record.meta or {}
    return str(meta.get("benchmark") or getattr(record, "source", None) or "records")


def item_key(record: Any, position: int) -> str:
    """A record's key in the predictions file: its id, else its place in its benchmark."""
    record_id = getattr(record, "id", None)
    return str(record_id) if record_id not in (None, "") else f"#{position}"


@dataclass(frozen=True)
class Item:
    """A record to answer, with its benchmark and its key in the predictions file."""

    benchmark: str
    record: Any
    key: str


# ---------------------------------------------------------------- generators


def hf_generator(
    model: Any,
    processor: Any,
    prompt_config: Any,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> Generator:
    """Batched Hugging Face generation through ``vlthinker.rollout.generate``."""
    from vlthinker.data import build_messages
    from vlthinker.rollout import generate

    def run(records: Sequence[Any]) -> list[str]:
        messages = [build_messages(record, prompt_config) for record in records]
        images = [record.load_images() for record in records]
        return list(
            generate(
                model,
                processor,
                messages,
                images,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                do_sample=temperature > 0,
            )
        )

    return run


def vllm_available() -> bool:
    """vLLM is used only where it is installed and a GPU is present."""
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def vllm_generator(
    model_path: str | Path,
    processor: Any,
    prompt_config: Any,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> Generator:  # pragma: no cover - needs a GPU and vLLM
    """vLLM offline generation with the processor's chat template (GPU machines only)."""
    from vllm import LLM, SamplingParams

    from vlthinker.data import build_messages

    llm = LLM(model=str(model_path), limit_mm_per_prompt={"image": 8})
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)

    def run(records: Sequence[Any]) -> list[str]:
        prompts = []
        for record in records:
            text = processor.apply_chat_template(
                build_messages(record, prompt_config), tokenize=False, add_generation_prompt=True
            )
            prompts.append({"prompt": text, "multi_modal_data": {"image": record.load_images()}})
        outputs = llm.generate(prompts, params, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]

    return run


# ---------------------------------------------------------------- scoring loop


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
        k: v for k, v in scores.items() if k not in ("score", "accuracy", "format", "extracted")
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


# ---------------------------------------------------------------- the predictions file


def read_predictions(path: Path) -> list[Prediction]:
    """The scored predictions so far; a torn last line (an interrupted write) is dropped."""
    if not path.exists():
        return []
    predictions = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            predictions.append(Prediction.from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            if number == len(lines):
                log.warning("%s: ignoring an incomplete last line (%s)", path, error)
                continue
            raise ValueError(f"{path}: line {number} is not a prediction ({error})") from error
    return predictions


def append_predictions(path: Path, predictions: Iterable[Prediction]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction.to_json(), ensure_ascii=False) + "\n")
        handle.flush()


def _repair_tail(path: Path) -> None:
    """Cut a torn last line so appended predictions start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


@dataclass
class DataSpec:
    """One ``--data`` argument: a benchmark name and where its files are (None: in memory)."""

    name: str
    path: Path | None

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        """``name=path``, ``synthetic`` (held-out set in memory) or a record-format path."""
        if "=" in text:
            name, _, path = text.partition("=")
            get_benchmark(name)  # fails early on an unknown name
            return cls(get_benchmark(name).name, Path(path).expanduser())
        if text.strip().lower() == "synthetic":
            return cls("synthetic", None)
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"--data {text!r}: not a benchmark name=path pair nor an existing path"
            )
        return cls("records", path)

    def label(self) -> str:
        if self.name == "records" and self.path is not None:
            return self.path.stem
        return self.name


def load_items(spec: DataSpec, *, image_dir: Path, limit: int | None) -> list[Item]:
    benchmark = get_benchmark(spec.name)
    records = benchmark.load(spec.path, image_dir=image_dir, limit=limit)
    label = spec.label()
    items = [Item(label, record, item_key(record, i)) for i, record in enumerate(records)]
    seen: set[str] = set()
    for item in items:
        if item.key in seen:
            raise ValueError(
                f"{spec.path or label}: record id {item.key!r} appears twice; ids must be unique"
            )
        seen.add(item.key)
    return items


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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path = out / PREDICTIONS_FILE
    prompt_config = _default_prompt_config(prompt_config)
    _repair_tail(predictions_path)
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

    previous = _previous_summary(out / RESULTS_JSON)
    if any(pending for _, pending in plan) and previous.get("model") not in (
        None,
        str(model_path) if model_path else None,
    ):
        log.warning(
            "%s holds predictions of %s; new ones come from %s (use another --out to keep "
            "checkpoints apart)",
            out,
            previous.get("model"),
            model_path,
        )
    # generation seconds per benchmark, summed over the runs that filled the predictions file
    timings: dict[str, float] = {
        str(k): float(v)
        for k, v in (previous.get("timings") or {}).items()
        if isinstance(v, int | float) and k in {spec.label() for spec in specs}
    }
    if any(pending for _, pending in plan) and generator is None:
        generator = _load_generator(
            model_path, prompt_config, backend, max_new_tokens, temperature, top_p
        )
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
    result.summary["model"] = str(model_path) if model_path is not None else None
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


def _previous_summary(path: Path) -> dict[str, Any]:
    """The results.json of an earlier run into the same folder ({} if none or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _load_generator(
    model_path: str | Path | None,
    prompt_config: Any,
    backend: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> Generator:
    if model_path is None:
        raise ValueError("--model is required: some items have no prediction yet")
    from vlthinker.models import load_policy

    try:
        from vlthinker.models import resolve_model_path

        model_path = resolve_model_path(str(model_path))
    except ImportError:
        pass
    if backend not in ("auto", "hf", "vllm"):
        raise ValueError(f"backend must be auto, hf or vllm, got {backend!r}")
    use_vllm = backend == "vllm" or (backend == "auto" and vllm_available())
    if backend == "vllm" and not vllm_available():
        raise RuntimeError("--backend vllm needs vLLM installed and a GPU")
    sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
    if use_vllm:  # pragma: no cover - GPU only
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(model_path))
        return vllm_generator(model_path, processor, prompt_config, **sampling)
    model, processor = load_policy(str(model_path))
    model.eval()
    return hf_generator(model, processor, prompt_config, **sampling)


__all__ = [
    "DataSpec",
    "EvalResult",
    "Prediction",
    "evaluate_records",
    "hf_generator",
    "read_predictions",
    "run_eval",
    "vllm_generator",
]
