"""Generation, scoring and the resumable predictions file.

``evaluate_records`` is the one scoring path: ``vlthinker eval`` and the trainer's per-task
validation both call it. It generates greedily (by default) in batches, scores every response
with ``scoring.score_prediction`` and averages per task and per benchmark.

``run_eval`` wraps it for the command line: it reads each benchmark, skips items already in
``predictions.jsonl`` (so an interrupted run resumes where it stopped), appends each batch's
predictions as soon as they are scored, and writes the results table. The predictions file is
keyed by the model and the generation settings (``eval_settings.json``): a run with another
model, temperature, top-p, token budget or prompt wording is refused instead of mixing its
predictions with the old ones; and ``eval.lock`` (holding the PID) keeps a second live process
out of the folder (a lock left by a process that no longer runs is taken over).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
SETTINGS_FILE = "eval_settings.json"
LOCK_FILE = "eval.lock"

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


def vllm_missing() -> str:
    """What this machine lacks for the vLLM backend, in words."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM, which is not installed (pip install 'vlthinker[gpu]')"
    return "a CUDA GPU, and none is visible here"


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
    _repair_tail(predictions_path)
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

    previous = _previous_summary(out / RESULTS_JSON)
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
    if any(pending for _, pending in plan):
        _write_json(out / SETTINGS_FILE, key)
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


# ---------------------------------------------------------------- what made the predictions


def _model_identity(model_path: str | Path | None) -> tuple[str | None, str | None]:
    """The model as given (an absolute path for a local folder) and a fingerprint of its weight
    files (names, sizes, modification times), so a checkpoint rewritten in place differs."""
    if model_path is None:
        return None, None
    path = Path(str(model_path)).expanduser()
    if not path.exists():
        return str(model_path), None
    files = [path] if path.is_file() else sorted(path.iterdir())
    weights = [
        f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
        for f in files
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".pt", ".gguf")
    ]
    import hashlib

    digest = hashlib.sha256("\n".join(weights).encode()).hexdigest()[:16] if weights else None
    return str(path.resolve()), digest


def generation_key(
    model_path: str | Path | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    prompt_config: Any,
) -> dict[str, Any]:
    """What decides a prediction: the model and the generation and prompt settings."""
    model, weights = _model_identity(model_path)
    prompt = dataclasses.asdict(prompt_config) if dataclasses.is_dataclass(prompt_config) else {}
    return {
        "model": model,
        "weights": weights,
        "max_new_tokens": int(max_new_tokens),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "prompt": json.loads(json.dumps(prompt, default=str)),
    }


_KEY_LABELS = {
    "model": "--model",
    "weights": "the model's weight files",
    "max_new_tokens": "--max-new-tokens",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "prompt": "the prompt settings (--think-tag)",
}


def check_generation_key(out: Path, key: dict[str, Any]) -> dict[str, Any]:
    """The key of this run after comparing it with the one the predictions were made with.

    Raises ``ValueError`` naming each setting that differs when ``out`` holds predictions made
    otherwise. Without ``--model`` (re-rendering the table of a finished run) the stored model
    is kept. A folder from before the key existed is checked against its results.json.
    """
    predictions = out / PREDICTIONS_FILE
    has_predictions = predictions.exists() and predictions.stat().st_size > 0
    stored = _previous_summary(out / SETTINGS_FILE)
    if not stored and has_predictions:
        previous = _previous_summary(out / RESULTS_JSON)
        settings = previous.get("settings") or {}
        stored = {
            name: settings[name]
            for name in ("max_new_tokens", "temperature", "top_p")
            if name in settings
        }
        if previous.get("model") is not None:
            stored["model"] = previous["model"]
        if not stored:
            log.warning(
                "%s holds predictions with no record of the model and settings that made them; "
                "they are taken to match this run",
                predictions,
            )
    if not has_predictions:
        return key
    if key["model"] is None:
        key = {**key, "model": stored.get("model"), "weights": stored.get("weights")}
    elif stored.get("model") is not None and not Path(str(stored["model"])).is_absolute():
        # a key from results.json holds the model as it was typed
        key_model = str(key["model"])
        if Path(str(stored["model"])).expanduser().resolve() == Path(key_model):
            stored = {**stored, "model": key_model}
    differences = [
        f"{_KEY_LABELS[name]}: {stored[name]!r} there, {key[name]!r} now"
        for name in _KEY_LABELS
        if stored.get(name) is not None and stored[name] != key.get(name)
    ]
    if differences:
        raise ValueError(
            f"{predictions} holds predictions made with other settings ("
            + "; ".join(differences)
            + f"). Give another --out, or delete {out} to start over."
        )
    return key


def _write_json(path: Path, data: Any) -> None:
    """Write a small JSON file atomically (a crash leaves the old file or the new one)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


# ---------------------------------------------------------------- one process per folder


class FolderLockedError(ValueError):
    """Another live process holds the folder's lock."""


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def folder_lock(
    folder: Path, name: str = LOCK_FILE, what: str = "vlthinker eval"
) -> Iterator[None]:
    """Hold ``folder/name`` (it holds this process's PID and host) for the ``with`` block.

    A lock held by a live process raises :class:`FolderLockedError`; one left by a process
    that no longer runs (on this host) is taken over with a warning.
    """
    path = folder / name
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _previous_summary(path)
            pid = holder.get("pid")
            host = holder.get("host")
            if not isinstance(pid, int):
                # being written this instant, or torn: stale once it is a few seconds old
                try:
                    age = time.time() - path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age < 5:
                    raise FolderLockedError(
                        f"{folder} is in use by another {what} (lock file {path})"
                    ) from None
            elif host != mine["host"]:
                raise FolderLockedError(
                    f"{folder} is in use by {what} pid {pid} on host {host} (lock file {path}); "
                    "if that process is gone, delete the lock file"
                ) from None
            elif _process_alive(pid) and pid != os.getpid():
                raise FolderLockedError(
                    f"{folder} is in use by another {what} (pid {pid}); wait for it to finish "
                    "or give another --out"
                ) from None
            log.warning("%s: taking over a stale lock of pid %s, which no longer runs", path, pid)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(mine) + "\n")
        break
    else:
        raise FolderLockedError(f"{folder}: could not take the lock file {path}")
    try:
        yield
    finally:
        if _previous_summary(path).get("pid") == mine["pid"]:
            path.unlink(missing_ok=True)


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
    if backend not in ("auto", "hf", "vllm"):
        raise ValueError(f"backend must be auto, hf or vllm, got {backend!r}")
    use_vllm = backend == "vllm" or (backend == "auto" and vllm_available())
    if backend == "vllm" and not vllm_available():
        raise ValueError(f"--backend vllm needs {vllm_missing()}; use --backend hf (or auto)")
    from vlthinker.models import load_policy

    try:
        from vlthinker.models import resolve_model_path

        model_path = resolve_model_path(str(model_path))
    except ImportError:
        pass
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
