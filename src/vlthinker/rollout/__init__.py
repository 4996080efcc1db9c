"""Rollout: batched generation from chat messages and images (HF generate; vLLM inside TRL)."""

from vlthinker.rollout.generate import encode_prompts, generate

__all__ = ["encode_prompts", "generate"]
