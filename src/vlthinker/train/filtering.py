"""Online filtering (docs/method.md §8): keep prompt groups whose mean accuracy is strictly inside a
band, and the batch surgery that refills a rollout batch from several generation calls.

The decision is made on the raw accuracy component, never on the shaped reward, so a length or
format difference alone never keeps a group that is all right or all wrong. The row operations
work on TRL's generation output (a dict of padded tensors, image tensors and lists) and keep
whole prompt groups together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

# How each key of TRL's generation output lines up with the rollouts (rows).
PROMPT_ALIGNED = ("prompt_ids", "prompt_mask")  # left-padded
# Token types span the prompt and, for some models (Qwen3-VL), the completion after it.
TOKEN_TYPES = ("token_type_ids", "mm_token_type_ids")
COMPLETION_ALIGNED = (
    "completion_ids",
    "completion_mask",
    "old_per_token_logps",
    "sampling_per_token_logps",
    "ref_per_token_logps",
    "importance_sampling_ratio",
    "tool_mask",
)  # right-padded
PER_IMAGE = ("pixel_values", "image_grid_thw", "image_position_ids", "image_sizes")
SCALARS = ("num_items_in_batch",)


def live_groups(accuracy: torch.Tensor, generations: int, low: float, high: float) -> torch.Tensor:
    """Online filter of docs/method.md §8: per prompt group, whether its mean accuracy lies strictly
    between ``low`` and ``high`` (the recipe: 0.01 and 0.99). ``accuracy`` is ``[n]`` with each
    group's ``generations`` rollouts side by side; returns ``[n // generations]`` bools."""
    if accuracy.numel() % generations:
        raise ValueError(f"{accuracy.numel()} rollouts do not split into groups of {generations}")
    mean = torch.nan_to_num(accuracy.to(torch.float64), nan=0.0).view(-1, generations).mean(dim=1)
    return (mean > low) & (mean < high)


def group_rows(groups: torch.Tensor, generations: int) -> torch.Tensor:
    """Row indices of the given group indices, each group's rollouts side by side."""
    return (groups[:, None] * generations + torch.arange(generations)[None, :]).reshape(-1)


def _pad_to(tensor: torch.Tensor, width: int, value: float, left: bool) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing <= 0:
        return tensor
    pad = tensor.new_full((tensor.shape[0], missing, *tensor.shape[2:]), value)
    return torch.cat((pad, tensor) if left else (tensor, pad), dim=1)


def _pad_token_types(
    types: torch.Tensor, own_prompt: int, prompt_width: int, completion_width: int
) -> torch.Tensor:
    """Token types of one piece re-padded like its prompt (left) and completion (right)."""
    prompt = _pad_to(types[:, :own_prompt], prompt_width, 0, left=True)
    if types.shape[1] == own_prompt:  # prompt only
        return prompt
    completion = _pad_to(types[:, own_prompt:], completion_width, 0, left=False)
    return torch.cat((prompt, completion), dim=1)


def _row_keys(batch: dict[str, Any]) -> None:
    known = set(PROMPT_ALIGNED + TOKEN_TYPES + COMPLETION_ALIGNED + PER_IMAGE + SCALARS)
    rows = batch["prompt_ids"].shape[0]
    for key, value in batch.items():
        if key in known or value is None:
            continue
        if isinstance(value, list) and len(value) == rows:
            continue
        if isinstance(value, torch.Tensor) and value.dim() == 1 and value.shape[0] == rows:
            continue
        raise ValueError(
            f"generation output key {key!r} has an unknown layout; online filtering cannot "
            "select its rows (add it to vlthinker.train.filtering)"
        )


def take_rows(batch: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The generation output restricted to ``rows`` (in that order), images included."""
    _row_keys(batch)
    split = split_pixel_values_by_grid(batch)
    index = rows.tolist()
    out: dict[str, Any] = {}
    for key, value in split.items():
        if value is None or key in SCALARS:
            out[key] = value
        elif isinstance(value, torch.Tensor):
            out[key] = value[rows.to(value.device)]
        else:  # per-row lists: images split by row, num_images
            out[key] = [value[i] for i in index]
    return out


def concat_rows(pieces: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Row-selected outputs (from :func:`take_rows`) joined into one generation output: prompts
    re-left-padded, completions re-right-padded to the widest piece, images concatenated."""
    out: dict[str, Any] = {}
    prompt_width = max(piece["prompt_ids"].shape[1] for piece in pieces)
    completion_width = max(piece["completion_ids"].shape[1] for piece in pieces)
    for key in pieces[0]:
        values = [piece[key] for piece in pieces]
        if key in TOKEN_TYPES and values[0] is not None:
            out[key] = torch.cat(
                [
                    _pad_token_types(v, p["prompt_ids"].shape[1], prompt_width, completion_width)
                    for v, p in zip(values, pieces, strict=True)
                ]
            )
        elif values[0] is None or key in SCALARS:
            out[key] = values[0]
        elif isinstance(values[0], list):
            out[key] = [item for value in values for item in value]
        elif key in PROMPT_ALIGNED or key in COMPLETION_ALIGNED:
            left = key in PROMPT_ALIGNED
            width = max(v.shape[1] for v in values)
            fill = pad_token_id if key.endswith("_ids") else 0
            out[key] = torch.cat([_pad_to(v, width, fill, left) for v in values])
        else:
            out[key] = torch.cat(values)
    return unsplit_pixel_values_by_grid(out)
