"""Rollout: batched generation from chat messages and images (HF generate; vLLM inside TRL)."""

from vlthinker.rollout.generate import encode_prompts, generate, generate_tokens

__all__ = ["encode_prompts", "generate", "generate_tokens"]
