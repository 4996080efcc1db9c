"""The typed record every stage consumes, and how images are loaded from it.

A record is one prompt: a question about one or more images, the answer its verifier checks, the
task it is grouped by (advantages, shaping and reports are per task) and the answer type that picks
the verifier. Images stay references (paths or bytes) until a stage asks for pixels; a path read
from a data file must lie inside the data folder unless absolute paths are allowed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.Image import DecompressionBombError

# The answer types are the registered verifiers: a record's answer_type is checked against the
# registry, so a newly registered answer type is valid in data files without a second list here.
from vlthinker.rewards.answer_types import ANSWER_TYPES as ANSWER_TYPES

#: The tasks records are grouped by (advantages, shaping and reports are per task).
TASKS = ("math", "chart", "ocr", "grounding", "spatial", "vqa")

ImageRef = str | bytes


class RecordError(ValueError):
    """A record that cannot be used; the message names the file, the record and the field."""

    def __init__(self, origin: str, field_name: str, reason: str) -> None:
        self.origin = origin
        self.field = field_name
        self.reason = reason
        super().__init__(f"{origin}: field '{field_name}': {reason}")


@dataclass(slots=True)
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
    except DecompressionBombError as error:
        raise _too_large(ref, origin, field_name, _bomb_pixels(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        where = "bytes" if isinstance(ref, bytes) else str(ref)
        raise RecordError(
            origin, field_name, f"corrupt or unreadable image ({where}): {error}"
        ) from error


def _too_large(
    ref: ImageRef, origin: str, field_name: str, pixels: int | None = None
) -> RecordError:
    """The one message for an image over PIL's decompression-bomb limit, quoting that limit
    (``Image.MAX_IMAGE_PIXELS``, the one :func:`probe_image` enforces) and the image's size."""
    where = "bytes" if isinstance(ref, bytes) else str(ref)
    size = f"{pixels:,} pixels, " if pixels else ""
    return RecordError(
        origin,
        field_name,
        f"image too large to decode safely ({where}): {size}over the limit of "
        f"{Image.MAX_IMAGE_PIXELS:,} pixels",
    )


def _bomb_pixels(error: Exception) -> int | None:
    """The image's pixel count from PIL's DecompressionBombError text, if it gives one."""
    match = re.search(r"\((\d+) pixels\)", str(error))
    return int(match.group(1)) if match else None


def probe_image(ref: ImageRef | Image.Image, origin: str, field_name: str) -> None:
    """Check an image without decoding its pixels: the file opens, its format is known, its
    size is within PIL's decompression-bomb limit and (PNG and the like) its data is complete.
    A problem raises :class:`RecordError` naming the record and the field."""
    if isinstance(ref, Image.Image):
        return
    try:
        source = io.BytesIO(ref) if isinstance(ref, bytes) else Path(ref)
        if isinstance(source, Path) and not source.is_file():
            raise RecordError(origin, field_name, f"image file not found: {source}")
        with Image.open(source) as image:
            width, height = image.size
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                raise _too_large(ref, origin, field_name, width * height)
            image.verify()
    except RecordError:
        raise
    except DecompressionBombError as error:
        raise _too_large(ref, origin, field_name, _bomb_pixels(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        where = "bytes" if isinstance(ref, bytes) else str(ref)
        raise RecordError(
            origin, field_name, f"corrupt or unreadable image ({where}): {error}"
        ) from error


def image_ref(
    value: Any,
    base_dir: Path,
    origin: str,
    field_name: str,
    *,
    root: Path | None = None,
    allow_absolute: bool = False,
) -> ImageRef:
    """Normalise one image entry: a path (relative to the data file), bytes, base64 text, a
    ``{"bytes": …, "path": …}`` dict (Hugging Face / Parquet image columns) or a PIL image.

    A path must resolve (symbolic links followed) to a file inside ``root`` (default
    ``base_dir``, the data file's folder) unless ``allow_absolute``: ``../../etc/passwd``, an
    absolute path elsewhere, or a link leading out of the folder raise :class:`RecordError`."""
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
            return image_ref(
                value["path"],
                base_dir,
                origin,
                field_name,
                root=root,
                allow_absolute=allow_absolute,
            )
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
        path = base_dir / path
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a name too long: base64 text rather than a path
        is_file = False
    if is_file:
        resolved = Path(os.path.realpath(path))
        inside = _resolved_folder(root if root is not None else base_dir)
        if not allow_absolute and not resolved.is_relative_to(inside):
            raise RecordError(
                origin,
                field_name,
                f"image path {value!r} leads outside the data folder {inside} (to {resolved}); "
                "allow such paths with data.allow_absolute_images=true (vlthinker train), "
                "--allow-absolute-images (vlthinker data check, vlthinker eval) or "
                "VLTHINKER_ALLOW_ABSOLUTE_IMAGES=1",
            )
        return str(resolved)
    payload = _maybe_b64_image(value)
    if payload is not None:
        return payload
    raise RecordError(origin, field_name, f"image file not found: {path}")


@functools.lru_cache(maxsize=256)
def _resolved_folder(folder: Path) -> Path:
    return folder.resolve()


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
