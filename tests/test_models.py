"""The tiny Qwen3-VL: offline build, batched left-padded generation, SFT, the shipped model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vlthinker.data import PromptConfig, Record, build_messages, synthetic
from vlthinker.evaluation.generation import encode_prompts, generate, generate_tokens
from vlthinker.models import load_policy, resolve_model_path, vision_token_ids
from vlthinker.rewards import score


def _inputs(records: list[Record]):
    return [build_messages(r) for r in records], [r.load_images() for r in records]


def test_reloads_offline_with_auto_classes(small_model_dir: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, processor = load_policy(small_model_dir)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert processor.tokenizer.padding_side == "left"
    assert json.loads((small_model_dir / "config.json").read_text())["model_type"] == "qwen3_vl"
    text = "<think>3 + 4 = 7.</think><answer>7</answer>"
    ids = processor.tokenizer(text)["input_ids"]
    assert processor.tokenizer.decode(ids, skip_special_tokens=True) == text
    assert {"<think>", "</answer>"} <= set(processor.tokenizer.convert_ids_to_tokens(ids))


def test_batched_generation_with_mixed_prompt_lengths_matches_one_by_one(small_model_dir: Path):
    model, processor = load_policy(small_model_dir)
    records = synthetic.generate(4, seed=1, image_size=64)
    records[1].question += " Please look very carefully at every part of the picture first."
    messages, images = _inputs(records)
    lengths = set(encode_prompts(processor, messages, images)["attention_mask"].sum(1).tolist())
    assert len(lengths) > 1  # the batch really mixes prompt lengths, so left padding matters
    together = generate(model, processor, messages, images, max_new_tokens=8)
    alone = [
        generate(model, processor, [m], [i], max_new_tokens=8)[0]
        for m, i in zip(messages, images, strict=True)
    ]
    assert together == alone


def test_generation_never_emits_vision_tokens(small_model_dir: Path):
    model, processor = load_policy(small_model_dir)
    banned = vision_token_ids(processor)
    assert len(banned) == 4
    with torch.no_grad():  # make <|image_pad|> the most likely next token everywhere
        model.lm_head.weight[banned[2]] *= 0
        model.lm_head.weight[banned[2]] += 50 * model.lm_head.weight.mean(0).sign()
    messages, images = _inputs(synthetic.generate(3, seed=2, image_size=64))
    tokens = generate_tokens(
        model, processor, messages, images, max_new_tokens=6, do_sample=True, temperature=1.0
    )
    assert not torch.isin(tokens, torch.tensor(banned)).any()


def test_a_few_sft_steps_reduce_the_loss(small_model_dir: Path, tmp_path: Path):
    from vlthinker.sft import SFTSettings, run_sft

    settings = SFTSettings(
        model=str(small_model_dir),
        out=str(tmp_path / "sft"),
        synthetic_size=48,
        image_size=64,
        epochs=4,
        batch_size=16,
        learning_rate=3e-3,
        logging_steps=1,
    )
    out = run_sft(settings)
    losses = [
        e["loss"] for e in json.loads((out / "sft_summary.json").read_text())["log"] if "loss" in e
    ]
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < 0.85 * sum(losses[:3]) / 3
    model, _ = load_policy(out)  # the result reloads like any checkpoint
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"


def test_shipped_checkpoint_answers_in_the_required_format(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_model_path("embedded:tiny_vlm")
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    assert size <= 25 * 2**20
    model, processor = load_policy("embedded:tiny_vlm")
    config = PromptConfig()
    records = synthetic.generate(6, seed=424_242)
    messages, images = _inputs(records)
    responses = generate(model, processor, messages, images, max_new_tokens=64)
    formats = [
        score(response, r.answer, r.answer_type, reasoning=config.is_reasoning(r.task), **r.meta)[
            "format"
        ]
        for r, response in zip(records, responses, strict=True)
    ]
    assert sum(formats) >= 5, responses
    assert os.environ["HF_HUB_OFFLINE"] == "1"
