"""Shared fixtures: one small tiny-VLM folder, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlthinker.models.tiny import TinyVLMSpec, build_tiny_vlm

# Smaller than the shipped model so that building, generating and training in tests stays fast.
SMALL = TinyVLMSpec(
    vocab_size=400,
    hidden_size=64,
    layers=2,
    heads=2,
    kv_heads=1,
    intermediate_size=128,
    vision_hidden_size=64,
    vision_layers=2,
    vision_heads=2,
    vision_intermediate_size=128,
    image_size=64,
    tokenizer_items=120,
)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """An untrained small tiny VLM saved to disk; tests read it and never write to it."""
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny"), SMALL)
