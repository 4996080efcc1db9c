"""What the trainer relies on inside TRL's GRPOTrainer; these fail if a TRL upgrade moves it."""

from __future__ import annotations

import inspect
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import trl
from trl import GRPOTrainer

from vlthinker.algorithms import clipped_policy_loss
from vlthinker.train.trainer import G2RPOTrainer


def test_trl_version_is_in_the_tested_range():
    major, minor = (int(part) for part in trl.__version__.split(".")[:2])
    assert (major, minor) >= (1, 10) and (major, minor) < (1, 17), trl.__version__


def test_generate_and_score_calls_calculate_rewards_and_returns_sliced_advantages():
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    # the override captures the gathered per-function rewards here …
    assert "self._calculate_rewards(inputs, prompts, completions, completion_ids_list)" in source
    # … and replaces this key of the returned batch, sliced per process the same way
    assert '"advantages": advantages' in source
    assert "self.accelerator.process_index * len(prompts)" in source
    calc = inspect.getsource(GRPOTrainer._calculate_rewards)
    assert "rewards_per_func = gather(rewards_per_func)" in calc
    assert "completion_ids=completion_ids_list" in calc  # length reward reads token ids


def test_loss_path_exposes_entropies_and_keeps_extra_batch_keys():
    loss_source = inspect.getsource(GRPOTrainer._compute_loss)
    assert "self._get_per_token_logps_and_entropies(" in loss_source
    assert "compute_entropy=True" in loss_source
    prepare = inspect.getsource(GRPOTrainer._prepare_inputs)
    assert "shuffle_sequence_dict(generation_batch)" in prepare  # task_index rides along
    assert "split_tensor_dict(" in prepare


def test_subclass_overrides_only_the_documented_methods():
    overridden = {
        name
        for name, value in vars(G2RPOTrainer).items()
        if callable(value) and name in vars(GRPOTrainer)
    }
    assert overridden == {
        "__init__",
        "_calculate_rewards",
        "_generate_and_score_completions",
        "_get_per_token_logps_and_entropies",
        "_compute_loss",
        "_prepare_inputs",
    }


def _fake_trainer(logps: torch.Tensor, loss_type: str, delta: float | None):
    """The attributes TRL's ``_compute_loss`` reads, with the model forward replaced."""
    fake = SimpleNamespace(
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=0.0,
        loss_type=loss_type,
        epsilon_low=0.2,
        epsilon_high=0.3,
        args=SimpleNamespace(delta=delta, use_bias_correction_kl=False, steps_per_generation=1),
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        accelerator=SimpleNamespace(
            num_processes=1,
            reduce=lambda tensor, reduction="sum": tensor,
            gather=lambda tensor: tensor,
            gather_for_metrics=lambda tensor: tensor,
        ),
    )
    fake._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    return fake


@pytest.mark.parametrize(("aggregation", "loss_type"), [("token", "dapo"), ("seq", "grpo")])
def test_trl_loss_with_our_settings_equals_the_method_loss(aggregation, loss_type):
    """TRL's loss with epsilon / epsilon_high / delta is method.md §3's loss with dual clip."""
    generator = torch.Generator().manual_seed(0)
    old = torch.randn(4, 6, generator=generator) - 2
    logps = old + torch.randn(4, 6, generator=generator) * 1.5  # ratios far outside the clip
    advantages = torch.tensor([1.5, -0.7, -2.0, 0.3])
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4, [1] * 5 + [0]])
    inputs = {
        "prompt_ids": torch.zeros(4, 2, dtype=torch.long),
        "prompt_mask": torch.ones(4, 2, dtype=torch.long),
        "completion_ids": torch.zeros(4, 6, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "num_items_in_batch": mask.sum(),
    }
    fake = _fake_trainer(logps, loss_type, delta=3.0)
    trl_loss = GRPOTrainer._compute_loss(fake, None, inputs)
    ours, metrics = clipped_policy_loss(
        logps,
        old,
        advantages,
        mask,
        clip_low=0.2,
        clip_high=0.3,
        dual_clip=3.0,
        aggregation=aggregation,
    )
    assert metrics["dual_clip_frac"] > 0  # the case is one where dual clip matters
    assert float(trl_loss) == pytest.approx(float(ours), rel=1e-6)
