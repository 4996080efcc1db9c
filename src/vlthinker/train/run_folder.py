"""The run folder: metrics.jsonl, and the checkpoint to resume from after a crash or SIGKILL."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Written by HF Trainer after the model, optimizer, scheduler and RNG state: a checkpoint whose
# trainer_state.json parses was saved completely.
_STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
METRICS_FILE = "metrics.jsonl"
BATCHES_FILE = "batches.jsonl"  # the record ids of each step's prompts, in order
VALIDATION_ITEMS_FILE = "validation_items.jsonl"  # per validation pass, every item's score


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def latest_complete_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The highest-step ``checkpoint-N`` whose saving finished; partial ones are skipped."""
    found = []
    for child in Path(run_dir).iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and _is_complete(child):
            found.append(Checkpoint(child, int(match.group(1))))
    return max(found, key=lambda c: c.step, default=None)


def _is_complete(path: Path) -> bool:
    try:
        state = json.loads((path / _STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return has_weights and "global_step" in state


def truncate_metrics(run_dir: str | Path, step: int, name: str = METRICS_FILE) -> int:
    """Drop lines of ``name`` logged after ``step`` (they will be logged again); returns how
    many. A line cut short by the kill is dropped too."""
    path = Path(run_dir) / name
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if entry.get("step", 0) > step:
            dropped += 1
        else:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept))
    return dropped


def append_metrics(run_dir: str | Path, entry: dict[str, Any]) -> None:
    with (Path(run_dir) / METRICS_FILE).open("a") as handle:
        handle.write(json.dumps(entry, allow_nan=True) + "\n")


def append_log(run_dir: str | Path, name: str, step: int, record_ids: list[str]) -> None:
    with (Path(run_dir) / name).open("a") as handle:
        handle.write(json.dumps({"step": step, "record_ids": record_ids}) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_validation_items(
    run_dir: str | Path, step: int, items: dict[str, tuple[str, float]]
) -> None:
    """One validation pass's per-item ``(task, score)``, keyed by the item's place."""
    with (Path(run_dir) / VALIDATION_ITEMS_FILE).open("a") as handle:
        handle.write(json.dumps({"step": step, "items": items}) + "\n")


def read_validation_items(run_dir: str | Path) -> dict[int, dict[str, tuple[str, float]]]:
    """Per validation step, every item's ``(task, score)``; a later line for a step wins."""
    path = Path(run_dir) / VALIDATION_ITEMS_FILE
    if not path.exists():
        return {}
    passes: dict[int, dict[str, tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            passes[int(entry["step"])] = {k: (v[0], float(v[1])) for k, v in entry["items"].items()}
    return passes
