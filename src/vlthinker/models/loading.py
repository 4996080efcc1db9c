"""Resolve a model name to a local folder and load (model, processor) from it, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EMBEDDED_MODELS = {"tiny_vlm": ASSETS / "tiny_vlm"}
EMBEDDED_PREFIX = "embedded:"
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def resolve_model_path(name: str | Path) -> Path:
    """``embedded:tiny_vlm`` → the checkpoint shipped in the package; anything else is a path."""
    text = str(name)
    if text.startswith(EMBEDDED_PREFIX):
        key = text[len(EMBEDDED_PREFIX) :]
        if key not in EMBEDDED_MODELS:
            raise ValueError(f"unknown embedded model {key!r}; known: {sorted(EMBEDDED_MODELS)}")
        path = EMBEDDED_MODELS[key]
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"the embedded model is missing at {path}; "
                "rebuild it with scripts/build_tiny_model.sh"
            )
        return path
    path = Path(text).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"model folder {path} not found (models are loaded from local folders; "
            "download the checkpoint first, e.g. with `hf download`)"
        )
    return path


def load_policy(
    name: str | Path,
    *,
    dtype: str = "auto",
    attn_implementation: str | None = None,
    device_map: Any = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[Any, Any]:
    """``(model, processor)`` from a local folder, with left padding for batched generation;
    ``min_pixels`` / ``max_pixels`` bound the processor's image sizes (None: the checkpoint's)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from vlthinker.models.processor import load_processor

    path = resolve_model_path(name)
    torch_dtype = {
        "auto": "auto",
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }[dtype]
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    # Qwen-VL's rope index assumes left padding when a batch of prompts is generated together.
    processor.tokenizer.padding_side = "left"
    return model, processor


def vision_token_ids(processor: Any) -> list[int]:
    """Ids of the vision special tokens, which generation must never emit."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = [tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS]
    return [i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id and i >= 0]
