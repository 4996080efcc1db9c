"""Scoring rollouts with one prompt pass per group.

Every rollout of a group repeats its prompt, and on a small vision-language model the prompt (its
image tokens and the instruction) is most of each scored sequence: in the CPU demo 79 % of the
tokens the training forward and backward process are prompt tokens that eight rows share
(benchmarks/step_profile.py). This module scores a batch as the policy would, but runs each
distinct prompt (same tokens, same image) through the model once, keeps its key/value cache,
hands that cache to every rollout of the prompt, and runs only the completion tokens, all rows in
one pass, on top of it. The log-probabilities and entropies are those of the full forward (up to
float rounding); gradients flow into the shared prompt pass from every row that uses it, so they
equal the full forward's too.

It applies to Qwen-VL-style models (a ``get_rope_index`` for their 3-D rotary positions, one image
per row given as ``pixel_values`` rows plus ``image_grid_thw``); for anything else
:func:`shared_prompt_scores` returns ``None`` and the caller scores the usual way. A batch whose
prompts are all distinct costs what the full forward does.
"""

from __future__ import annotations

from typing import Any

import torch


def base_model(model: Any) -> Any:
    """The transformers model under any wrapper (PEFT's ``get_base_model``, DDP's ``module``)."""
    while True:
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "lm_head"):
            model = model.module
        else:
            return model


def distinct_prompts(
    prompt_ids: torch.Tensor,
    pixel_values: torch.Tensor,
    rows_per_image: int,
    image_grid_thw: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(first_row, inverse)`` over rows whose prompt tokens, image pixels and image grid (the
    patch layout; one per row) are identical:
    ``first_row[k]`` is a row holding distinct prompt ``k`` and ``inverse[i]`` the prompt of row
    ``i``. ``None`` if two rows with equal fingerprints differ after all (the caller then scores
    the usual way)."""
    batch = prompt_ids.size(0)
    pixels = pixel_values.reshape(batch, rows_per_image * pixel_values.size(-1))
    # Two fingerprints of each image join the tokens in the key; equality is then checked exactly.
    weights = torch.linspace(1.0, 2.0, pixels.size(1), dtype=torch.float64, device=pixels.device)
    fingerprint = torch.stack([pixels.double().sum(1), pixels.double() @ weights], dim=1)
    tokens = prompt_ids if image_grid_thw is None else torch.cat([prompt_ids, image_grid_thw], 1)
    key = torch.cat([tokens.double(), fingerprint], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    count = int(inverse.max()) + 1
    first_row = torch.full((count,), batch, dtype=torch.long, device=inverse.device)
    first_row = first_row.scatter_reduce(
        0, inverse, torch.arange(batch, device=inverse.device), reduce="amin"
    )
    same = torch.equal(tokens[first_row][inverse], tokens) and torch.equal(
        pixels[first_row][inverse], pixels
    )
    return (first_row, inverse) if same else None


def shared_prompt_scores(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    pixel_values: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    mm_token_type_ids: torch.Tensor | None = None,
    compute_entropy: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens of each row
    under the policy at ``temperature``, with one model pass per distinct prompt; ``None`` where
    this does not apply (see the module docstring). ``input_ids`` is ``[B, P + C]`` with
    left-padded prompts of length ``P``."""
    core = base_model(model)
    inner = getattr(core, "model", None)
    if (
        pixel_values is None
        or image_grid_thw is None
        or image_grid_thw.size(0) != input_ids.size(0)
        or not hasattr(inner, "get_rope_index")
        or mm_token_type_ids is None
    ):
        return None
    if getattr(core, "is_activation_checkpointing", False) and torch.is_grad_enabled():
        return None  # checkpointed layers return no cache to share
    rows_per_image = int(image_grid_thw[0].prod())
    if not bool((image_grid_thw.prod(-1) == rows_per_image).all()):
        return None
    prompt_length = input_ids.size(1) - logits_to_keep
    prompt_ids = input_ids[:, :prompt_length]
    if bool(mm_token_type_ids[:, prompt_length:].any()):
        return None  # an image inside a completion (tool output): not a shared prefix
    found = distinct_prompts(prompt_ids, pixel_values, rows_per_image, image_grid_thw)
    if found is None:
        return None
    first_row, inverse = found
    # The full batch's 3-D rotary positions, as the full forward would compute them.
    positions, _ = inner.get_rope_index(
        input_ids,
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        attention_mask=attention_mask,
    )
    pixels = pixel_values.reshape(input_ids.size(0), rows_per_image, -1)[first_row]
    prompt_out = model(
        input_ids=prompt_ids[first_row],
        attention_mask=attention_mask[first_row, :prompt_length],
        position_ids=positions[:, first_row, :prompt_length],
        pixel_values=pixels.reshape(-1, pixel_values.size(-1)),
        image_grid_thw=image_grid_thw[first_row],
        mm_token_type_ids=mm_token_type_ids[first_row, :prompt_length],
        use_cache=True,
        logits_to_keep=1,
    )
    cache = prompt_out.cache
    if cache is None:  # no cache returned (e.g. under activation checkpointing): score as usual
        return None
    cache.batch_select_indices(inverse)
    completion_out = model(
        input_ids=input_ids[:, prompt_length:],
        attention_mask=attention_mask,
        position_ids=positions[:, :, prompt_length:],
        cache=cache,
        use_cache=True,
    )
    # The last prompt position predicts the first completion token; each completion position
    # but the last predicts the next.
    logits = torch.cat([prompt_out.logits[inverse], completion_out.logits[:, :-1]], dim=1)
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    targets = input_ids[:, prompt_length:]
    padding = attention_mask[:, prompt_length:] == 0  # 0 there, as TRL's scoring gives
    logps = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).masked_fill(padding, 0.0)
    entropies = None
    if compute_entropy:
        entropies = (-(log_probs.exp() * log_probs).sum(-1)).masked_fill(padding, 0.0)
    return logps, entropies


# The inputs TRL passes for a Qwen-VL batch; any other non-empty one means another model family.
_HANDLED = {"pixel_values", "image_grid_thw", "num_images", "mm_token_type_ids"}


def shared_prompt_batches(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    batch_size: int | None = None,
    *,
    compute_entropy: bool = False,
    compute_aux_loss: bool = False,
    temperature: float = 1.0,
    **inputs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """:func:`shared_prompt_scores` over row chunks of ``batch_size`` (as TRL's scoring chunks a
    batch to bound memory), called as TRL's ``_get_per_token_logps_and_entropies`` is; ``None``
    when any chunk cannot share its prompts, or a MoE auxiliary loss is asked for."""
    if compute_aux_loss:
        return None
    given = {key for key, value in inputs.items() if value is not None}
    if not given <= _HANDLED or any(n != 1 for n in inputs.get("num_images") or [1]):
        return None
    pixel_values, grid = inputs.get("pixel_values"), inputs.get("image_grid_thw")
    token_types = inputs.get("mm_token_type_ids")
    if pixel_values is None or grid is None or token_types is None:
        return None
    # Chunks slice the pixel rows at row × rows_per_image: one patch layout for the whole batch.
    rows_per_image = int(grid[0].prod())
    if not bool((grid.prod(-1) == rows_per_image).all()):
        return None
    size = batch_size or input_ids.size(0)
    logps, entropies = [], []
    for start in range(0, input_ids.size(0), size):
        end = min(start + size, input_ids.size(0))
        scored = shared_prompt_scores(
            model,
            input_ids[start:end],
            attention_mask[start:end],
            logits_to_keep,
            pixel_values=pixel_values[start * rows_per_image : end * rows_per_image],
            image_grid_thw=grid[start:end],
            mm_token_type_ids=token_types[start:end],
            compute_entropy=compute_entropy,
            temperature=temperature,
        )
        if scored is None:
            return None
        logps.append(scored[0])
        entropies.append(scored[1])
    return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None)
