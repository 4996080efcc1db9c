"""Scoring rollouts with one prompt pass per group.

Every rollout of a group repeats its prompt, and on a vision-language model the prompt (its image
tokens and the instruction) is most of each scored sequence: in the CPU demo 79 % of the tokens
the training forward and backward process are prompt tokens that eight rows share
(benchmarks/step_profile.py); at the 8B recipe's shape see benchmarks/scale_step.py and
docs/usage.md. This module scores a batch as the policy would, but runs each distinct prompt (same
tokens, same image) through the model once, keeps its keys and values, hands them to every rollout
of the prompt, and runs only the completion tokens, all rows in one pass, on top of them.

Two passes, both through the (possibly DDP- or DeepSpeed-wrapped) model:

1. the prompt pass over each distinct prompt *but its last token*, recording every layer's keys
   and values (:class:`PrefixRecorder`);
2. the completion pass over ``[last prompt token, completion]`` of every row, attending to its
   prompt's recorded keys and values (:class:`SharedPrefix`), scored by TRL's fused LM head
   (``add_fused_lm_head``, which ``GRPOTrainer`` puts on the policy): log-probs and entropies in
   chunks of positions, never the ``[rows, T, vocab]`` logits. Re-running the last prompt token
   per row is what lets every scored position carry exactly one label: the last prompt position
   predicts each rollout's first token.

The log-probabilities and entropies are those of the full forward (up to float rounding), and
gradients flow into the prompt pass from every row that uses it, so they equal the full
forward's too. Both cache layers are idempotent (recording overwrites, the shared prefix stores
nothing), so a checkpointed layer may replay its forward in the backward pass: activation
checkpointing works as long as it is non-reentrant (TRL's default); a reentrant checkpoint would
cut the prompt's keys and values off the graph, so that case falls back.

It applies to Qwen-VL-style models (a ``get_rope_index`` for their 3-D rotary positions, one image
per row given as ``pixel_values`` rows plus ``image_grid_thw``) carrying TRL's fused head; for
anything else :func:`shared_prompt_scores` returns ``None``, logs why once, and the caller scores
the usual way. A batch whose prompts are all distinct costs what the full forward does.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

logger = logging.getLogger(__name__)


@functools.cache
def _fallback(reason: str) -> None:
    """Log ``reason`` once per process (cached) and return ``None``: the caller scores the usual
    way."""
    logger.warning("shared prompt pass not used: %s; scoring with the full forward", reason)


def _rows_per_image(image_grid_thw: torch.Tensor) -> int | None:
    """The patch rows of each image when every image has the same count, else ``None``."""
    rows = int(image_grid_thw[0].prod())
    return rows if bool((image_grid_thw.prod(-1) == rows).all()) else None


class PrefixRecorder(DynamicLayer):
    """A cache layer that records the keys and values of the prompt pass. It overwrites rather
    than appends, so a checkpointed layer replaying its forward in the backward pass leaves it as
    the forward did."""

    def update(self, key_states, value_states, *args, **kwargs):
        self.keys, self.values = key_states, value_states
        self.device, self.is_initialized = key_states.device, True
        return key_states, value_states


class SharedPrefix(DynamicLayer):
    """A cache layer holding each row's prompt keys and values: attention sees the prompt
    followed by the new tokens, and nothing is stored, so a replayed forward sees the same."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.keys, self.values = keys, values
        self.device, self.is_initialized = keys.device, True

    def update(self, key_states, value_states, *args, **kwargs):
        return torch.cat([self.keys, key_states], -2), torch.cat([self.values, value_states], -2)


def _checkpointed_layers(model: Any) -> list[Any]:
    """The layers that activation checkpointing wraps right now."""
    return [
        m
        for m in model.modules()
        if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing
    ]


def _reentrant(layers: list[Any]) -> bool:
    """Whether any checkpointed layer uses reentrant checkpointing (it keeps no graph for tensors
    a layer hands out through the cache)."""
    for layer in layers:
        function = getattr(layer, "_gradient_checkpointing_func", None)
        if getattr(function, "keywords", {}).get("use_reentrant", True):
            return True
    return False


class _CacheThroughCheckpoints:
    """Let checkpointed layers keep the cache (transformers drops it unless the layer says its
    replay is safe, which the idempotent layers above make it)."""

    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers

    def __enter__(self) -> None:
        for layer in self.layers:
            layer._can_checkpoint_with_cache = True

    def __exit__(self, *exc: object) -> None:
        for layer in self.layers:
            del layer._can_checkpoint_with_cache  # back to the class's own value


def has_fused_head(model: Any) -> bool:
    """Whether ``model`` carries TRL's fused LM head (``add_fused_lm_head``)."""
    code = getattr(base_model(model).forward, "__code__", None)
    return code is not None and "fused_lm_head" in code.co_varnames


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
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens of each row
    under the policy at the temperature of its fused head, with one model pass per distinct
    prompt; ``None`` where this does not apply (see the module docstring). ``input_ids`` is
    ``[B, P + C]`` with left-padded prompts of length ``P``."""
    core = base_model(model)
    inner = getattr(core, "model", None)
    if (
        pixel_values is None
        or image_grid_thw is None
        or image_grid_thw.size(0) != input_ids.size(0)
        or mm_token_type_ids is None
    ):
        return _fallback("not one image per row with Qwen-VL inputs")
    if not hasattr(inner, "get_rope_index"):
        return _fallback(f"{type(core).__name__} has no Qwen-VL 3-D rotary positions")
    if not has_fused_head(model):
        return _fallback("the model has no fused LM head (trl's add_fused_lm_head)")
    checkpointed = _checkpointed_layers(core) if core.training and torch.is_grad_enabled() else []
    if _reentrant(checkpointed):
        return _fallback("reentrant activation checkpointing drops the prompt's graph")
    rows_per_image = _rows_per_image(image_grid_thw)
    if rows_per_image is None:
        return _fallback("images of different sizes in one batch")
    prompt_length = input_ids.size(1) - logits_to_keep
    if prompt_length < 2:
        return _fallback("prompts shorter than two tokens")
    if bool(mm_token_type_ids[:, prompt_length - 1 :].any()):
        return _fallback("an image token after the prompt (tool output)")
    prompt_ids = input_ids[:, :prompt_length]
    found = distinct_prompts(prompt_ids, pixel_values, rows_per_image, image_grid_thw)
    if found is None:
        return _fallback("two prompts with equal fingerprints differ")
    first_row, inverse = found
    # The full batch's 3-D rotary positions, as the full forward would compute them.
    positions, _ = inner.get_rope_index(
        input_ids,
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        attention_mask=attention_mask,
    )
    head = prompt_length - 1  # the prompt pass stops one token short (module docstring)
    pixels = pixel_values.reshape(input_ids.size(0), rows_per_image, -1)[first_row]
    recorded = Cache(layer_class_to_replicate=PrefixRecorder)
    # Completion labels, already shifted: position k of [last prompt token, completion] predicts
    # completion token k; padding and the final position score nothing (-100).
    completion = input_ids[:, prompt_length:]
    labels = completion.masked_fill(attention_mask[:, prompt_length:] == 0, -100)
    labels = torch.cat([labels, labels.new_full((labels.size(0), 1), -100)], dim=1)
    with _CacheThroughCheckpoints(checkpointed):
        model(
            input_ids=prompt_ids[first_row, :head],
            attention_mask=attention_mask[first_row, :head],
            position_ids=positions[:, first_row, :head],
            pixel_values=pixels.reshape(-1, pixel_values.size(-1)),
            image_grid_thw=image_grid_thw[first_row],
            mm_token_type_ids=mm_token_type_ids[first_row, :head],
            cache=recorded,
            use_cache=True,
            logits_to_keep=1,
        )
        prefixes = [SharedPrefix(k.keys[inverse], k.values[inverse]) for k in recorded.layers]
        shared = Cache(layers=prefixes)
        scored = model(
            input_ids=input_ids[:, head:],
            attention_mask=attention_mask,
            position_ids=positions[:, :, head:],
            cache=shared,
            shift_labels=labels,
            fused_lm_head=True,
        )
    if compute_entropy and scored.entropy is None:
        return _fallback("the fused LM head computes no entropy")
    logps = scored.log_probs[:, :-1]
    entropies = scored.entropy[:, :-1] if compute_entropy else None
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
    **inputs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """:func:`shared_prompt_scores` over row chunks of ``batch_size`` (as TRL's scoring chunks a
    batch to bound memory), called as TRL's ``_get_per_token_logps_and_entropies`` is; ``None``
    when any chunk cannot share its prompts, or a MoE auxiliary loss is asked for."""
    if compute_aux_loss:
        return _fallback("a MoE auxiliary loss is asked for")
    given = {key for key, value in inputs.items() if value is not None}
    if not given <= _HANDLED:
        return _fallback(f"inputs of another model family ({sorted(given - _HANDLED)})")
    if any(n != 1 for n in inputs.get("num_images") or [1]):
        return _fallback("rows with more or fewer than one image")
    pixel_values, grid = inputs.get("pixel_values"), inputs.get("image_grid_thw")
    token_types = inputs.get("mm_token_type_ids")
    if pixel_values is None or grid is None or token_types is None:
        return _fallback("not one image per row with Qwen-VL inputs")
    # Chunks slice the pixel rows at row × rows_per_image: one patch layout for the whole batch.
    rows_per_image = _rows_per_image(grid)
    if rows_per_image is None:
        return _fallback("images of different sizes in one batch")
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
        )
        if scored is None:
            return None
        logps.append(scored[0])
        entropies.append(scored[1])
    return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None)


def shuffle_whole_groups(
    rows: dict[str, Any], group_size: int, fallback: Any = None
) -> dict[str, Any]:
    """``rows`` (a rollout batch as TRL buffers it: each group's ``group_size`` rollouts in a
    run) in a random order of whole groups, each group's rows kept together: TRL shuffles rows
    one by one, which leaves a small micro-batch almost no two rollouts of a prompt to share.
    ``fallback(rows)`` (TRL's row shuffle) where the rows are not whole groups."""
    count = len(next(value for value in rows.values() if value is not None))
    if count % group_size:
        return fallback(rows) if fallback is not None else rows
    order = torch.randperm(count // group_size)[:, None] * group_size + torch.arange(group_size)
    order = order.reshape(-1)

    def permute(value: Any) -> Any:
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            return value
        if isinstance(value, torch.Tensor):
            return value[order.to(value.device)]
        return [value[i] for i in order.tolist()]

    return {key: permute(value) for key, value in rows.items()}


class WholeGroupShuffle:
    """Within the block, TRL's trainer shuffles a fresh rollout batch by whole groups
    (:func:`shuffle_whole_groups`) instead of row by row."""

    def __init__(self, group_size: int) -> None:
        import trl.trainer.grpo_trainer as trl_grpo

        self.module, self.group_size = trl_grpo, group_size

    def __enter__(self) -> None:
        self.original = self.module.shuffle_sequence_dict
        self.module.shuffle_sequence_dict = functools.partial(
            shuffle_whole_groups, group_size=self.group_size, fallback=self.original
        )

    def __exit__(self, *exc: object) -> None:
        self.module.shuffle_sequence_dict = self.original
