"""Load and save Qwen-VL processors, also where torchvision is missing.

transformers' video processors need torchvision, and Qwen-VL processors insist on one, so on a
CPU-only install (torch without torchvision) ``AutoProcessor`` cannot build any Qwen-VL processor.
The project only feeds images, so there it builds the same processor class without the video
part; with torchvision installed, plain ``AutoProcessor`` is used and loads what we save.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VIDEO_CONFIG = "video_preprocessor_config.json"


def torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


def _image_only_class(base: type) -> type:
    """``base`` (a Qwen-VL processor class) accepting ``video_processor=None``."""

    class ImageOnlyProcessor(base):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

        def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> list:
            # ProcessorMixin.save_pretrained expects every part; the Trainer calls this one.
            save_processor(self, save_directory)
            return []

    ImageOnlyProcessor.__name__ = base.__name__
    ImageOnlyProcessor.__qualname__ = base.__qualname__
    return ImageOnlyProcessor


def make_processor(image_processor: Any, tokenizer: Any, chat_template: str | None = None) -> Any:
    """A Qwen3-VL processor from its parts (the video part only where torchvision exists)."""
    from transformers import Qwen3VLProcessor

    if torchvision_available():
        from transformers import Qwen3VLVideoProcessor

        video = Qwen3VLVideoProcessor(
            size=dict(image_processor.size),
            patch_size=image_processor.patch_size,
            temporal_patch_size=image_processor.temporal_patch_size,
            merge_size=image_processor.merge_size,
        )
        return Qwen3VLProcessor(image_processor, tokenizer, video, chat_template=chat_template)
    cls = _image_only_class(Qwen3VLProcessor)
    return cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=None,
        chat_template=chat_template,
    )


def save_processor(processor: Any, out_dir: str | Path) -> None:
    """Save so that ``AutoProcessor`` loads it where torchvision exists, and we load it anywhere."""
    out = Path(out_dir)
    if getattr(processor, "video_processor", None) is not None:
        processor.save_pretrained(out)
        return
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    image = processor.image_processor
    video = {  # what AutoProcessor needs to build the video part on machines with torchvision
        "video_processor_type": "Qwen3VLVideoProcessor",
        "size": dict(image.size),
        "patch_size": image.patch_size,
        "temporal_patch_size": image.temporal_patch_size,
        "merge_size": image.merge_size,
    }
    (out / VIDEO_CONFIG).write_text(json.dumps(video, indent=2) + "\n")
    config = {"processor_class": "Qwen3VLProcessor"}
    (out / "processor_config.json").write_text(json.dumps(config, indent=2) + "\n")
    if processor.chat_template:
        (out / "chat_template.jinja").write_text(processor.chat_template)


def set_pixel_bounds(
    processor: Any, min_pixels: int | None = None, max_pixels: int | None = None
) -> None:
    """Make the processor resize every image, aspect kept, to between ``min_pixels`` and
    ``max_pixels`` pixels (Qwen-VL's ``size.shortest_edge`` / ``size.longest_edge``, which hold
    pixel counts); None keeps the processor's own bound. The bounds travel with the processor
    when it is saved (``final/``)."""
    if min_pixels is None and max_pixels is None:
        return
    from transformers.image_utils import SizeDict

    image = processor.image_processor
    size = image.size
    low = min_pixels if min_pixels is not None else size.shortest_edge
    high = max_pixels if max_pixels is not None else size.longest_edge
    if low is not None and high is not None and low > high:
        raise ValueError(f"min_pixels ({low}) exceeds max_pixels ({high})")
    image.size = SizeDict(shortest_edge=low, longest_edge=high)


def image_tokens(processor: Any, width: int, height: int) -> int:
    """The number of tokens a ``width`` × ``height`` image takes in a prompt, after the
    processor's resizing (its patches merged ``merge_size``² into one token)."""
    image = processor.image_processor
    return image.get_number_of_image_patches(height, width) // image.merge_size**2


def load_processor(
    path: str | Path, *, min_pixels: int | None = None, max_pixels: int | None = None
) -> Any:
    """``AutoProcessor`` where it can work, else the image-only Qwen3-VL processor from parts;
    ``min_pixels`` / ``max_pixels`` set its image bounds (:func:`set_pixel_bounds`)."""
    processor = _load_processor(path)
    set_pixel_bounds(processor, min_pixels, max_pixels)
    return processor


def _load_processor(path: str | Path) -> Any:
    from transformers import AutoProcessor, AutoTokenizer

    if torchvision_available():
        return AutoProcessor.from_pretrained(str(path))
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(path))
    template_file = path / "chat_template.jinja"
    template = template_file.read_text() if template_file.exists() else tokenizer.chat_template
    return make_processor(image_processor, tokenizer, template)
