"""Policy models: the embedded tiny Qwen3-VL and loading any local Qwen-VL checkpoint."""

from vlthinker.models.loading import (
    EMBEDDED_MODELS,
    load_policy,
    resolve_model_path,
    vision_token_ids,
)
from vlthinker.models.processor import load_processor, make_processor, save_processor

__all__ = [
    "EMBEDDED_MODELS",
    "load_policy",
    "load_processor",
    "make_processor",
    "resolve_model_path",
    "save_processor",
    "vision_token_ids",
]
