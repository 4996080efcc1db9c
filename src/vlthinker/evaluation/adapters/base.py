"""Shared reading helpers for benchmark adapters: files as published, rows, images, options.

Public benchmark releases come in three layouts: Hugging Face Parquet (images as
``{"bytes", "path"}`` structs), VLMEvalKit TSV (images as base64 strings, or the index of
another row holding the same image), and JSON / JSONL (images as base64 or relative paths).
The helpers here read any of them into plain dict rows and turn embedded images into files
under an image cache, so every adapter returns ``vlthinker.data.Record`` items whose
``images`` are paths.
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import hashlib
import io
import json
import math
import re
import string
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

TABLE_SUFFIXES = (".parquet", ".tsv", ".json", ".jsonl")
LETTERS = string.ascii_uppercase
# VLMEvalKit TSVs store a short row index instead of a repeated base64 image (<= 64 chars).
_IMAGE_REFERENCE_MAX = 64
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class BenchmarkFormatError(ValueError):
    """A benchmark file does not have the published layout; the message names file, row, field."""


@dataclass(frozen=True)
class Row:
    """One row of a benchmark file, with where it came from (for error messages)."""

    file: Path
    index: int
    data: dict[str, Any]

    def where(self, field: str | None = None) -> str:
        place = f"{self.file}: record {self.index}"
        return f"{place}: field {field!r}" if field else place

    def get(self, field: str, default: Any = None) -> Any:
        value = self.data.get(field, default)
        return default if is_missing(value) else value

    def require(self, field: str) -> Any:
        value = self.data.get(field)
        if is_missing(value):
            raise BenchmarkFormatError(f"{self.where(field)} is missing or empty")
        return value

    def text(self, field: str, default: str | None = None) -> str:
        value = self.get(field)
        if value is None:
            if default is None:
                raise BenchmarkFormatError(f"{self.where(field)} is missing or empty")
            return default
        return str(value)


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' empty cell) or an empty string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "nan", "None")


# ---------------------------------------------------------------- files and rows


def find_files(
    path: Path,
    *,
    prefer: Sequence[str] = (),
    exclude: Sequence[str] = (),
    suffixes: Sequence[str] = TABLE_SUFFIXES,
) -> list[Path]:
    """The table files of a benchmark: ``path`` itself, or the ones under a directory.

    Under a directory, files whose path contains one of ``exclude`` are dropped; if any file
    path contains one of ``prefer`` (split names such as ``validation`` or ``testmini``), only
    those are kept, so a release folder with several splits reads the split the paper used.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )
    lowered = {p: str(p.relative_to(path)).lower() for p in files}
    files = [p for p in files if not any(x.lower() in lowered[p] for x in exclude)]
    files = one_format_per_table(files)
    for name in prefer:
        chosen = [p for p in files if name.lower() in lowered[p]]
        if chosen:
            return chosen
    if not files:
        raise FileNotFoundError(f"{path}: no {', '.join(suffixes)} file found")
    return files


_FORMAT_PREFERENCE = (".parquet", ".tsv", ".jsonl", ".json")


def one_format_per_table(files: Sequence[Path]) -> list[Path]:
    """The files of one format: a release that ships its items in several formats (MathVerse's
    ``testmini.json`` beside ``testmini.parquet``) is read once, from the format that comes
    first in ``.parquet``, ``.tsv``, ``.jsonl``, ``.json``. No benchmark splits its items
    across formats, so files of the other formats hold the same items again."""

    def rank(file: Path) -> int:
        suffix = file.suffix.lower()
        order = _FORMAT_PREFERENCE
        return order.index(suffix) if suffix in order else len(order)

    if not files:
        return []
    best = min(rank(f) for f in files)
    return [f for f in files if rank(f) == best]


def read_rows(path: Path, **find: Any) -> list[Row]:
    """All rows of the benchmark files under ``path`` (see ``find_files`` for the selection)."""
    rows: list[Row] = []
    for file in find_files(path, **find):
        rows.extend(_read_file(file))
    return rows


def _read_file(file: Path) -> Iterator[Row]:
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, data in enumerate(pq.read_table(file).to_pylist()):
            yield Row(file, i, data)
    elif suffix == ".tsv":
        yield from _read_tsv(file)
    elif suffix == ".jsonl":
        with file.open(encoding="utf-8") as handle:
            for i, line in enumerate(handle):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as error:
                    raise BenchmarkFormatError(
                        f"{file}: record {i}: invalid JSON ({error})"
                    ) from error
                yield Row(file, i, _as_dict(data, file, i))
    elif suffix == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BenchmarkFormatError(f"{file}: invalid JSON ({error})") from error
        if isinstance(data, dict):
            # Some releases key items by id (MathVista's annot_testmini.json); keep the key.
            items = [{"_key": key, **_as_dict(value, file, key)} for key, value in data.items()]
        elif isinstance(data, list):
            items = data
        else:
            raise BenchmarkFormatError(f"{file}: expected a JSON list or object of records")
        for i, item in enumerate(items):
            yield Row(file, i, _as_dict(item, file, i))
    else:
        raise BenchmarkFormatError(f"{file}: unsupported file type {suffix!r}")


def _as_dict(value: Any, file: Path, index: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BenchmarkFormatError(f"{file}: record {index}: expected an object, got {value!r:.60}")
    return value


def _read_tsv(file: Path) -> Iterator[Row]:
    # Base64 images make fields far longer than csv's default limit of 128 KiB.
    csv.field_size_limit(sys.maxsize)
    with file.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = [Row(file, i, dict(data)) for i, data in enumerate(reader)]
    # VLMEvalKit's space saving: a short ``image`` cell is the index of the row with the image.
    by_index = {str(r.data.get("index")): r for r in rows}
    for row in rows:
        image = row.data.get("image")
        if isinstance(image, str) and 0 < len(image) <= _IMAGE_REFERENCE_MAX:
            target = by_index.get(image.strip())
            if target is None or len(str(target.data.get("image", ""))) <= _IMAGE_REFERENCE_MAX:
                raise BenchmarkFormatError(
                    f"{row.where('image')} refers to row index {image!r}, which has no image"
                )
            row.data["image"] = target.data["image"]
        yield row


# ---------------------------------------------------------------- images


class ImageStore:
    """Writes benchmark images once under ``root/<benchmark>/`` and hands back their paths."""

    def __init__(self, root: Path, benchmark: str) -> None:
        self.dir = Path(root) / benchmark
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(
        self, value: Any, name: str, row: Row, field: str, base_dir: Path | None = None
    ) -> str:
        """Store one image given as bytes, a base64 string, an HF image struct, or a path."""
        data = _image_bytes(value, row, field, base_dir or row.file.parent)
        if isinstance(data, Path):
            return str(data)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        digest = hashlib.sha1(data).hexdigest()[:10]
        target = self.dir / f"{safe}-{digest}.png"
        if not target.exists():
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    image = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
                    tmp = target.with_suffix(".tmp.png")
                    image.save(tmp, format="PNG")
                    tmp.replace(target)
            except Exception as error:  # PIL raises many types on corrupt data
                raise BenchmarkFormatError(
                    f"{row.where(field)} is not a readable image ({error})"
                ) from error
        return str(target)

    def save_all(self, values: Iterable[Any], name: str, row: Row, field: str) -> list[str]:
        return [self.save(v, f"{name}-{i}", row, field) for i, v in enumerate(values)]


def _image_bytes(value: Any, row: Row, field: str, base_dir: Path) -> bytes | Path:
    if isinstance(value, dict):  # Hugging Face ``Image`` feature: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return _existing_path(str(value["path"]), row, field, base_dir)
        raise BenchmarkFormatError(
            f"{row.where(field)} is an image struct with neither bytes nor path"
        )
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        looks_like_path = len(text) < 1024 and Path(text).suffix.lower() in _IMAGE_SUFFIXES
        if not looks_like_path:
            try:
                return base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                pass  # not base64: try it as a file path, which names the problem if it fails
        return _existing_path(text, row, field, base_dir)
    raise BenchmarkFormatError(f"{row.where(field)} has no image (got {type(value).__name__})")


def _existing_path(text: str, row: Row, field: str, base_dir: Path) -> Path:
    candidate = Path(text)
    for path in (candidate, base_dir / candidate, base_dir / "images" / candidate.name):
        if path.is_file():
            return path.resolve()
    archives = [
        folder / name
        for folder in (base_dir, base_dir.parent)
        for name in ("images.zip", f"{candidate.parts[0]}.zip" if candidate.parts else "")
        if name and (folder / name).is_file()
    ]
    if archives:
        raise BenchmarkFormatError(
            f"{row.where(field)}: image file {text!r} not found; the images are still packed in "
            f"{archives[0]}: extract it in {archives[0].parent} (unzip {archives[0].name})"
        )
    raise BenchmarkFormatError(f"{row.where(field)}: image file {text!r} not found")


def single_image(row: Row, store: ImageStore, name: str, field: str = "image") -> list[str]:
    """The row's one required image in ``field``, stored under ``name``, as a one-path list."""
    return [store.save(row.require(field), name, row, field)]


# ---------------------------------------------------------------- options and values


def parse_list(value: Any, row: Row, field: str) -> list[Any]:
    """A list cell: a real list, or its Python/JSON text form as TSVs and some parquets keep it."""
    if isinstance(value, list | tuple):
        return list(value)
    if hasattr(value, "tolist"):
        return list(value.tolist())
    if isinstance(value, str):
        text = value.strip()
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, list | tuple):
                return list(parsed)
        return [text]
    raise BenchmarkFormatError(f"{row.where(field)} is not a list (got {value!r:.60})")


def letter_options(choices: Sequence[Any]) -> list[str]:
    """``["cat", "dog"]`` → ``["A. cat", "B. dog"]`` (the reference records' option form)."""
    if len(choices) > len(LETTERS):
        raise ValueError(f"{len(choices)} options are more than {len(LETTERS)} letters")
    return [f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices)]


def column_options(row: Row) -> list[str]:
    """VLMEvalKit MCQ layout: option texts in columns ``A``, ``B``, … until the first empty one."""
    choices = []
    for letter in LETTERS:
        value = row.get(letter)
        if value is None:
            break
        choices.append(str(value))
    return choices


_INLINE_OPTION = re.compile(
    r"(?:^|\n|\s)\(?([A-H])[\.:\)]\s*(.+?)(?=(?:\n|\s)\(?[A-H][\.:\)]|$)", re.S
)


def inline_options(question: str) -> tuple[str, list[str]]:
    """Split ``"… Options: A: x, B: y"`` (MMStar, MathVerse) into the stem and option texts.

    Returns the question unchanged and no options when the options cannot be read in order
    A, B, C, … (the question text then carries them and letters are still matched).
    """
    for marker in ("\nOptions:", "Options:", "\nChoices:", "Choices:"):
        at = question.rfind(marker)
        if at >= 0:
            stem, tail = question[:at].rstrip(), question[at + len(marker) :]
            found = _INLINE_OPTION.findall(tail)
            letters = [letter for letter, _ in found]
            if len(found) >= 2 and letters == list(LETTERS[: len(found)]):
                return stem, [text.strip().rstrip(",;").strip() for _, text in found]
    return question, []


def answer_letter(
    answer: Any, choices: Sequence[Any], row: Row, field: str = "answer", key: str = "letter"
) -> str:
    """The key's letter. ``key`` says what the release stores:

    - ``"letter"`` (VLMEvalKit TSVs, MMMU): a letter, else the option text itself;
    - ``"text"`` (MathVista: the answer is the option text, lupantech/MathVista
      ``evaluation/calculate_score.py``): the option text first, then a letter; a numeric text is
      never read as an index (answer "3" of ["1", "2", "3", "6"] is C);
    - ``"index"`` (lmms-lab AI2D parquet, EmbSpatial): a 0-based index, else a letter or text.
    """
    text = str(answer).strip()
    letters = LETTERS[: max(len(choices), 1)]
    by_text = next((i for i, c in enumerate(choices) if str(c).strip() == text), None)
    if key == "index" and re.fullmatch(r"\d+", text) and int(text) < len(choices):
        return LETTERS[int(text)]
    if key == "text" and by_text is not None:
        return LETTERS[by_text]
    if len(text) == 1 and text.upper() in letters:
        return text.upper()
    if by_text is not None:
        return LETTERS[by_text]
    raise BenchmarkFormatError(
        f"{row.where(field)}: {answer!r} is not one of the {len(choices)} options"
    )


def answer_list(row: Row, field: str) -> list[str]:
    """The accepted answers in ``field``: one answer, or a list of them (a real list or its
    text form); an empty list is a format error."""
    raw = row.require(field)
    if isinstance(raw, str) and not raw.lstrip().startswith("["):
        return [raw]
    answers = [str(a) for a in parse_list(raw, row, field)]
    if not answers:
        raise BenchmarkFormatError(f"{row.where(field)} is an empty list")
    return answers


def choice_fields(
    answer: Any, choices: Sequence[Any], row: Row, key: str = "letter"
) -> dict[str, Any]:
    """The ``make_record`` fields of a multiple-choice item: the key as its letter (read as
    ``answer_letter``'s ``key`` says) and the choices as ``A. …`` options."""
    return {
        "answer_type": "multiple_choice",
        "answer": answer_letter(answer, choices, row, key=key),
        "options": letter_options(choices),
    }


def open_fields(answer: Any) -> dict[str, Any]:
    """The ``make_record`` fields of a free-form item: its verifier type and the answer."""
    return {"answer_type": open_answer_type(answer), "answer": answer}


def as_number(text: Any) -> float | None:
    """A plain number (``"1,234.5"``, ``"12%"`` → 12.0), or None."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        return None
    cleaned = text.strip().replace(",", "").rstrip("%").strip()
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", cleaned):
        return None
    return float(cleaned)


def open_answer_type(answer: Any) -> str:
    """The verifier for a free-form answer: ``numeric`` for a number, ``math`` otherwise
    (symbolic equivalence with a normalised-string fallback)."""
    return "numeric" if as_number(answer) is not None else "math"


def take(rows: list[Row], limit: int | None) -> list[Row]:
    return rows if limit is None else rows[:limit]


def build_each(rows: Iterable[Row], build: Callable[[Row], Any]) -> list[Any]:
    """Apply ``build`` to every row; a row may give one record, a list of them, or None."""
    records: list[Any] = []
    for row in rows:
        made = build(row)
        if made is None:
            continue
        records.extend(made if isinstance(made, list) else [made])
    return records


def make_record(
    *,
    benchmark: str,
    item_id: Any,
    task: str,
    answer_type: str,
    question: str,
    answer: Any,
    images: list[str],
    options: list[str] | None = None,
    rule: str | None = None,
    group: Any = None,
    subset: Any = None,
    verifier_meta: dict[str, Any] | None = None,
    **details: Any,
) -> Any:
    """A ``vlthinker.data.Record`` for one benchmark item.

    ``meta["benchmark"]`` names the benchmark; ``meta["eval"]`` holds what only evaluation
    reads (the item rule, all reference answers, masks, the MMBench rotation group, …) and is
    never passed to the training verifiers; ``verifier_meta`` (e.g. box coordinates) is.
    Every benchmark item declares the official number reading (``numbers: official``): its
    verifiers read numbers as the official scorers' ``float()`` does.
    """
    from vlthinker.data import Record
    from vlthinker.evaluation.scoring import RULES

    evaluation: dict[str, Any] = {key: value for key, value in details.items() if value is not None}
    if rule is not None:
        evaluation["rule"] = RULES.check(rule)  # a misspelt rule fails when the item is read
    if group is not None:
        evaluation["group"] = group
    if subset is not None:
        evaluation["subset"] = subset
    meta: dict[str, Any] = {
        "benchmark": benchmark,
        "numbers": "official",
        **(verifier_meta or {}),
        "eval": evaluation,
    }
    return Record(
        task=task,
        answer_type=answer_type,
        question=question,
        answer=answer,
        images=list(images),
        options=list(options) if options else [],
        source=benchmark,
        id=str(item_id),
        meta=meta,
    )
