"""Readers: the reference release's JSON/JSONL, plain JSONL/JSON, Parquet and `datasets` on disk.

Every reader yields raw dicts with their origin (``file#index``); :func:`to_record` turns each into
a :class:`Record`, raising :class:`RecordError` for the first problem it finds. With
``on_bad_record="skip"`` bad records are left out, counted, and reported with their reasons —
never dropped silently.

Large files are streamed: JSONL line by line, a top-level JSON list element by element, Parquet
batch by batch. Image paths must stay inside the data folder (no ``..``, no absolute path or
symlink leading out of it) unless ``allow_absolute_images`` (or the environment variable
``VLTHINKER_ALLOW_ABSOLUTE_IMAGES=1``) allows it. Folder scans skip the files vlthinker itself
writes (predictions, results, metrics, checkpoints), so an output folder inside a data folder is
not read as data.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vlthinker import outputs
from vlthinker.data.records import ANSWER_TYPES, Record, RecordError, image_ref, probe_image
from vlthinker.registry import UnknownNameError
from vlthinker.rewards.answer_types import resolve as resolve_answer_type

logger = logging.getLogger(__name__)


class _ProblemTypes(Mapping[str, tuple[str, dict[str, Any]]]):
    """A reference record's ``problem_type`` → (answer type, meta the verifier needs), read from
    the answer-type registry: every registered name and alias, with the options that spelling
    implies (its ``alias_defaults``). Looking a spelling up ignores case, ``_``, ``-`` and spaces,
    as the registry does; an answer type registered later is here at once."""

    def __getitem__(self, problem_type: str) -> tuple[str, dict[str, Any]]:
        try:
            return resolve_answer_type(problem_type)
        except UnknownNameError:
            raise KeyError(problem_type) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*ANSWER_TYPES.names(), *ANSWER_TYPES.aliases()}))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"REFERENCE_PROBLEM_TYPES({dict(self)!r})"


#: The reference data's ``problem_type`` spellings (a view of the answer-type registry).
REFERENCE_PROBLEM_TYPES: Mapping[str, tuple[str, dict[str, Any]]] = _ProblemTypes()

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
ALLOW_ABSOLUTE_ENV = "VLTHINKER_ALLOW_ABSOLUTE_IMAGES"
DATA_SUFFIXES = (".json", ".jsonl", ".parquet")
#: Files vlthinker writes (run folders, checkpoints, evaluations): never read as data.
OUTPUT_FILES = outputs.OUTPUT_FILES
#: A sub-folder holding one of these is a run, checkpoint or evaluation folder: skipped whole.
OUTPUT_MARKERS = (
    "trainer_state.json",
    outputs.METRICS_FILE,
    outputs.PREDICTIONS_FILE,
    outputs.EVAL_SETTINGS_FILE,
    "model.safetensors",
    "adapter_config.json",
    outputs.SFT_SUMMARY_FILE,
)
_JSON_CHUNK = 1 << 20


@dataclass
class LoadReport:
    """What a load found wrong (filled in when bad records are skipped)."""

    loaded: int = 0
    problems: list[RecordError] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)


def allow_absolute_default() -> bool:
    """Whether image paths may leave the data folder when the caller does not say."""
    return os.environ.get(ALLOW_ABSOLUTE_ENV, "").strip().lower() in ("1", "true", "yes")


def load_records(
    path: str | Path,
    *,
    on_bad_record: OnBadRecord = "raise",
    split: str | None = None,
    report: LoadReport | None = None,
    check_images: bool = True,
    allow_absolute_images: bool | None = None,
) -> list[Record]:
    """All records under ``path`` (a file, a folder of files, or a `datasets` folder).

    ``check_images`` opens each image file far enough to find a missing, unreadable, truncated
    or oversized one (no pixels are decoded: that happens per batch), so a bad image is raised —
    or, with ``on_bad_record="skip"``, skipped and reported — before training starts.
    """
    return list(
        iter_records(
            path,
            on_bad_record=on_bad_record,
            split=split,
            report=report,
            check_images=check_images,
            allow_absolute_images=allow_absolute_images,
        )
    )


def iter_records(
    path: str | Path,
    *,
    on_bad_record: OnBadRecord = "raise",
    split: str | None = None,
    report: LoadReport | None = None,
    check_images: bool = True,
    allow_absolute_images: bool | None = None,
) -> Iterator[Record]:
    """:func:`load_records` one record at a time (large files are never held whole)."""
    if on_bad_record not in ("raise", "skip"):
        raise ValueError(f"on_bad_record must be 'raise' or 'skip', got {on_bad_record!r}")
    report = report if report is not None else LoadReport()
    if allow_absolute_images is None:
        allow_absolute_images = allow_absolute_default()
    path = Path(path)
    root = path if path.is_dir() else path.parent
    for origin, raw, base_dir in iter_raw(path, split=split):
        try:
            record = to_record(
                raw, origin, base_dir, root=root, allow_absolute=allow_absolute_images
            )
            if check_images:
                for index, ref in enumerate(record.images):
                    probe_image(ref, origin, f"images[{index}]")
        except RecordError as error:
            if on_bad_record == "raise":
                raise
            report.problems.append(error)
            continue
        report.loaded += 1
        yield record
    if report.problems:
        reasons = "; ".join(str(p) for p in report.problems[:5])
        logger.warning("skipped %d bad record(s) in %s; first: %s", report.skipped, path, reasons)


def data_files(path: Path) -> list[Path]:
    """The data files of a folder, sorted; vlthinker's own output files and folders left out."""
    files: list[Path] = []
    for folder, dirs, names in os.walk(path):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and not any((here / d / marker).exists() for marker in OUTPUT_MARKERS)
        )
        for name in sorted(names):
            if name in OUTPUT_FILES or name.startswith("."):
                continue
            if Path(name).suffix in DATA_SUFFIXES and (here / name).is_file():
                files.append(here / name)
    return sorted(files)


def iter_raw(path: Path, *, split: str | None = None) -> Iterator[tuple[str, Any, Path]]:
    """``(origin, raw record, folder image paths are relative to)`` for every stored record.

    A line or element that cannot be read (not UTF-8, not JSON) is yielded as a
    :class:`RecordError` in place of its record; a file that cannot be read at all raises one.
    """
    if not path.exists():
        raise FileNotFoundError(f"no data at {path}")
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            yield from _iter_saved_dataset(path, split)
            return
        files = data_files(path)
        if not files:
            raise FileNotFoundError(
                f"no .json, .jsonl or .parquet data files in {path} "
                "(vlthinker's own output files are not read as data)"
            )
        for file in files:
            yield from iter_raw(file)
        return
    if path.suffix == ".jsonl":
        yield from _iter_jsonl(path)
    elif path.suffix == ".json":
        yield from _iter_json(path)
    elif path.suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise ValueError(f"unsupported data file {path}: use .json, .jsonl, .parquet or a folder")


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Any, Path]]:
    with path.open("rb") as handle:
        for number, data in enumerate(handle):
            origin = f"{path}#{number}"
            try:
                line = data.decode("utf-8-sig" if number == 0 else "utf-8")
            except UnicodeDecodeError as error:
                reason = (
                    f"line {number + 1} is not UTF-8 text (byte {data[error.start]:#04x} at "
                    f"column {error.start + 1}); save the file as UTF-8"
                )
                yield origin, RecordError(origin, "<line>", reason), path.parent
                continue
            if not line.strip():
                continue
            try:
                yield origin, json.loads(line), path.parent
            except json.JSONDecodeError as error:
                yield (
                    origin,
                    RecordError(origin, "<line>", f"invalid JSON: {error}"),
                    path.parent,
                )


def _file_error(path: Path, reason: str) -> RecordError:
    return RecordError(str(path), "<file>", reason)


def _utf8(data: bytes, path: Path, offset: int = 0) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _file_error(
            path,
            f"not UTF-8 text (byte {data[error.start]:#04x} at offset {offset + error.start}); "
            "save the file as UTF-8",
        ) from None


def _looks_truncated(error: json.JSONDecodeError, text: str) -> bool:
    """Whether a JSON error comes from the text ending early rather than from bad text."""
    return error.msg.startswith("Unterminated") or error.pos >= len(text.rstrip()) - 1


def _json_error(path: Path, error: json.JSONDecodeError, truncated: bool) -> RecordError:
    cause = "the file ends in the middle of a value (truncated?)" if truncated else error.msg
    return _file_error(path, f"invalid JSON at line {error.lineno}, column {error.colno}: {cause}")


def _iter_json(path: Path) -> Iterator[tuple[str, Any, Path]]:
    """A top-level list is streamed element by element; ``{"data": [...]}`` is read whole."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    text_head = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text_head.startswith(b"["):
        yield from _iter_json_list(path)
        return
    raw = path.read_bytes()
    text = _utf8(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _json_error(path, error, _looks_truncated(error, text)) from None
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "records", "items") if k in data), None)
    if not isinstance(data, list):
        raise _file_error(path, "expected a list of records (or {'data': [...]})")
    for index, raw_record in enumerate(data):
        yield f"{path}#{index}", raw_record, path.parent


class _ChunkReader:
    """UTF-8 text of a file in chunks, with a cursor; consumed text is dropped on refill."""

    def __init__(self, path: Path, handle: Any) -> None:
        self.path, self.handle = path, handle
        self.text = ""
        self.pos = 0
        self.dropped = 0  # characters dropped before ``text`` (for error positions)
        self.offset = 0  # bytes read
        self.pending = b""  # the start of a UTF-8 character split across chunks
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk; False at the end of the file."""
        if self.eof:
            return False
        chunk = self.handle.read(_JSON_CHUNK)
        if not chunk:
            self.eof = True
            if self.pending:
                _utf8(self.pending, self.path, self.offset)
            return False
        data = self.pending + chunk
        if self.offset == 0 and data.startswith(b"\xef\xbb\xbf"):
            data, self.offset = data[3:], 3
        cut = len(data)
        # keep back an incomplete multi-byte character (at most 3 bytes) for the next chunk
        for back in range(1, min(4, len(data)) + 1):
            byte = data[-back]
            if byte & 0xC0 == 0x80:
                continue
            if byte >= 0xC0:
                width = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
                if width > back:
                    cut = len(data) - back
            break
        text = _utf8(data[:cut], self.path, self.offset)
        self.pending = data[cut:]
        self.offset += cut
        self.dropped += self.pos
        self.text = self.text[self.pos :] + text
        self.pos = 0
        return True

    def skip_space(self) -> bool:
        """Move past white space; False at the end of the file."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.text):
                return True
            if not self.more():
                return False


def _iter_json_list(path: Path) -> Iterator[tuple[str, Any, Path]]:
    """Elements of a top-level JSON list, read in chunks (memory: a chunk and an element)."""
    decoder = json.JSONDecoder()
    with path.open("rb") as handle:
        reader = _ChunkReader(path, handle)
        reader.skip_space()
        reader.pos += 1  # the opening "["
        index = 0
        while True:
            if not reader.skip_space():
                raise _file_error(path, "the file ends before the list is closed (truncated?)")
            char = reader.text[reader.pos]
            if char == "]" and index == 0:
                reader.pos += 1
                break
            if index > 0:
                if char == "]":
                    reader.pos += 1
                    break
                if char != ",":
                    where = reader.dropped + reader.pos
                    raise _file_error(
                        path, f"expected ',' or ']' after record {index - 1} (character {where})"
                    )
                reader.pos += 1
                if not reader.skip_space():
                    raise _file_error(path, "the file ends after a ',' (truncated?)")
            while True:
                try:
                    value, end = decoder.raw_decode(reader.text, reader.pos)
                except json.JSONDecodeError as error:
                    if reader.more():
                        continue
                    truncated = _looks_truncated(error, reader.text)
                    cause = "the file ends inside a record (truncated?)" if truncated else error.msg
                    raise _file_error(path, f"record {index}: invalid JSON: {cause}") from None
                if end < len(reader.text) or not reader.more():
                    break  # (a value ending at the chunk's end may go on: decode it again)
            yield f"{path}#{index}", value, path.parent
            reader.pos = end
            index += 1
        if reader.skip_space():
            raise _file_error(path, "unexpected text after the list's closing ']'")


def _iter_parquet(path: Path) -> Iterator[tuple[str, Any, Path]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise _file_error(path, f"not a readable Parquet file: {error}") from None
    index = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for raw in batch.to_pylist():
            yield f"{path}#{index}", raw, path.parent
            index += 1


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


def to_record(
    raw: Any,
    origin: str,
    base_dir: Path,
    *,
    root: Path | None = None,
    allow_absolute: bool = False,
) -> Record:
    """One raw dict → :class:`Record` (reference format or plain format), validated.

    Relative image paths are resolved against ``base_dir`` and must stay inside ``root``
    (default ``base_dir``) unless ``allow_absolute``."""
    if isinstance(raw, RecordError):
        raise raw
    if not isinstance(raw, dict):
        raise RecordError(origin, "<record>", f"expected an object, got {type(raw).__name__}")
    folders = _Folders(base_dir, root if root is not None else base_dir, allow_absolute)
    if "problem" in raw or "problem_type" in raw:
        return _from_reference(raw, origin, folders)
    return _from_plain(raw, origin, folders)


@dataclass(frozen=True)
class _Folders:
    base_dir: Path
    root: Path
    allow_absolute: bool


def _from_reference(raw: dict[str, Any], origin: str, folders: _Folders) -> Record:
    problem_type = _text(raw, "problem_type", origin)
    try:
        # the registry's names and aliases, and the options an alias implies (regression →
        # chart scored by mean relative accuracy, spatial grounding → Qwen 0–1000 boxes)
        answer_type, verifier_meta = resolve_answer_type(problem_type)
    except UnknownNameError as error:
        raise RecordError(origin, "problem_type", str(error)) from None
    task_type = _text(raw, "task_type", origin)
    meta = {**verifier_meta, **_dict(raw, "meta", origin)}
    return Record(
        id=str(raw.get("problem_id", raw.get("id", origin))),
        task=sys.intern(REFERENCE_TASK_TYPES.get(task_type, task_type)),
        answer_type=sys.intern(answer_type),
        question=_IMAGE_MARKER.sub(" ", _text(raw, "problem", origin)).strip(),
        answer=parse_answer(raw.get("answer"), answer_type, origin),
        images=_images(raw.get("images", []), folders, origin),
        options=_options(raw.get("options"), origin),
        source=sys.intern(str(raw.get("data_source") or "")),
        meta=meta,
        solution=raw.get("solution") if isinstance(raw.get("solution"), str) else None,
        origin=origin,
    )


def _from_plain(raw: dict[str, Any], origin: str, folders: _Folders) -> Record:
    answer_type = _text(raw, "answer_type", origin)
    # a plain record names its answer type exactly (code compares record.answer_type with the
    # canonical names), so aliases, which the registry would also find, are refused here
    if answer_type not in ANSWER_TYPES.names():
        raise RecordError(
            origin,
            "answer_type",
            f"unknown answer type {answer_type!r}; known: {list(ANSWER_TYPES)}",
        )
    images = raw.get("images", raw.get("image", []))
    return Record(
        id=str(raw.get("id", origin)),
        task=sys.intern(_text(raw, "task", origin)),
        answer_type=sys.intern(answer_type),
        question=_IMAGE_MARKER.sub(" ", _text(raw, "question", origin)).strip(),
        answer=parse_answer(raw.get("answer"), answer_type, origin),
        images=_images(images, folders, origin),
        options=_options(raw.get("options"), origin),
        source=sys.intern(str(raw.get("source") or "")),
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


def _images(value: Any, folders: _Folders, origin: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    return [
        image_ref(
            v,
            folders.base_dir,
            origin,
            f"images[{i}]",
            root=folders.root,
            allow_absolute=folders.allow_absolute,
        )
        for i, v in enumerate(value)
    ]
