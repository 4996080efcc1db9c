"""Records → the rows TRL's GRPOTrainer consumes (prompt, images, and what the verifier needs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from vlthinker.data import PromptConfig, Record, build_messages, verifier_meta


def training_rows(
    records: Sequence[Record],
    prompt_config: PromptConfig,
    task_index: dict[str, int],
    stage2_index: dict[str, int],
    stage2_key: str,
) -> Dataset:
    """One row per record: chat ``prompt`` (text only; TRL inserts the image placeholders),
    decoded ``images``, and the columns the reward functions and advantage grouping read."""
    rows = []
    for position, record in enumerate(records):
        messages = build_messages(record, prompt_config)
        rows.append(
            {
                "prompt": [{"role": "user", "content": _text_of(messages)}],
                "images": record.load_images(),
                "answer_json": json.dumps(record.answer),
                "answer_type": record.answer_type,
                "task": record.task,
                "task_index": task_index[record.task],
                "stage2_index": stage2_index[getattr(record, stage2_key)],
                "record_id": str(record.id if record.id is not None else position),
                "score_meta": json.dumps(verifier_meta(record, prompt_config)),
            }
        )
    return Dataset.from_list(rows)


def _text_of(messages: list[dict[str, Any]]) -> str:
    """The user turn's text; image entries come first in our message form (as TRL expects)."""
    user = next(m for m in messages if m["role"] == "user")
    content = user["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")
