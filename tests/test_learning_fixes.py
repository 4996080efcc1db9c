"""The trainer's learning-rate defects and their fixes: the mini-batch token mean, the stage-2
pool guard, the online filter, the prompt style of a task listed for shaping, rollout reuse and
the paired validation band."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from trl import GRPOTrainer

from oracles import fake_loss_trainer
from vlthinker.algorithms import g2rpo_advantages
from vlthinker.algorithms.advantages import live_groups_per_rollout
from vlthinker.train.callbacks import item_means
from vlthinker.train.config import load_config, trainer_config
from vlthinker.train.filtering import concat_rows, group_rows, live_groups, take_rows
from vlthinker.train.report import final_table, mean_change_band, paired_change
from vlthinker.train.run import prompt_config_for
from vlthinker.train.trainer import (
    G2RPOTrainer,
    minibatch_token_normalizers,
    move_to_own_learning_rate,
)

WEIGHTS = [0.8, 0.1, 0.1]


# ------------------------------------------------------------- 1. token mean per mini-batch
def _micro_batch_losses(logps, old, advantages, mask, splits: int, updates: int = 1):
    """TRL's dapo loss over ``splits`` micro-batches per update, with our normalisers."""
    rows = logps.shape[0]
    chunk = rows // splits
    chunks = [slice(i * chunk, (i + 1) * chunk) for i in range(splits)]
    accumulation = splits // updates
    tokens = torch.stack([mask[c].sum() for c in chunks]).to(torch.float64)
    normalizers = minibatch_token_normalizers(tokens, accumulation, updates)
    losses = []
    for c, normalizer in zip(chunks, normalizers, strict=True):
        fake = fake_loss_trainer(logps[c], "dapo", delta=3.0)
        fake.accelerator.num_processes = 1
        fake.current_gradient_accumulation_steps = accumulation
        fake.args.steps_per_generation = splits
        inputs = {
            "prompt_ids": torch.zeros(chunk, 2, dtype=torch.long),
            "prompt_mask": torch.ones(chunk, 2, dtype=torch.long),
            "completion_ids": torch.zeros(chunk, mask.shape[1], dtype=torch.long),
            "completion_mask": mask[c],
            "advantages": advantages[c],
            "old_per_token_logps": old[c],
            "num_items_in_batch": normalizer,
        }
        losses.append(GRPOTrainer._compute_loss(fake, None, inputs))
    return losses


def _short_and_long_batch():
    """Four 3-token and four 30-token responses, the shape where per-micro-batch means skew."""
    generator = torch.Generator().manual_seed(0)
    old = torch.randn(8, 30, generator=generator, dtype=torch.float64) - 2
    logps = (
        old + 0.3 * torch.randn(8, 30, generator=generator, dtype=torch.float64)
    ).requires_grad_()
    lengths = torch.tensor([3, 3, 3, 3, 30, 30, 30, 30])
    mask = (torch.arange(30)[None, :] < lengths[:, None]).to(torch.float64)
    advantages = torch.tensor([1.0, -0.5, 0.7, -1.2, 0.4, -0.3, 1.1, -0.9], dtype=torch.float64)
    return logps, old, advantages, mask


def test_token_mean_is_the_same_however_the_mini_batch_is_split():
    logps, old, advantages, mask = _short_and_long_batch()
    results = []
    for splits in (1, 2, 4):
        logps.grad = None
        loss = sum(_micro_batch_losses(logps, old, advantages, mask, splits))
        loss.backward()
        results.append((float(loss.detach()), logps.grad.clone()))
    for loss, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        assert torch.allclose(grad, results[0][1], atol=1e-14)
    # each token weighs 1 / (total tokens), short or long
    per_token = results[0][1].abs().sum(dim=1) / mask.sum(dim=1)
    assert float(mask.sum()) == 132.0 and per_token.max() < 10 * per_token.min()


def test_per_micro_batch_mean_would_reweigh_short_answers():
    """The defect being fixed: TRL's bnpo (per micro-batch mean) weighs a 3-token answer's tokens
    5.5× and a 30-token answer's 0.55× of the mini-batch mean when they sit in separate micro-
    batches — 132 tokens in all, 12 and 120 per micro-batch, each divided by 2 micro-batches."""
    assert (132 / 12 / 2, 132 / 120 / 2) == (5.5, 0.55)


def test_several_updates_per_rollout_batch_each_take_their_own_token_mean():
    logps, old, advantages, mask = _short_and_long_batch()
    # 4 micro-batches, 2 updates: update 1 = the short answers, update 2 = the long ones
    losses = _micro_batch_losses(logps, old, advantages, mask, splits=4, updates=2)
    for window in (slice(0, 4), slice(4, 8)):
        want = _micro_batch_losses(
            logps[window], old[window], advantages[window], mask[window], splits=1
        )[0]
        got = losses[0] + losses[1] if window.start == 0 else losses[2] + losses[3]
        assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-12)


def test_token_normalisers_golden_values():
    tokens = torch.tensor([10.0, 30.0, 5.0, 5.0])
    # 2 micro-batches per update, 2 updates: windows hold 40 and 10 tokens; TRL divides
    # num_items by steps_per_generation / accumulation = 2, hence the factor 2.
    assert minibatch_token_normalizers(tokens, 2, 2).tolist() == [80.0, 80.0, 20.0, 20.0]
    assert minibatch_token_normalizers(tokens, 4, 1).tolist() == [50.0] * 4


# ------------------------------------------------------------- 2. stage 2 needs a pool
def _one_live_group_of_wrong_answers_differing_in_length():
    accuracy = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0])
    length = torch.tensor([0.5, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8])
    rewards = torch.stack([accuracy, torch.ones(8), length], dim=1).to(torch.float64)
    # a second, all-wrong group of the same task: degenerate, out of stage 2
    dead = torch.stack([torch.zeros(8), torch.ones(8), length], dim=1).to(torch.float64)
    return torch.cat([rewards, dead]), torch.arange(2).repeat_interleave(8), torch.zeros(16)


def test_one_live_group_gives_no_wrong_answer_a_positive_advantage():
    rewards, groups, tasks = _one_live_group_of_wrong_answers_differing_in_length()
    reference = g2rpo_advantages(rewards, groups, tasks, weights=WEIGHTS, stage2="reference")
    assert (reference[1:8] > 0).sum() == 3  # the defect: length alone lifts 3 wrong answers
    assert float(reference[1:8].max()) == pytest.approx(0.887, abs=1e-3)
    guarded = g2rpo_advantages(
        rewards, groups, tasks, weights=WEIGHTS, stage2_min_groups=4, stage2="reference"
    )
    assert bool((guarded[1:8] < 0).all()) and float(guarded[0]) > 0
    assert bool((guarded[8:] == 0).all())
    # stage 1 keeps the wrong answers within the length term's spread (0.1 × 2 × 1.534)
    assert float(guarded[1:8].max() - guarded[1:8].min()) <= 0.1 * 2 * 1.5341 + 1e-4


@settings(max_examples=120, deadline=None)
@given(
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=0, max_value=2**31),
)
def test_pools_with_enough_live_groups_are_ranked_as_the_paper_does(min_groups, tasks, seed):
    generator = torch.Generator().manual_seed(seed)
    groups = 12
    rewards = torch.randint(0, 3, (groups * 4, 3), generator=generator).to(torch.float64) / 2
    group_ids = torch.arange(groups).repeat_interleave(4)
    task_ids = torch.randint(0, tasks, (groups,), generator=generator).repeat_interleave(4)
    reference = g2rpo_advantages(rewards, group_ids, task_ids, weights=WEIGHTS, stage2="reference")
    guarded = g2rpo_advantages(
        rewards,
        group_ids,
        task_ids,
        weights=WEIGHTS,
        stage2_min_groups=min_groups,
        stage2="reference",
    )
    stage1 = g2rpo_advantages(rewards, group_ids, task_ids, weights=WEIGHTS, per_task=False)
    accuracy = rewards[:, 0].view(groups, 4)
    tied = (accuracy.amax(dim=1) == accuracy.amin(dim=1)).repeat_interleave(4)
    big = live_groups_per_rollout(group_ids, task_ids, tied) >= min_groups
    assert torch.equal(guarded[big], reference[big])
    assert torch.equal(guarded[~big], stage1[~big])  # stage 1, tied groups at exactly 0


def test_live_group_count_golden_values():
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    tasks = torch.tensor([0, 0, 0, 0, 1, 1, 0, 0])
    degenerate = torch.tensor([False, False, True, True, False, False, False, False])
    assert live_groups_per_rollout(groups, tasks, degenerate).tolist() == [2, 2, 2, 2, 1, 1, 2, 2]


# ------------------------------------------------------------- 3. online filter
def test_online_filter_keeps_groups_strictly_inside_the_band():
    accuracy = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0.995, 1, 1, 1.0])
    assert live_groups(accuracy, 4, 0.01, 0.99).tolist() == [False, False, True, False]
    assert live_groups(accuracy, 4, 0.0, 1.0).tolist() == [False, False, True, True]
    assert group_rows(torch.tensor([2, 0]), 3).tolist() == [6, 7, 8, 0, 1, 2]


def _generation_output(rows: int, prompt_width: int, completion_width: int, offset: int):
    grid = torch.tensor([[1, 2, 2]] * rows)  # 4 pixel rows per image, one image per rollout
    return {
        "prompt_ids": torch.arange(rows * prompt_width).view(rows, prompt_width) + offset,
        "prompt_mask": torch.ones(rows, prompt_width, dtype=torch.long),
        "completion_ids": torch.arange(rows * completion_width).view(rows, completion_width),
        "completion_mask": torch.ones(rows, completion_width, dtype=torch.long),
        "old_per_token_logps": torch.full((rows, completion_width), -1.0),
        "pixel_values": (torch.arange(rows).repeat_interleave(4)[:, None] + offset).float(),
        "image_grid_thw": grid,
        "num_images": [1] * rows,
        "mm_token_type_ids": torch.cat(
            (torch.full((rows, prompt_width), 2), torch.full((rows, completion_width), 3)), dim=1
        ),
        "num_items_in_batch": torch.tensor(float(rows * completion_width)),
        "task_index": torch.arange(rows) + offset,
    }


def test_row_selection_and_concatenation_keep_images_and_padding_aligned():
    first = take_rows(_generation_output(4, 3, 5, offset=0), torch.tensor([2, 3]))
    second = take_rows(_generation_output(4, 6, 2, offset=100), torch.tensor([0]))
    merged = concat_rows([first, second], pad_token_id=-7)
    assert merged["prompt_ids"].shape == (3, 6) and merged["completion_ids"].shape == (3, 5)
    assert merged["prompt_ids"][0, :3].tolist() == [-7, -7, -7]  # prompts are left-padded
    assert merged["prompt_mask"][0].tolist() == [0, 0, 0, 1, 1, 1]
    assert merged["completion_mask"][2].tolist() == [1, 1, 0, 0, 0]  # completions right-padded
    assert merged["task_index"].tolist() == [2, 3, 100]
    # token types cover prompt + completion (Qwen3-VL): each part padded like its ids
    assert merged["mm_token_type_ids"][2].tolist() == [2] * 6 + [3, 3, 0, 0, 0]
    assert merged["mm_token_type_ids"][0].tolist() == [0, 0, 0, 2, 2, 2] + [3] * 5
    # each rollout keeps its own image rows: 4 pixel rows tagged with the rollout
    assert merged["pixel_values"][:, 0].tolist() == [2.0] * 4 + [3.0] * 4 + [100.0] * 4
    assert merged["image_grid_thw"].shape == (3, 3) and merged["num_images"] == [1, 1, 1]


def test_unknown_generation_keys_are_refused():
    batch = _generation_output(2, 2, 2, offset=0)
    batch["mystery"] = torch.zeros(2, 9)
    with pytest.raises(ValueError, match="mystery"):
        take_rows(batch, torch.tensor([0]))


class _FakeFilteringTrainer:
    """What ``_fill_with_live_groups`` reads, with generation replaced by a scripted one."""

    num_generations = 2
    _accuracy_column = 0

    def __init__(self, script: list[list[float]], max_resample: int) -> None:
        self.script = script  # accuracy of each rollout, per generation call
        self.calls = 0
        self.args = SimpleNamespace(
            online_filter=[0.01, 0.99], max_resample=max_resample, task_names=["a"], seed=0
        )
        self.accelerator = SimpleNamespace(process_index=0, num_processes=1, device="cpu")
        self.processing_class = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=0))
        self._metrics = {"train": defaultdict(list)}

    def _resample_inputs(self, groups: int, attempt: int) -> list[dict]:
        return [{"task_index": 0, "call": attempt}] * (groups * self.num_generations)

    def _rollout(self, inputs):
        accuracy = torch.tensor(self.script[self.calls][: len(inputs)])
        self.calls += 1
        return self._output(accuracy), torch.stack([accuracy] * 3, dim=1)

    @staticmethod
    def _output(accuracy: torch.Tensor) -> dict:
        rows = accuracy.numel()
        return {
            "prompt_ids": torch.ones(rows, 2, dtype=torch.long),
            "prompt_mask": torch.ones(rows, 2, dtype=torch.long),
            "completion_ids": torch.ones(rows, 3, dtype=torch.long),
            "completion_mask": torch.ones(rows, 3, dtype=torch.long),
            "tag": accuracy.clone(),
        }

    _log_filter_metrics = G2RPOTrainer._log_filter_metrics
    _append_per_task = G2RPOTrainer._append_per_task


def test_filter_refills_the_batch_from_fresh_prompts():
    # first batch: groups (1,1) dead, (0,1) live, (0,0) dead; one fresh round of 3 groups:
    # (1,0) live, (0,0) dead, (1,0) live — the batch of 3 live groups is full
    fake = _FakeFilteringTrainer([[1, 0, 0, 0, 1, 0], [0, 1, 0, 1, 0, 1]], max_resample=3)
    inputs = [{"task_index": 0, "call": 0}] * 6
    accuracy = torch.tensor([1.0, 1, 0, 1, 0, 0])
    output, rewards, kept_inputs, padded = G2RPOTrainer._fill_with_live_groups(
        fake, fake._output(accuracy), torch.stack([accuracy] * 3, dim=1), inputs
    )
    assert fake.calls == 1
    assert output["tag"].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert rewards[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert [x["call"] for x in kept_inputs] == [0, 0, 1, 1, 1, 1]
    assert not bool(padded.any())
    assert fake._metrics["train"]["filter/resampled_rollouts"] == [6.0]
    assert fake._metrics["train"]["a/filter_dropped_share"] == [0.5]  # 3 of 6 examined


def test_filter_pads_with_masked_dead_groups_when_the_bound_is_reached():
    fake = _FakeFilteringTrainer([], max_resample=0)
    accuracy = torch.tensor([1.0, 1, 0, 1, 0, 0])
    inputs = [{"task_index": 0, "call": 0}] * 6
    output, _, _, padded = G2RPOTrainer._fill_with_live_groups(
        fake, fake._output(accuracy), torch.stack([accuracy] * 3, dim=1), inputs
    )
    assert output["tag"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert padded.tolist() == [False, False, True, True, True, True]
    assert output["completion_mask"][2:].sum() == 0 and output["completion_mask"][:2].sum() == 6
    assert fake._metrics["train"]["filter/padded_groups"] == [2.0]


# ------------------------------------------------------------- 4. prompt style default
def test_listing_a_task_for_its_length_range_keeps_its_prompt_style():
    config = load_config(None, ["shaping.tasks.ocr.length=[0,0,12,32]"])
    prompts = prompt_config_for(config)
    assert prompts.is_reasoning("ocr") is False  # the built-in default for a perception task
    assert prompts.is_reasoning("math") is True
    forced = prompt_config_for(load_config(None, ["shaping.tasks.ocr.reasoning=true"]))
    assert forced.is_reasoning("ocr") is True


# ------------------------------------------------------------- rollout reuse
def test_rollout_reuse_maps_to_trl_steps_per_generation_and_the_token_mean():
    config = load_config(
        None,
        [
            "training.prompts_per_step=6",
            "training.per_device_batch_size=12",
            "rollout.num_generations=4",
            "training.updates_per_generation=3",
            "algorithm.num_iterations=2",
        ],
    )
    args = trainer_config(config, Path("/tmp/unused"), world_size=1)
    assert (args.gradient_accumulation_steps, args.steps_per_generation) == (2, 6)
    assert args.num_iterations == 2 and args.loss_type == "dapo"
    with pytest.raises(ValueError, match="updates_per_generation"):
        load_config(None, ["training.updates_per_generation=0"])


# ------------------------------------------------------------- paired band
def test_paired_change_golden_values():
    start = {"a": 1.0, "b": 0.0, "c": 0.5}
    end = {"a": 1.0, "b": 1.0, "c": 0.75, "d": 0.0}  # d was not scored at the start
    mean, se, n = paired_change(start, end)
    # differences 0, 1, 0.25: mean 5/12, sample variance 0.2708333, se √(0.2708333 / 3)
    assert n == 3 and mean == pytest.approx(5 / 12)
    assert se == pytest.approx(math.sqrt(0.2708333333 / 3))
    assert 2 * se == pytest.approx(0.600925, abs=1e-6)
    assert mean_change_band([0.03, 0.04]) == pytest.approx(0.05)
    assert paired_change({"a": 1.0}, {"a": 0.0})[1] == math.inf


def test_paired_band_is_narrower_than_the_unpaired_one_for_correlated_passes():
    history = [
        {"step": 0, "math/accuracy": 0.5, "math/accuracy_se": 0.2, "math/format": 1.0},
        {"step": 5, "math/accuracy": 0.625, "math/accuracy_se": 0.2, "math/format": 1.0},
    ]
    items = {
        0: {"#0": ("math", 0.0), "#1": ("math", 1.0), "#2": ("math", 0.25), "#3": ("math", 0.75)},
        5: {"#0": ("math", 0.25), "#1": ("math", 1.0), "#2": ("math", 0.5), "#3": ("math", 0.75)},
    }
    table = final_table(history, ["math"], items)
    # differences 0.25, 0, 0.25, 0: mean 0.125, sd 0.1443, se 0.0722, band 0.144
    assert "| math | 0.500 | 0.625 | +0.125 | ±0.144 |" in table
    assert "paired" in table
    unpaired = final_table(history, ["math"])
    assert "±0.566" in unpaired and "independent" in unpaired


def test_item_means_average_each_items_samples():
    rows = [
        SimpleNamespace(task="math", accuracy=a, format=1.0, score=a)
        for a in (1.0, 0.0, 0.0, 0.0, 1.0, 1.0)  # 3 items × 2 samples, repeated whole
    ]
    means = item_means(rows, 3)
    assert [m["accuracy"] for m in means] == [0.5, 0.5, 0.5]
    with pytest.raises(RuntimeError):
        item_means(rows, 4)


def test_learning_benchmark_band_takes_the_larger_of_item_and_seed_noise():
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "learning.py"
    spec = importlib.util.spec_from_file_location("learning_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # seeds agree (0.10, 0.10, 0.10) with item se 0.03 each: within = √(3·0.0009)/3 = 0.01732
    mean, band = module.combine_seeds([(0.1, 0.03), (0.1, 0.03), (0.1, 0.03)])
    assert mean == pytest.approx(0.1) and band == pytest.approx(2 * 0.017320508, rel=1e-6)
    # seeds disagree (0.0, 0.1, 0.2), small item se: across = 0.1 / √3 = 0.057735
    mean, band = module.combine_seeds([(0.0, 0.001), (0.1, 0.001), (0.2, 0.001)])
    assert mean == pytest.approx(0.1) and band == pytest.approx(2 * 0.057735027, rel=1e-6)


def test_modules_to_save_take_their_own_adam_step():
    """Adam's first step moves each weight by its group's learning rate times the sign of its
    gradient; AdamW first shrinks it by lr × weight decay. Hand-worked: the moved weights step
    0.1 and keep their group's weight decay, the others step 1e-3."""
    a, b, c = (torch.nn.Parameter(torch.ones(n)) for n in (3, 2, 2))
    optimizer = torch.optim.AdamW(
        [{"params": [a, b], "weight_decay": 0.0}, {"params": [c], "weight_decay": 0.5}], lr=1e-3
    )
    move_to_own_learning_rate(optimizer, {id(b), id(c)}, 0.1)
    groups = [
        ([id(p) for p in g["params"]], g["lr"], g["weight_decay"]) for g in optimizer.param_groups
    ]
    assert groups == [([id(a)], 1e-3, 0.0), ([id(b)], 0.1, 0.0), ([id(c)], 0.1, 0.5)]
    (a.sum() - 2 * b.sum() + c.sum()).backward()
    optimizer.step()
    assert torch.allclose(a, torch.full((3,), 1 - 1e-3))
    assert torch.allclose(b, torch.full((2,), 1 + 0.1))
    assert torch.allclose(c, torch.full((2,), 1 * (1 - 0.1 * 0.5) - 0.1))
