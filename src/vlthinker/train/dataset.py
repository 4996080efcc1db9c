"""Records → the rows TRL's GRPOTrainer consumes (prompt, images, and what the verifier needs).

Images are decoded lazily: the dataset stores each record's image references (a path or the
encoded bytes) and a transform decodes them when the trainer reads a batch, so nothing is decoded
before step 1 and memory does not grow with the number of images. Rows read from the dataset have
the same keys as before (``images`` holds decoded RGB images).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from datasets import Dataset

from vlthinker.data import PromptConfig, Record, build_messages, verifier_meta
from vlthinker.data.records import decode_image

#: Stored columns that the transform turns into ``images`` (they never reach the trainer).
_REFS, _ORIGIN = "image_refs", "record_origin"
_CHUNK = 1_000
_SCHEMA = pa.schema(
    [
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        (_REFS, pa.list_(pa.struct([("path", pa.string()), ("bytes", pa.binary())]))),
        (_ORIGIN, pa.string()),
        ("answer_json", pa.string()),
        ("answer_type", pa.string()),
        ("task", pa.string()),
        ("task_index", pa.int64()),
        ("stage2_index", pa.int64()),
        ("record_id", pa.string()),
        ("score_meta", pa.string()),
    ]
)


def training_rows(
    records: Iterable[Record],
    prompt_config: PromptConfig,
    task_index: dict[str, int],
    stage2_index: dict[str, int],
    stage2_key: str,
) -> Dataset:
    """One row per record: chat ``prompt`` (text only; TRL inserts the image placeholders),
    ``images`` (decoded when the row is read), and the columns the reward functions and
    advantage grouping read. Built in chunks, so the rows are never all Python objects at once."""
    batches: list[pa.RecordBatch] = []
    chunk: dict[str, list[Any]] = {name: [] for name in _SCHEMA.names}
    for position, record in enumerate(records):
        messages = build_messages(record, prompt_config)
        row = {
            "prompt": [{"role": "user", "content": _text_of(messages)}],
            _REFS: [_ref_column(ref) for ref in record.images],
            _ORIGIN: record.origin,
            "answer_json": json.dumps(record.answer),
            "answer_type": record.answer_type,
            "task": record.task,
            "task_index": task_index[record.task],
            "stage2_index": stage2_index[getattr(record, stage2_key)],
            "record_id": str(record.id if record.id is not None else position),
            "score_meta": json.dumps(verifier_meta(record, prompt_config)),
        }
        for name, value in row.items():
            chunk[name].append(value)
        if len(chunk["prompt"]) >= _CHUNK:
            batches.append(pa.RecordBatch.from_pydict(chunk, schema=_SCHEMA))
            chunk = {name: [] for name in _SCHEMA.names}
    if chunk["prompt"] or not batches:
        batches.append(pa.RecordBatch.from_pydict(chunk, schema=_SCHEMA))
    # A fingerprint given here spares `datasets` hashing (serialising) the whole table.
    dataset = Dataset(pa.Table.from_batches(batches, schema=_SCHEMA), fingerprint=uuid.uuid4().hex)
    dataset.set_transform(decode_rows)
    return dataset


def decode_rows(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The dataset transform: image references → decoded RGB images (errors name the record)."""
    refs, origins = batch[_REFS], batch[_ORIGIN]
    out = {name: values for name, values in batch.items() if name not in (_REFS, _ORIGIN)}
    out["images"] = [
        [
            decode_image(
                ref["bytes"] if ref["bytes"] is not None else ref["path"], origin, f"images[{i}]"
            )
            for i, ref in enumerate(row_refs)
        ]
        for row_refs, origin in zip(refs, origins, strict=True)
    ]
    return out


def _ref_column(ref: Any) -> dict[str, Any]:
    if isinstance(ref, bytes):
        return {"path": None, "bytes": ref}
    if isinstance(ref, str):
        return {"path": ref, "bytes": None}
    # a PIL image held in memory: store it encoded (decode_image reads it back)
    import io

    buffer = io.BytesIO()
    ref.save(buffer, format="PNG")
    return {"path": None, "bytes": buffer.getvalue()}


def _text_of(messages: list[dict[str, Any]]) -> str:
    """The user turn's text; image entries come first in our message form (as TRL expects)."""
    user = next(m for m in messages if m["role"] == "user")
    content = user["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


# ------------------------------------------------------------------ the prompt length
def prompt_tokens(record: Record, processor: Any, prompt_config: PromptConfig) -> int:
    """The tokens ``record``'s prompt takes as the trainer builds it: the chat template around
    its text, plus each image's tokens at the processor's pixel bounds (image headers are read,
    no pixels decoded)."""
    from vlthinker.models.processor import image_tokens

    content: list[dict[str, Any]] = [{"type": "image"} for _ in record.images]
    content.append({"type": "text", "text": _text_of(build_messages(record, prompt_config))})
    text = processor.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    tokenizer = getattr(processor, "tokenizer", processor)
    count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    for index, ref in enumerate(record.images):
        width, height = _image_size(ref, record.origin, f"images[{index}]")
        count += image_tokens(processor, width, height) - 1  # the template holds one pad each
    return count


def within_prompt_length(
    records: Iterable[Record], processor: Any, prompt_config: PromptConfig, limit: int
) -> tuple[list[Record], list[Record]]:
    """``(kept, dropped)``: the records whose prompt takes at most ``limit`` tokens
    (:func:`prompt_tokens`), and the others."""
    kept: list[Record] = []
    dropped: list[Record] = []
    for record in records:
        fits = prompt_tokens(record, processor, prompt_config) <= limit
        (kept if fits else dropped).append(record)
    return kept, dropped


def _image_size(ref: Any, origin: str, field_name: str) -> tuple[int, int]:
    import io

    from PIL import Image

    if isinstance(ref, Image.Image):
        return ref.size
    try:
        with Image.open(io.BytesIO(ref) if isinstance(ref, bytes) else ref) as image:
            return image.size
    except (OSError, ValueError):
        return decode_image(ref, origin, field_name).size  # raises naming the record
