"""The shared prompt pass scores rollouts exactly as the full forward does, in fewer tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from vlthinker.train.config import load_config
from vlthinker.train.run import build_trainer
from vlthinker.train.shared_prompt import (
    distinct_prompts,
    shared_prompt_batches,
    shared_prompt_scores,
)


@pytest.fixture(scope="module")
def scoring_call(small_model_dir: Path, tmp_path_factory) -> tuple[Any, tuple, dict]:
    """The model and the arguments of a real training-loss scoring call: 3 prompts × 4 rollouts
    of the small model (TRL's own batch: left-padded prompts, images, 3-D positions)."""
    out = tmp_path_factory.mktemp("shared")
    config = load_config(
        None,
        [
            f"model.path={small_model_dir}",
            "data.train=synthetic",
            "data.validation=synthetic",
            "data.tasks=[ocr,math,grounding]",
            "data.train_size=12",
            "data.validation_size=1",
            "training.max_steps=1",
            "training.eval_steps=0",
            "training.prompts_per_step=3",
            "training.per_device_batch_size=12",
            "training.eval_samples=1",
            "rollout.num_generations=4",
            "rollout.max_new_tokens=12",
            "rollout.online_filter=null",
            "logging.report_to=[]",
            "logging.progress=false",
            f"training.output_dir={out}",
        ],
    )
    built = build_trainer(config, out)
    trainer = built.trainer
    trainer.remove_callback(built.validation)
    calls: list[tuple[tuple, dict]] = []
    inner = trainer._get_per_token_logps_and_entropies

    def recording(*args: Any, **kwargs: Any):
        if torch.is_grad_enabled() and not calls:
            calls.append((args, dict(kwargs)))
        return inner(*args, **kwargs)

    trainer._get_per_token_logps_and_entropies = recording
    trainer.train()
    args, kwargs = calls[0]
    return trainer, args, kwargs


def _full_forward(model, input_ids, attention_mask, logits_to_keep, temperature=1.0, **inputs):
    """The reference: one forward over every row's whole prompt + completion."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **inputs).logits
    logits = logits[:, -logits_to_keep - 1 : -1].float() / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, -logits_to_keep:]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1), entropy


def _image_inputs(kwargs: dict) -> dict:
    keys = ("pixel_values", "image_grid_thw", "mm_token_type_ids")
    return {key: kwargs[key] for key in keys}


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_pass_gives_the_full_forwards_logps_entropies_and_gradients(
    scoring_call, temperature
):
    _, args, kwargs = scoring_call
    model, input_ids, attention_mask, keep = args[:4]
    mask = attention_mask[:, -keep:].bool()
    reference = _full_forward(
        model, input_ids, attention_mask, keep, temperature, **_image_inputs(kwargs)
    )
    shared = shared_prompt_scores(
        model,
        input_ids,
        attention_mask,
        keep,
        **_image_inputs(kwargs),
        compute_entropy=True,
        temperature=temperature,
    )
    assert shared is not None
    assert bool((shared[0][~mask] == 0).all()) and bool((shared[1][~mask] == 0).all())
    assert torch.allclose(shared[0][mask], reference[0][mask], atol=1e-5)
    assert torch.allclose(shared[1][mask], reference[1][mask], atol=1e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(0)) * mask
    want = torch.autograd.grad((reference[0] * weights).sum(), params, allow_unused=True)
    got = torch.autograd.grad((shared[0] * weights).sum(), params, allow_unused=True)
    pairs = [(a, b) for a, b in zip(want, got, strict=True) if a is not None]
    assert pairs and all(b is not None for _, b in pairs)
    difference = sum(float((a - b).norm() ** 2) for a, b in pairs) ** 0.5
    size = sum(float(a.norm() ** 2) for a, _ in pairs) ** 0.5
    assert size > 0 and difference / size < 1e-4


def test_trainer_scoring_with_the_shared_pass_matches_trls(scoring_call):
    trainer, args, kwargs = scoring_call
    keep, mask = args[3], args[2][:, -args[3] :].bool()
    trainer.args.shared_prompt_pass = False
    with torch.no_grad():
        want, want_entropy, _ = trainer._get_per_token_logps_and_entropies(*args, **kwargs)
        trainer.args.shared_prompt_pass = True
        got, got_entropy, _ = trainer._get_per_token_logps_and_entropies(*args, **kwargs)
        # chunked in rows of 5: one prompt pass per distinct prompt within each chunk
        chunked = shared_prompt_batches(
            *args[:4], 5, **{k: v for k, v in kwargs.items() if k != "batch_size"}
        )
    trainer.args.shared_prompt_pass = False
    assert keep > 0 and chunked is not None
    assert torch.allclose(got[mask], want[mask], atol=1e-5)
    assert torch.allclose(got_entropy[mask], want_entropy[mask], atol=1e-5)
    assert torch.allclose(chunked[0][mask], want[mask], atol=1e-5)


def test_prompts_are_shared_only_when_tokens_and_image_are_identical():
    prompt = torch.tensor([[0, 5, 7], [0, 5, 7], [0, 5, 7], [4, 5, 7]])
    pixels = torch.zeros(4 * 2, 3)
    pixels[4:6] = 1.0  # row 2: the same text as rows 0 and 1, another image
    first, inverse = distinct_prompts(prompt, pixels, rows_per_image=2)
    assert inverse[0] == inverse[1] and len({int(i) for i in inverse}) == 3
    assert first[inverse[0]] == 0 and first[inverse[2]] == 2 and first[inverse[3]] == 3
    grids = torch.tensor([[1, 2, 1], [1, 1, 2], [1, 2, 1], [1, 2, 1]])  # row 1: another layout
    _, by_grid = distinct_prompts(prompt[:2], pixels[:4], 2, grids[:2])
    assert by_grid[0] != by_grid[1]
    first, inverse = distinct_prompts(prompt[2:], pixels[4:], rows_per_image=2)  # no repeats
    assert sorted(first.tolist()) == [0, 1] and torch.equal(first[inverse], torch.arange(2))


def test_inputs_of_other_model_families_fall_back_to_the_full_forward(scoring_call):
    _, args, kwargs = scoring_call
    inputs = {k: v for k, v in kwargs.items() if k != "batch_size"}
    other = dict(inputs, pixel_attention_mask=torch.ones(1))  # e.g. an Idefics-style input
    assert shared_prompt_batches(*args[:4], **other) is None
    assert shared_prompt_batches(*args[:4], **dict(inputs, compute_aux_loss=True)) is None
    two_images = dict(inputs, num_images=[2] * args[1].size(0))
    assert shared_prompt_batches(*args[:4], **two_images) is None
    assert shared_prompt_batches(*args[:4], **dict(inputs, pixel_values=None)) is None


def test_checkpointed_models_and_images_in_completions_fall_back(scoring_call):
    _, args, kwargs = scoring_call
    model = args[0]
    inputs = {k: v for k, v in kwargs.items() if k != "batch_size"}
    types = inputs["mm_token_type_ids"].clone()
    types[0, -1] = 1  # an image token inside a completion
    assert shared_prompt_batches(*args[:4], **dict(inputs, mm_token_type_ids=types)) is None
    model.gradient_checkpointing_enable()
    try:
        assert shared_prompt_batches(*args[:4], **inputs) is None
        with torch.no_grad():  # scoring without gradient needs no checkpointing: still shared
            assert shared_prompt_batches(*args[:4], **inputs) is not None
    finally:
        model.gradient_checkpointing_disable()
