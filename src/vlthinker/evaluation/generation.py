"""Batched, left-padded Hugging Face generation that never emits vision special tokens.

Evaluation-time generation (``generators.hf_generator`` and the trainer's validation through
``evaluate_records``); training rollouts are generated inside TRL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vlthinker.models.loading import vision_token_ids

__all__ = ["encode_prompts", "generate", "generate_tokens"]


def encode_prompts(
    processor: Any,
    messages: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Image.Image]],
) -> Any:
    """Chat template + processor over a batch (left padding, images flattened in prompt order)."""
    texts = [
        processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        for m in messages
    ]
    flat = [image for item in images for image in item]
    processor.tokenizer.padding_side = "left"
    return processor(text=texts, images=flat or None, padding=True, return_tensors="pt")


def generate(
    model: Any,
    processor: Any,
    messages: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Image.Image]],
    **options: Any,
) -> list[str]:
    """One response per prompt; ``options`` are :func:`generate_tokens`' (greedy by default)."""
    if not messages:
        return []
    new_tokens = generate_tokens(model, processor, messages, images, **options)
    return processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


@torch.no_grad()
def generate_tokens(
    model: Any,
    processor: Any,
    messages: Sequence[list[dict[str, Any]]],
    images: Sequence[Sequence[Image.Image]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    do_sample: bool = False,
) -> torch.Tensor:
    """The generated token ids ``[B, T]`` (right-padded with the pad id after EOS)."""
    inputs = encode_prompts(processor, messages, images).to(model.device)
    tokenizer = processor.tokenizer
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample and temperature > 0,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bad_words_ids": [[i] for i in vision_token_ids(processor)],
    }
    if options["do_sample"]:
        options.update(temperature=temperature, top_p=top_p, top_k=0)
    was_training = model.training
    model.eval()
    try:
        output = model.generate(**inputs, **options)
    finally:
        model.train(was_training)
    return output[:, inputs["input_ids"].shape[1] :]
