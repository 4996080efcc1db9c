"""The shared prompt pass scores rollouts exactly as the full forward does, in fewer tokens:
values and gradients at temperatures 1 and 0.7, under activation checkpointing, with LoRA,
with the vision tower frozen or trained, and on joined batches whose groups are split and
shuffled."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from trl.trainer.utils import add_fused_lm_head

from vlthinker.models.loading import load_policy
from vlthinker.train.config import load_config
from vlthinker.train.run import build_trainer
from vlthinker.train.shared_prompt import (
    distinct_prompts,
    shared_prompt_batches,
    shared_prompt_scores,
    shuffle_whole_groups,
)


def small_run_config(
    model_dir: Path, out: Path, *overrides: str, per_device_batch_size: int, max_new_tokens: int
):
    """A one-step run of the small model: 3 prompts (ocr, math, grounding) × 4 rollouts."""
    return load_config(
        None,
        [
            f"model.path={model_dir}",
            "data.train=synthetic",
            "data.validation=synthetic",
            "data.tasks=[ocr,math,grounding]",
            "data.train_size=12",
            "data.validation_size=1",
            "training.max_steps=1",
            "training.eval_steps=0",
            "training.prompts_per_step=3",
            f"training.per_device_batch_size={per_device_batch_size}",
            "training.eval_samples=1",
            "rollout.num_generations=4",
            f"rollout.max_new_tokens={max_new_tokens}",
            "rollout.online_filter=null",
            "logging.report_to=[]",
            "logging.progress=false",
            f"training.output_dir={out}",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def scoring_call(small_model_dir: Path, tmp_path_factory) -> tuple[Any, tuple, dict]:
    """The model and the arguments of a real training-loss scoring call: 3 prompts × 4 rollouts
    of the small model (TRL's own batch: left-padded prompts, images, 3-D positions)."""
    out = tmp_path_factory.mktemp("shared")
    config = small_run_config(small_model_dir, out, per_device_batch_size=12, max_new_tokens=12)
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
    """The reference: one forward over every row's whole prompt + completion, full logits."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **inputs).logits
    logits = logits[:, -logits_to_keep - 1 : -1].float() / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, -logits_to_keep:]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1), entropy


def _image_inputs(kwargs: dict) -> dict:
    keys = ("pixel_values", "image_grid_thw", "mm_token_type_ids")
    return {key: kwargs[key] for key in keys}


@contextlib.contextmanager
def fused_head(model, temperature: float):
    """TRL's fused LM head at ``temperature`` on ``model`` (as GRPOTrainer puts it), then the
    model's previous forward back."""
    before = model.__dict__.get("forward")
    add_fused_lm_head(model, temperature=temperature, outputs=("log_probs", "entropy"))
    try:
        yield model
    finally:
        if before is None:
            del model.forward
        else:
            model.forward = before


def assert_same_scores_and_gradients(model, scoring, args, kwargs, temperature=1.0, rows=None):
    """The shared pass (through ``scoring``) against the full forward on the rows ``rows`` of a
    recorded batch: equal log-probs and entropies (1e-5), zeros on padding, and equal gradients
    of a random weighting of the log-probs in every trainable parameter (1e-4 relative)."""
    input_ids, attention_mask, keep = args[1], args[2], args[3]
    inputs = _image_inputs(kwargs)
    if rows is not None:
        per_image = int(inputs["image_grid_thw"][0].prod())
        pixel_rows = (rows[:, None] * per_image + torch.arange(per_image)).reshape(-1)
        input_ids, attention_mask = input_ids[rows], attention_mask[rows]
        inputs = {
            "pixel_values": inputs["pixel_values"][pixel_rows],
            "image_grid_thw": inputs["image_grid_thw"][rows],
            "mm_token_type_ids": inputs["mm_token_type_ids"][rows],
        }
    mask = attention_mask[:, -keep:].bool()
    reference = _full_forward(model, input_ids, attention_mask, keep, temperature, **inputs)
    shared = scoring(model, input_ids, attention_mask, keep, **inputs, compute_entropy=True)
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
    return params


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_pass_gives_the_full_forwards_logps_entropies_and_gradients(
    scoring_call, temperature
):
    _, args, kwargs = scoring_call
    model = args[0]
    with fused_head(model, temperature):
        params = assert_same_scores_and_gradients(
            model, shared_prompt_scores, args, kwargs, temperature
        )
    trained = {id(p) for p in params}
    assert any(id(p) in trained for p in model.model.visual.parameters())  # vision trained too


def test_joined_batches_with_split_and_shuffled_groups_score_the_same(scoring_call):
    """The online filter joins kept groups from several draws: a group's rollouts may sit
    anywhere, and a scoring chunk may hold part of a group."""
    _, args, kwargs = scoring_call
    model = args[0]
    rows = torch.randperm(args[1].size(0), generator=torch.Generator().manual_seed(3))[:10]

    def chunked(*a, **k):
        return shared_prompt_batches(*a, 4, **k)

    with fused_head(model, 1.0):
        assert_same_scores_and_gradients(model, chunked, args, kwargs, rows=rows)


def test_frozen_vision_and_activation_checkpointing(scoring_call):
    """Non-reentrant checkpointing (TRL's default) replays each layer in the backward pass:
    the prompt's recorded keys and values stay on the graph, so nothing changes."""
    _, args, kwargs = scoring_call
    model = args[0]
    frozen = list(model.model.visual.parameters())
    for parameter in frozen:
        parameter.requires_grad_(False)
    model.train()
    model.activation_checkpointing_enable({"use_reentrant": False})
    try:
        with fused_head(model, 1.0):
            assert_same_scores_and_gradients(model, shared_prompt_scores, args, kwargs)
    finally:
        model.activation_checkpointing_disable()
        for parameter in frozen:
            parameter.requires_grad_(True)


def test_reentrant_checkpointing_falls_back_with_a_logged_reason(scoring_call, caplog):
    _, args, kwargs = scoring_call
    model = args[0]
    model.train()
    model.activation_checkpointing_enable({"use_reentrant": True})
    try:
        with fused_head(model, 1.0), caplog.at_level(logging.WARNING):
            assert shared_prompt_scores(*args[:4], **_image_inputs(kwargs)) is None
            with torch.no_grad():  # no backward to replay: still shared
                assert shared_prompt_scores(*args[:4], **_image_inputs(kwargs)) is not None
    finally:
        model.activation_checkpointing_disable()
    assert "reentrant activation checkpointing" in caplog.text


def test_lora_policy_scores_and_trains_the_same(scoring_call, small_model_dir: Path):
    from peft import LoraConfig, get_peft_model

    _, args, kwargs = scoring_call
    model, _ = load_policy(small_model_dir, dtype="float32")
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    target = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=target))
    for name, parameter in lora.named_parameters():  # B starts at 0: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    params = assert_same_scores_and_gradients(lora, shared_prompt_scores, (lora, *args[1:]), kwargs)
    assert params and all("lora_" in n for n, p in lora.named_parameters() if p.requires_grad)


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


def test_images_in_completions_and_unfused_models_fall_back(scoring_call):
    _, args, kwargs = scoring_call
    inputs = {k: v for k, v in kwargs.items() if k != "batch_size"}
    types = inputs["mm_token_type_ids"].clone()
    types[0, -1] = 1  # an image token inside a completion
    assert shared_prompt_batches(*args[:4], **dict(inputs, mm_token_type_ids=types)) is None
    model = args[0]
    fused = model.__dict__.pop("forward")  # the trainer's fused LM head, taken off
    try:
        assert shared_prompt_batches(*args[:4], **inputs) is None
    finally:
        model.forward = fused
    assert shared_prompt_batches(*args[:4], **inputs) is not None


def test_whole_group_shuffle_keeps_each_group_in_one_run():
    rows = {
        "prompt_ids": torch.arange(12).div(4, rounding_mode="floor")[:, None].repeat(1, 3),
        "task": [f"t{i // 4}" for i in range(12)],
        "scalar": torch.tensor(5.0),
    }
    torch.manual_seed(0)
    shuffled = shuffle_whole_groups(rows, group_size=4)
    groups = shuffled["prompt_ids"][:, 0].reshape(3, 4)
    assert bool((groups == groups[:, :1]).all())  # every run of 4 is one group
    assert sorted(groups[:, 0].tolist()) == [0, 1, 2]
    assert shuffled["task"] == [f"t{g}" for g in shuffled["prompt_ids"][:, 0].tolist()]
    assert shuffled["scalar"] is rows["scalar"]
    seen = {tuple(shuffle_whole_groups(rows, 4)["prompt_ids"][::4, 0].tolist()) for _ in range(30)}
    assert len(seen) > 1  # the order of groups is random
    marker = {"fallback": True}
    assert shuffle_whole_groups(rows, 5, fallback=lambda r: marker) is marker  # not whole groups


@pytest.mark.parametrize("online_filter", ["null", "[0.01,0.99]"])
def test_trainer_micro_batches_hold_one_prompt_with_group_micro_batches(
    small_model_dir: Path, tmp_path, online_filter: str
):
    """4-row micro-batches of 4-rollout groups: each micro-batch is one group (TRL's row shuffle
    mixes prompts), so the shared prompt pass runs one prompt pass per micro-batch; the online
    filter's joined batches (kept groups, refills, padding) keep it so."""
    config = small_run_config(
        small_model_dir,
        tmp_path / "out",
        "training.group_micro_batches=true",
        f"rollout.online_filter={online_filter}",
        "rollout.max_resample=2",
        per_device_batch_size=4,
        max_new_tokens=4,
    )
    trainer = build_trainer(config, tmp_path / "out").trainer
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    trainer._step = 0
    trainer._prepare_inputs(batch)
    chunks = trainer._buffered_inputs
    assert len(chunks) == 3
    prompts = set()
    for chunk in chunks:
        ids = chunk["prompt_ids"]
        assert bool((ids == ids[:1]).all())
        prompts.add(tuple(ids[0].tolist()))
    assert len(prompts) == 3 or online_filter != "null"  # padding may repeat a kept group


@pytest.mark.slow
def test_ddp_gradients_equal_the_full_forwards(small_model_dir: Path, tmp_path):
    """Two gloo processes, one group each, the shared pass through the DDP wrapper (two forwards
    before one backward): the averaged gradients are those of the full forward over both."""
    import importlib.util
    import os
    import subprocess
    import sys

    worker = Path(__file__).parent / "distributed" / "shared_pass_worker.py"
    out = tmp_path / "grads.pt"
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29631"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, str(worker), str(small_model_dir), str(out)]
    workers = [
        subprocess.Popen(command, env={**env, "RANK": str(rank)}, stderr=subprocess.PIPE, text=True)
        for rank in range(2)
    ]
    for process in workers:
        _, error = process.communicate(timeout=240)
        assert process.returncode == 0, error[-3000:]
    got = torch.load(out)

    spec = importlib.util.spec_from_file_location("shared_pass_worker", worker)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model, _ = load_policy(small_model_dir, dtype="float32")
    model.train()
    loss = 0.0
    for rank in range(2):
        batch = module.group_batch(model, rank)
        ids, mask = batch.pop("input_ids"), batch.pop("attention_mask")
        logps, _ = _full_forward(model, ids, mask, 5, **batch)
        weights = torch.randn(logps.shape, generator=torch.Generator().manual_seed(10 + rank))
        loss = loss + (logps * weights * mask[:, -5:]).sum() / 2  # DDP averages the two
    loss.backward()
    want = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(got) == set(want) and any(n.startswith("model.visual") for n in want)
    difference = sum(float((want[n] - got[n]).norm() ** 2) for n in want) ** 0.5
    size = sum(float(g.norm() ** 2) for g in want.values()) ** 0.5
    assert size > 0 and difference / size < 1e-4


def test_no_completion_logits_pass_through_the_lm_head_module(scoring_call):
    """The completions are scored by TRL's fused head in chunks; the LM head module itself sees
    one position per distinct prompt (the prompt pass's last), never ``[rows, T]``."""
    _, args, kwargs = scoring_call
    model = args[0]
    shapes: list[tuple[int, ...]] = []
    hook = model.lm_head.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    try:
        with torch.no_grad():
            assert shared_prompt_scores(*args[:4], **_image_inputs(kwargs)) is not None
            assert shapes and all(shape[1] == 1 for shape in shapes)
            shapes.clear()
            model(input_ids=args[1], attention_mask=args[2], **_image_inputs(kwargs))
            assert shapes == [(*args[1].shape, model.config.text_config.hidden_size)]
    finally:
        hook.remove()
