"""The trainer's pieces that need no model: advantages on a gathered batch, per-task metrics,
resume bookkeeping and the final table."""

from __future__ import annotations

import json

import pytest
import torch

from vlthinker.algorithms import g2rpo_advantages, grpo_advantages
from vlthinker.train.report import UNPAIRED_NOTE, change_band, final_table
from vlthinker.train.rewards import (
    COMPONENTS,
    GATE,
    RewardComponent,
    RewardComponents,
    component_names,
    effective_weights,
)
from vlthinker.train.run_folder import latest_complete_checkpoint, truncate_metrics
from vlthinker.train.trainer import (
    batch_advantages,
    check_layout,
    layout_group_ids,
    per_task_means,
    reward_metric_keys,
    reward_summary,
    tied_group_share,
)

WEIGHTS = [0.8, 0.1, 0.1]


def test_batch_advantages_are_multi_component_g2rpo_of_the_gathered_rewards():
    generator = torch.Generator().manual_seed(3)
    rewards = torch.rand(24, 3, generator=generator, dtype=torch.float64).round(decimals=1)
    groups = layout_group_ids(24, 4)
    stage2 = torch.tensor([0, 1, 0, 1, 1, 0]).repeat_interleave(4)
    got = batch_advantages(rewards, groups, stage2, estimator="g2rpo", weights=WEIGHTS, options={})
    want = g2rpo_advantages(rewards, groups, stage2, weights=WEIGHTS)
    assert torch.equal(got, want)
    # a baseline sees the weighted sum of the components
    grpo = batch_advantages(rewards, groups, stage2, estimator="grpo", weights=WEIGHTS, options={})
    weighted = (rewards * torch.tensor(WEIGHTS, dtype=torch.float64)).sum(dim=1)
    assert torch.allclose(grpo, grpo_advantages(weighted, groups))
    # the estimator's own options reach it
    flat = batch_advantages(
        rewards, groups, stage2, estimator="g2rpo", weights=WEIGHTS, options={"per_task": False}
    )
    assert torch.equal(
        flat, g2rpo_advantages(rewards, groups, stage2, weights=WEIGHTS, per_task=False)
    )
    assert not torch.equal(flat, got)


def test_unscorable_rewards_count_as_zero_not_nan():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [float("nan")] * 3, [0.0, 1.0, 1.0], [0.0] * 3])
    advantages = batch_advantages(
        rewards, layout_group_ids(4, 4), torch.zeros(4), estimator="g2rpo", weights=WEIGHTS,
        options={},
    )  # fmt: skip
    assert bool(torch.isfinite(advantages).all())
    assert float(advantages[0]) > 0 > float(advantages[1])


def test_layout_check_catches_mixed_prompts():
    check_layout(["a", "a", "b", "b"], 2)
    with pytest.raises(RuntimeError, match="different prompts"):
        check_layout(["a", "b", "b", "b"], 2)
    with pytest.raises(RuntimeError, match="do not split"):
        layout_group_ids(5, 2)


def test_per_task_means_and_tied_share():
    values = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0])
    tasks = torch.tensor([0, 0, 1, 1, 0, 0])
    means = per_task_means(values, tasks, 3)
    assert means[:2].tolist() == [1.25, 0.5]  # (1 + 0 + 2 + 2) / 4, (0.5 + 0.5) / 2
    assert torch.isnan(means[2])  # absent task
    accuracy = torch.tensor([1.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    share = tied_group_share(accuracy, groups, tasks, 3, 1e-6)
    assert share[:2].tolist() == [0.5, 1.0]  # task 0: group 2 tied, group 0 not


def _checkpoint(run, step, complete=True):
    folder = run / f"checkpoint-{step}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_resume_picks_the_latest_complete_checkpoint(tmp_path):
    assert latest_complete_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4)
    _checkpoint(tmp_path, 6, complete=False)  # killed while saving
    truncated = _checkpoint(tmp_path, 8, complete=False)
    (truncated / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    found = latest_complete_checkpoint(tmp_path)
    assert found is not None and found.step == 4


def test_truncate_metrics_drops_lines_past_the_checkpoint_and_torn_lines(tmp_path):
    lines = [json.dumps({"step": s, "loss": s}) for s in (0, 1, 2, 3)] + ['{"step": 4, "lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert truncate_metrics(tmp_path, 2) == 2
    kept = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [k["step"] for k in kept] == [0, 1, 2]


def test_final_table_start_versus_end():
    history = [
        {"step": 0, "math/accuracy": 0.25, "math/format": 0.9, "ocr/accuracy": 0.5},
        {"step": 30, "math/accuracy": 0.5, "math/format": 1.0, "ocr/accuracy": 0.25},
    ]
    table = final_table(history, ["math", "ocr", "chart"])
    assert "| math | 0.250 | 0.500 | +0.250 | — | 0.900 | 1.000 |" in table
    assert "| ocr | 0.500 | 0.250 | -0.250 | — | — | — |" in table
    assert "chart" not in table
    assert "| **mean** | 0.375 | 0.375 | +0.000 | — |" in table
    assert UNPAIRED_NOTE not in table  # no standard errors recorded, no band to explain


def test_final_table_bands_each_change_by_two_standard_errors():
    # By hand: 2·√(0.03² + 0.04²) = 0.100 and 2·√(0.06² + 0.08²) = 0.200; the mean of the two
    # changes has band √(0.100² + 0.200²) / 2 = 0.112.
    start = {"math/accuracy": 0.5, "math/accuracy_se": 0.03}
    start |= {"ocr/accuracy": 0.5, "ocr/accuracy_se": 0.06}
    end = {"math/accuracy": 0.6, "math/accuracy_se": 0.04}
    end |= {"ocr/accuracy": 0.4, "ocr/accuracy_se": 0.08}
    history = [{"step": 0, **start}, {"step": 40, **end}]
    table = final_table(history, ["math", "ocr"])
    assert "| math | 0.500 | 0.600 | +0.100 | ±0.100 |" in table
    assert "| ocr | 0.500 | 0.400 | -0.100 | ±0.200 |" in table
    assert "| **mean** | 0.500 | 0.500 | +0.000 | ±0.112 |" in table
    assert table.endswith(UNPAIRED_NOTE)
    assert change_band(0.03, None) is None


def test_reward_components_rescore_a_new_batch_in_the_same_list_object():
    # TRL frees each step's completion list; CPython hands its id to the next step's list, so
    # scores must follow the content, not the object (an id cache fed step t's rewards to t+1).
    rewards = RewardComponents(torch.tensor([[0.0, 0.0, 10.0, 20.0]], dtype=torch.float64))
    columns = {
        "answer_json": [json.dumps("7"), json.dumps("7")],
        "answer_type": ["numeric", "numeric"],
        "score_meta": [json.dumps({"reasoning": False})] * 2,
        "task_index": [0, 0],
    }
    completions = ["<answer>7</answer>", "<answer>3</answer>"]
    assert rewards.accuracy(None, completions, **columns) == [1.0, 0.0]
    completions[:] = ["<answer>3</answer>", "<answer>7</answer>"]  # same object, new content
    assert rewards.accuracy(None, completions, **columns) == [0.0, 1.0]
    assert rewards.format(None, completions, **columns) == [1.0, 1.0]


def test_reward_components_are_declared_once_and_everything_derives_from_them():
    assert component_names() == ("accuracy", "format", "length")
    assert [c.weight for c in COMPONENTS] == WEIGHTS
    assert GATE == 0 and COMPONENTS[GATE].role == "gate"
    # the bound functions TRL names its rewards/<name>/mean metrics by
    functions = RewardComponents(None).functions()
    assert [f.__name__ for f in functions] == list(component_names())
    # a component switched off by its shaping flag weighs 0; the others keep theirs
    assert effective_weights(WEIGHTS, {"length": False}) == [0.8, 0.1, 0.0]
    assert effective_weights([1, 2, 3], {"length": True}) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="2 reward weights for 3 components"):
        effective_weights([1.0, 2.0], {"length": True})
    with pytest.raises(ValueError, match="a function of that name"):
        RewardComponent("speed", RewardComponents.format, 0.1, "shaping")


def test_length_switched_off_scores_every_completion_1():
    columns = {"task_index": [0, 0]}
    off = RewardComponents(None)
    assert off.length(None, ["a", "b"], completion_ids=[[1] * 5, [1] * 90], **columns) == [1, 1]
    on = RewardComponents([[0.0, 0.0, 10.0, 20.0]])
    assert on.length(None, ["a", "b"], completion_ids=[[1] * 5, [1] * 90], **columns) == [1, 0]


def test_reward_summary_is_trls_reward_of_the_weighted_components():
    # two groups of two rollouts; the second row is unscored (NaN everywhere)
    nan = float("nan")
    rewards = torch.tensor([[1.0, 1.0, 0.5], [nan, nan, nan], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    summary = reward_summary(rewards, torch.tensor(WEIGHTS), 2, component_names())
    assert list(summary) == reward_metric_keys(component_names())
    assert summary["rewards/accuracy/mean"] == pytest.approx(1 / 3)
    assert summary["rewards/length/mean"] == pytest.approx(2.5 / 3)
    weighted = [0.8 + 0.1 + 0.05, 0.2, 0.2]  # the scored rows
    assert summary["reward"] == pytest.approx(sum(weighted) / 3)
    means = [summary[f"rewards/{name}/mean"] for name in component_names()]
    assert summary["reward"] == pytest.approx(
        sum(w * m for w, m in zip(WEIGHTS, means, strict=True))
    )
    assert summary["reward_std"] == pytest.approx(float(torch.tensor(weighted).std()))
    assert summary["frac_reward_zero_std"] == 0.5  # group 2 is tied, group 1 has one value


def test_g2rpo_config_refuses_trls_completion_table(tmp_path):
    # TRL's table would list the advantages TRL computes and the trainer replaces.
    from vlthinker.train.trainer import G2RPOConfig

    common = {"output_dir": str(tmp_path), "use_cpu": True, "bf16": False, "report_to": []}
    assert G2RPOConfig(**common).reward_weights is None  # TRL's default: every function 1
    with pytest.raises(ValueError, match="log_completions"):
        G2RPOConfig(**common, log_completions=True)


def test_padding_rows_take_no_part_in_the_advantages():
    # 7 live binary groups of 8 and one dropped IoU group [0.05, 0, …] that the online filter
    # used as padding (mean 0.006: dropped, yet not tied). Padding must change no trained value:
    # with it counted, stage2_min_groups=8 would switch the reference rank map on.
    from vlthinker.train.trainer import distributed_advantages

    successes = [1, 2, 3, 1, 2, 6, 7]
    live = torch.cat([torch.tensor([1.0] * k + [0.0] * (8 - k)) for k in successes])
    dropped = torch.tensor([0.05] + [0.0] * 7)
    accuracy = torch.cat([live, dropped]).double()
    rewards = torch.stack([accuracy, torch.ones(64), torch.ones(64)], dim=1)
    inputs = [
        {"task_index": 0, "stage2_index": 0, "record_id": f"r{row // 8}"} for row in range(64)
    ]
    padding = torch.tensor([False] * 56 + [True] * 8)
    for rule in ("rms", "reference"):
        options = {"stage2": rule, "stage2_min_groups": 8}
        batch = distributed_advantages(
            0, rewards, inputs, 8, estimator="g2rpo", weights=WEIGHTS, options=options,
            local_padding=padding,
        )  # fmt: skip
        alone = batch_advantages(
            rewards[:56], layout_group_ids(56, 8), torch.zeros(56, dtype=torch.int64),
            estimator="g2rpo", weights=WEIGHTS, options=options,
        )  # fmt: skip
        assert torch.equal(batch.advantages[:56], alone)
        assert torch.equal(batch.local_advantages[56:], torch.zeros(8))
        assert batch.trained.tolist() == padding.logical_not().tolist()
    # what counting the padding group did: the reference rank map switched on and moved
    # trained advantages (a k = 1 group's wrong answers from −0.175 to −0.061)
    counted = batch_advantages(
        rewards, layout_group_ids(64, 8), torch.zeros(64, dtype=torch.int64), estimator="g2rpo",
        weights=WEIGHTS, options={"stage2": "reference", "stage2_min_groups": 8},
    )  # fmt: skip
    assert float((counted[:56] - alone).abs().max()) > 1.0
    assert float(alone[1]) == pytest.approx(-0.175, abs=1e-3)
    assert float(counted[1]) == pytest.approx(-0.061, abs=1e-3)


@pytest.mark.parametrize("accumulation", [1, 2, 4])
def test_entropy_band_sides_come_from_each_optimiser_steps_micro_batches(accumulation):
    # Two optimiser steps of 8 rollouts, split into `accumulation` micro-batches each: every
    # micro-batch of a step carries the step's sides and token counts, and the micro-batches'
    # shares add up to the hinge of the step's own task entropies, however it is split.
    from types import SimpleNamespace

    from vlthinker.algorithms import entropy_band_penalty, entropy_band_step_penalty
    from vlthinker.train.trainer import BAND_PENALTY, BAND_SIDES, BAND_TOKENS, G2RPOTrainer

    generator = torch.Generator().manual_seed(accumulation)
    entropies = torch.rand(16, 6, generator=generator, dtype=torch.float64) * 1.5
    mask = (torch.rand(16, 6, generator=generator) < 0.7).to(torch.int64)
    mask[:, 0] = 1
    tasks = torch.tensor([0, 1, 2, 0, 1, 0, 0, 2] * 2)
    bands = torch.tensor([[0.2, 0.5], [0.9, 1.2], [0.0, 9.0]])
    fake = SimpleNamespace(
        args=SimpleNamespace(
            task_names=["a", "b", "c"],
            gradient_accumulation_steps=accumulation,
            entropy_band_coef=0.1,
        ),
        accelerator=SimpleNamespace(reduce=lambda tensor: tensor),
        _entropy_bands=bands,
    )
    chunks = [
        {
            "completion_mask": mask[rows],
            "task_index": tasks[rows],
            "scoring_entropy_sum": (entropies[rows] * mask[rows]).sum(dim=1),
        }
        for rows in torch.arange(16).tensor_split(2 * accumulation)
    ]
    G2RPOTrainer._set_band_steps(fake, chunks)
    for step in range(2):
        rows = slice(8 * step, 8 * step + 8)
        whole, _ = entropy_band_penalty(entropies[rows], mask[rows], tasks[rows], bands, 0.1)
        mine = chunks[step * accumulation : (step + 1) * accumulation]
        shares = sum(
            float(
                entropy_band_step_penalty(
                    entropies[r], mask[r], tasks[r], c[BAND_SIDES], c[BAND_TOKENS], bands, 0.1
                )
            )
            for c, r in zip(mine, torch.arange(16)[rows].tensor_split(accumulation), strict=True)
        )
        assert float(whole) > 0
        assert shares == pytest.approx(float(whole), rel=1e-9)
        assert all(float(c[BAND_PENALTY]) == pytest.approx(float(whole)) for c in mine)
