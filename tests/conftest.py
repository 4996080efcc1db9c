"""Shared fixtures: one small tiny-VLM folder, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from vlthinker.models.tiny import TinyVLMSpec, build_tiny_vlm

# Property and fuzz tests draw the same examples on every run, so a suite's verdict does not depend
# on the draw; VLTHINKER_RANDOM_EXAMPLES=1 explores new ones (as benchmarks/fuzz_rewards.py does).
settings.register_profile("fixed", derandomize=True)
settings.register_profile("random", derandomize=False)
settings.load_profile("random" if os.environ.get("VLTHINKER_RANDOM_EXAMPLES") else "fixed")

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
