"""What an evaluation reads: ``--data`` specs, and the items (records with their benchmark and
their key in the predictions file) each one loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlthinker.evaluation.adapters import get_benchmark


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
    if not items:
        raise ValueError(f"{spec.path or label}: no records to evaluate (the data is empty)")
    seen: set[str] = set()
    for item in items:
        if item.key in seen:
            raise ValueError(
                f"{spec.path or label}: record id {item.key!r} appears twice; ids must be unique"
            )
        seen.add(item.key)
    return items


__all__ = ["DataSpec", "Item", "benchmark_of", "item_key", "load_items"]
