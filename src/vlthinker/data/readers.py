"""Readers: the reference release's JSON/JSONL, plain JSONL/JSON, Parquet and `datasets` on disk.

Every reader yields raw dicts with their origin (``file#index``); :func:`to_record` turns each into
a :class:`Record`, raising :class:`RecordError` for the first problem it finds. With
``on_bad_record="skip"`` bad records are left out, counted, and reported with their reasons —
never dropped silently.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vlthinker.data.records import ANSWER_TYPES, Record, RecordError, image_ref

logger = logging.getLogger(__name__)

# The reference data's ``problem_type`` → (answer type, meta the verifier needs).
REFERENCE_PROBLEM_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "multiple choice": ("multiple_choice", {}),
    "numerical": ("numeric", {}),
    "regression": ("chart", {"metric": "mra"}),
    "math": ("math", {}),
    "ocr": ("ocr", {"metric": "wer"}),
    "spatial grounding": ("grounding", {"box_format": "qwen1000"}),
    "counting": ("counting", {}),
}
# The reference data's ``task_type`` → the task names used throughout vlthinker.
REFERENCE_TASK_TYPES: dict[str, str] = {
    "spatial_grounding": "grounding",
    "spatial_reasoning": "spatial",
    "general_vqa_science_stem": "vqa",
    "math_reasoning": "math",
    "chart_figure_qa": "chart",
    "ocr": "ocr",
}
TASK_TO_REFERENCE = {task: name for name, task in REFERENCE_TASK_TYPES.items()}

OnBadRecord = Literal["raise", "skip"]
_ANSWER_TAG = re.compile(r"^\s*<answer>(.*)</answer>\s*$", re.DOTALL)
_IMAGE_MARKER = re.compile(r"\s*<image>\s*")


@dataclass
class LoadReport:
    """What a load found wrong (filled in when bad records are skipped)."""

    loaded: int = 0
    problems: list[RecordError] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)


def load_records(
    path: str | Path,
    *,
    on_bad_record: OnBadRecord = "raise",
    split: str | None = None,
    report: LoadReport | None = None,
) -> list[Record]:
    """All records under ``path`` (a file, a folder of files, or a `datasets` folder)."""
    if on_bad_record not in ("raise", "skip"):
        raise ValueError(f"on_bad_record must be 'raise' or 'skip', got {on_bad_record!r}")
    report = report if report is not None else LoadReport()
    records: list[Record] = []
    for origin, raw, base_dir in iter_raw(Path(path), split=split):
        try:
            records.append(to_record(raw, origin, base_dir))
        except RecordError as error:
            if on_bad_record == "raise":
                raise
            report.problems.append(error)
    report.loaded = len(records)
    if report.problems:
        reasons = "; ".join(str(p) for p in report.problems[:5])
        logger.warning("skipped %d bad record(s) in %s; first: %s", report.skipped, path, reasons)
    return records


def iter_raw(path: Path, *, split: str | None = None) -> Iterator[tuple[str, Any, Path]]:
    """``(origin, raw record, folder image paths are relative to)`` for every stored record."""
    if not path.exists():
        raise FileNotFoundError(f"no data at {path}")
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            yield from _iter_saved_dataset(path, split)
            return
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix in (".json", ".jsonl", ".parquet") and p.is_file()
        )
        if not files:
            raise FileNotFoundError(f"no .json, .jsonl or .parquet files in {path}")
        for file in files:
            yield from iter_raw(file)
        return
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if not line.strip():
                    continue
                origin = f"{path}#{number}"
                try:
                    yield origin, json.loads(line), path.parent
                except json.JSONDecodeError as error:
                    yield (
                        origin,
                        RecordError(origin, "<line>", f"invalid JSON: {error}"),
                        path.parent,
                    )
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = next((data[k] for k in ("data", "records", "items") if k in data), None)
        if not isinstance(data, list):
            raise RecordError(
                str(path), "<file>", "expected a list of records (or {'data': [...]})"
            )
        for index, raw in enumerate(data):
            yield f"{path}#{index}", raw, path.parent
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, raw in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}#{index}", raw, path.parent
    else:
        raise ValueError(f"unsupported data file {path}: use .json, .jsonl, .parquet or a folder")


def _iter_saved_dataset(path: Path, split: str | None) -> Iterator[tuple[str, Any, Path]]:
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(path))
    if isinstance(data, DatasetDict):
        chosen = split or ("train" if "train" in data else next(iter(data)))
        if chosen not in data:
            raise ValueError(f"{path}: no split {chosen!r}; splits are {list(data)}")
        data = data[chosen]
    for index, raw in enumerate(data):
        yield f"{path}#{index}", raw, path


def to_record(raw: Any, origin: str, base_dir: Path) -> Record:
    """One raw dict → :class:`Record` (reference format or plain format), validated."""
    if isinstance(raw, RecordError):
        raise raw
    if not isinstance(raw, dict):
        raise RecordError(origin, "<record>", f"expected an object, got {type(raw).__name__}")
    if "problem" in raw or "problem_type" in raw:
        return _from_reference(raw, origin, base_dir)
    return _from_plain(raw, origin, base_dir)


def _from_reference(raw: dict[str, Any], origin: str, base_dir: Path) -> Record:
    problem_type = _text(raw, "problem_type", origin)
    mapped = REFERENCE_PROBLEM_TYPES.get(problem_type.strip().lower())
    if mapped is None and problem_type in ANSWER_TYPES:
        mapped = (problem_type, {})
    if mapped is None:
        known = sorted(REFERENCE_PROBLEM_TYPES) + list(ANSWER_TYPES)
        raise RecordError(
            origin, "problem_type", f"unknown answer type {problem_type!r}; known: {known}"
        )
    answer_type, verifier_meta = mapped
    task_type = _text(raw, "task_type", origin)
    meta = {**verifier_meta, **_dict(raw, "meta", origin)}
    return Record(
        id=str(raw.get("problem_id", raw.get("id", origin))),
        task=REFERENCE_TASK_TYPES.get(task_type, task_type),
        answer_type=answer_type,
        question=_IMAGE_MARKER.sub(" ", _text(raw, "problem", origin)).strip(),
        answer=parse_answer(raw.get("answer"), answer_type, origin),
        images=_images(raw.get("images", []), base_dir, origin),
        options=_options(raw.get("options"), origin),
        source=str(raw.get("data_source") or ""),
        meta=meta,
        solution=raw.get("solution") if isinstance(raw.get("solution"), str) else None,
        origin=origin,
    )


def _from_plain(raw: dict[str, Any], origin: str, base_dir: Path) -> Record:
    answer_type = _text(raw, "answer_type", origin)
    if answer_type not in ANSWER_TYPES:
        raise RecordError(
            origin,
            "answer_type",
            f"unknown answer type {answer_type!r}; known: {list(ANSWER_TYPES)}",
        )
    images = raw.get("images", raw.get("image", []))
    return Record(
        id=str(raw.get("id", origin)),
        task=_text(raw, "task", origin),
        answer_type=answer_type,
        question=_IMAGE_MARKER.sub(" ", _text(raw, "question", origin)).strip(),
        answer=parse_answer(raw.get("answer"), answer_type, origin),
        images=_images(images, base_dir, origin),
        options=_options(raw.get("options"), origin),
        source=str(raw.get("source") or ""),
        meta=_dict(raw, "meta", origin),
        solution=raw.get("solution") if isinstance(raw.get("solution"), str) else None,
        origin=origin,
    )


def parse_answer(value: Any, answer_type: str, origin: str) -> Any:
    """The ground truth without its ``<answer>`` wrapper; grounding boxes as 4 numbers."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(origin, "answer", "missing answer")
    if isinstance(value, str):
        match = _ANSWER_TAG.match(value)
        value = match.group(1).strip() if match else value.strip()
        if not value:
            raise RecordError(origin, "answer", "empty <answer></answer>")
    if answer_type != "grounding":
        if isinstance(value, bool) or not isinstance(value, str | int | float | list):
            raise RecordError(
                origin, "answer", f"expected text or a number, got {type(value).__name__}"
            )
        return value
    box = value
    if isinstance(box, str):
        try:
            box = json.loads(box)
        except json.JSONDecodeError as error:
            raise RecordError(origin, "answer", f"grounding answer is not JSON: {error}") from error
    if isinstance(box, dict):
        box = box.get("boxes", box.get("bbox"))
    if isinstance(box, list) and len(box) == 1 and isinstance(box[0], list):
        box = box[0]
    if not (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise RecordError(origin, "answer", f"grounding answer must be 4 numbers, got {value!r}")
    return [float(v) for v in box]


def _text(raw: dict[str, Any], name: str, origin: str) -> str:
    value = raw.get(name)
    if value is None:
        raise RecordError(origin, name, "missing")
    if not isinstance(value, str):
        raise RecordError(origin, name, f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(origin, name, "empty")
    return value


def _dict(raw: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if isinstance(value, str):  # Parquet and `datasets` columns often hold meta as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise RecordError(origin, name, f"invalid JSON: {error}") from error
    if not isinstance(value, dict):
        raise RecordError(origin, name, f"expected an object, got {type(value).__name__}")
    return dict(value)


def _options(value: Any, origin: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(origin, "options", "expected a list of strings")
    return list(value)


def _images(value: Any, base_dir: Path, origin: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    return [image_ref(v, base_dir, origin, f"images[{i}]") for i, v in enumerate(value)]
