"""The typed record every stage consumes, and how images are loaded from it.

A record is one prompt: a question about one or more images, the answer its verifier checks, the
task it is grouped by (advantages, shaping and reports are per task) and the answer type that picks
the verifier. Images stay references (paths or bytes) until a stage asks for pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

TASKS = ("math", "chart", "ocr", "grounding", "spatial", "vqa")
ANSWER_TYPES = ("multiple_choice", "numeric", "chart", "math", "ocr", "grounding", "counting")

ImageRef = str | bytes


class RecordError(ValueError):
    """A record that cannot be used; the message names the file, the record and the field."""

    def __init__(self, origin: str, field_name: str, reason: str) -> None:
        self.origin = origin
        self.field = field_name
        self.reason = reason
        super().__init__(f"{origin}: field '{field_name}': {reason}")


@dataclass
class Record:
    """One training or evaluation prompt.

    ``origin`` says where the record came from (``file#index``) so that errors raised long after
    loading (a corrupt image met during training) still name the file and the record.
    """

    id: str
    task: str
    answer_type: str
    question: str
    answer: Any
    images: list[ImageRef] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    solution: str | None = None
    origin: str = "<memory>"

    def load_images(self) -> list[Image.Image]:
        """Decode every image to RGB; a missing or corrupt one raises :class:`RecordError`."""
        return [decode_image(ref, self.origin, f"images[{i}]") for i, ref in enumerate(self.images)]


def decode_image(ref: ImageRef | Image.Image, origin: str, field_name: str) -> Image.Image:
    """Pixels from a path, raw bytes or a PIL image; errors name the record and the field."""
    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    try:
        if isinstance(ref, bytes):
            with Image.open(io.BytesIO(ref)) as image:
                image.load()
                return image.convert("RGB")
        path = Path(ref)
        if not path.is_file():
            raise RecordError(origin, field_name, f"image file not found: {path}")
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except RecordError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        where = "bytes" if isinstance(ref, bytes) else str(ref)
        raise RecordError(
            origin, field_name, f"corrupt or unreadable image ({where}): {error}"
        ) from error


def image_ref(value: Any, base_dir: Path, origin: str, field_name: str) -> ImageRef:
    """Normalise one image entry: a path (relative to the data file), bytes, base64 text, a
    ``{"bytes": …, "path": …}`` dict (Hugging Face / Parquet image columns) or a PIL image."""
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return image_ref(value["path"], base_dir, origin, field_name)
        raise RecordError(origin, field_name, "image dict has neither 'bytes' nor 'path'")
    if not isinstance(value, str) or not value:
        raise RecordError(
            origin, field_name, f"expected an image path or bytes, got {type(value).__name__}"
        )
    if value.startswith("data:image"):
        value = value.split(",", 1)[-1]
        return _b64(value, origin, field_name)
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if path.is_file():
        return str(path)
    payload = _maybe_b64_image(value)
    if payload is not None:
        return payload
    raise RecordError(origin, field_name, f"image file not found: {path}")


_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


def _maybe_b64_image(text: str) -> bytes | None:
    """Bytes of ``text`` read as base64, if that gives an image file's signature."""
    if len(text) < 16 or len(text) % 4:
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_IMAGE_MAGIC) else None


def _b64(text: str, origin: str, field_name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RecordError(origin, field_name, f"invalid base64 image: {error}") from error
