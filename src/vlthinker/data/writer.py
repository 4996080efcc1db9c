"""Write records as a data set in the reference release's format: JSONL + image files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlthinker.data.readers import TASK_TO_REFERENCE
from vlthinker.data.records import Record


def reference_answer(record: Record) -> str:
    """The answer wrapped as the reference data wraps it: ``<answer>…</answer>``."""
    if record.answer_type == "grounding":
        return "<answer>" + json.dumps({"boxes": [round(v) for v in record.answer]}) + "</answer>"
    return f"<answer>{record.answer}</answer>"


def write_records(
    records: Sequence[Record], out_dir: str | Path, name: str = "records.jsonl"
) -> Path:
    """``out_dir/records.jsonl`` with image paths relative to it under ``out_dir/images/``.

    Fields follow the reference format (``problem`` with an ``<image>`` marker, ``problem_type``,
    ``task_type``, ``answer`` in ``<answer>`` tags, ``options``, ``data_source``); ``solution``
    and ``meta`` are kept as extra fields, which the reader reads back.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    path = out / name
    with path.open("w", encoding="utf-8") as handle:
        for position, record in enumerate(records):
            images = []
            for i, ref in enumerate(record.images):
                target = Path("images") / f"{_safe(record.id)}-{i}.png"
                if isinstance(ref, bytes):
                    (out / target).write_bytes(ref)
                else:
                    shutil.copyfile(ref, out / target)
                images.append(f"./{target.as_posix()}")
            row: dict[str, Any] = {
                "problem_id": record.id or position,
                "problem": "<image>" * len(images) + " " + record.question,
                "data_type": "image",
                "problem_type": record.answer_type,
                "options": record.options,
                "data_source": record.source,
                "answer": reference_answer(record),
                "images": images,
                "task_type": TASK_TO_REFERENCE.get(record.task, record.task),
                "meta": record.meta,
            }
            if record.solution is not None:
                row["solution"] = record.solution
            handle.write(json.dumps(row) + "\n")
    return path


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))
