"""The predictions file: one scored response per line of ``predictions.jsonl``.

Lines are appended as each batch is scored, so an interrupted run leaves every finished
prediction behind (and at most one torn last line, which reading drops and appending cuts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlthinker.data.prompts import json_safe
from vlthinker.outputs import PREDICTIONS_FILE

log = logging.getLogger(__name__)


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
    #: the verifiers' number reading ("official" / "lenient"; None in files written before it)
    numbers: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not json_safe(data["answer"]):
            data["answer"] = str(data["answer"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


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


def repair_tail(path: Path) -> None:
    """Cut a torn last line so appended predictions start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


__all__ = [
    "PREDICTIONS_FILE",
    "Prediction",
    "append_predictions",
    "read_predictions",
    "repair_tail",
]
