"""What the trainer relies on inside TRL's GRPOTrainer, checked by behaviour on a real trainer.

Each test builds a ``GRPOTrainer`` around the shipped tiny model and calls the methods
:class:`~vlthinker.train.trainer.G2RPOTrainer` overrides or depends on, asserting what the
override assumes: the rewards hook and the batch it returns, the log-probabilities and entropies
of the loss path, the loss's clipping and normalisation, the micro-batch buffer and the layout of
a prompt's rollouts. A TRL upgrade that moves any of these fails here, not in a training run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import trl
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from oracles import fake_loss_trainer, k3_kl, masked_mean, method_policy_loss, token_entropy
from vlthinker.algorithms import clipped_policy_loss
from vlthinker.models import load_policy, resolve_model_path
from vlthinker.train.gradient_equity import trl_loss_terms
from vlthinker.train.trainer import G2RPOTrainer

GENERATIONS = 2


def _dataset(prompts: int = 8) -> Dataset:
    """Conversational text prompts carrying two extra columns, as vlthinker's rows carry theirs."""
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": [{"type": "text", "text": f"item {i}"}]}],
                "row_tag": i,
                "task_index": i % 3,
            }
            for i in range(prompts)
        ]
    )


def tag_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """Reward = the row's ``row_tag`` column, so a reward's row can be traced."""
    return [float(tag) for tag in kwargs["row_tag"]]


def length_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """Reward = the completion's token count, read from ``completion_ids`` as rewards.py does."""
    return [float(len(ids)) for ids in completion_ids]


def _trainer(tmp_path: Path, cls: type[GRPOTrainer] = GRPOTrainer, **overrides: Any) -> GRPOTrainer:
    """A real trainer on a fresh copy of the tiny model (TRL patches the model it is given)."""
    model, processor = load_policy(resolve_model_path("embedded:tiny_vlm"), dtype="float32")
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 2,
        "num_generations": GENERATIONS,
        "max_completion_length": 4,
        "temperature": 1.0,
        "loss_type": "dapo",
        "epsilon": 0.2,
        "epsilon_high": 0.3,
        "delta": 3.0,
        "beta": 0.0,
        "use_cpu": True,
        "bf16": False,
        "report_to": [],
        "remove_unused_columns": False,
        "disable_tqdm": True,
        "save_strategy": "no",
        "max_steps": 1,
        "seed": 0,
    }
    settings.update(overrides)
    trainer = cls(
        model=model,
        processing_class=processor,
        reward_funcs=[tag_reward, length_reward],
        args=GRPOConfig(**settings),
        train_dataset=_dataset(),
    )
    trainer.model.train()
    return trainer


def test_trl_version_is_in_the_tested_range():
    major, minor = (int(part) for part in trl.__version__.split(".")[:2])
    assert (major, minor) >= (1, 10) and (major, minor) < (1, 17), trl.__version__


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


# ------------------------------------------------------------------ rewards hook and rollouts
class _RecordingTrainer(GRPOTrainer):
    """Records the calls of the two hooks G2RPOTrainer overrides, passing them through."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reward_calls: list[tuple[tuple, torch.Tensor]] = []
        self.generation_calls = 0
        super().__init__(*args, **kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self.reward_calls.append(((inputs, prompts, completions, completion_ids_list), rewards))
        return rewards

    def _generate_and_score_completions(self, inputs):
        self.generation_calls += 1
        output = super()._generate_and_score_completions(inputs)
        # As G2RPOTrainer does: replace the advantages and add a per-row key. Both carry the
        # row's tag so that the tests can follow every row through the buffer.
        tags = torch.tensor([float(x["row_tag"]) for x in inputs])
        output["advantages"] = tags
        output["task_index"] = tags.to(torch.int64)
        return output


def test_generate_and_score_hands_the_rewards_hook_every_rollout_in_input_order(tmp_path):
    trainer = _trainer(tmp_path, cls=_RecordingTrainer)
    rows = _dataset(2)
    # Two prompts, their rollouts side by side; each rollout gets its own tag to trace its row.
    inputs = [{**rows[p], "row_tag": 10 * p + k} for p in range(2) for k in range(GENERATIONS)]
    output = GRPOTrainer._generate_and_score_completions(trainer, inputs)

    assert len(trainer.reward_calls) == 1  # one rewards call per generation call
    (seen_inputs, prompts, completions, completion_ids), rewards = trainer.reward_calls[0]
    assert seen_inputs is inputs and len(prompts) == len(completions) == len(inputs)
    # [rollouts, reward functions], the columns in reward_funcs order, the rows in input order:
    # the trainer slices its own process's rows out of this gathered tensor.
    assert rewards.shape == (len(inputs), 2)
    assert rewards[:, 0].tolist() == [0.0, 1.0, 10.0, 11.0]
    # The length reward reads completion_ids; they are exactly the tokens completion_mask counts.
    lengths = output["completion_mask"].sum(dim=1)
    assert [len(ids) for ids in completion_ids] == lengths.tolist()
    assert rewards[:, 1].tolist() == lengths.float().tolist()

    assert {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask"} <= set(output)
    assert output["completion_ids"].shape == output["completion_mask"].shape
    assert output["completion_ids"].shape[0] == len(inputs)
    assert float(output["num_items_in_batch"]) == float(lengths.sum())
    # TRL's own advantages: one per rollout, normalised inside each block of G consecutive rows,
    # the layout the trainer's group ids assume (rollout i belongs to prompt i // G).
    advantages = output["advantages"]
    assert advantages.shape == (len(inputs),) and advantages.is_floating_point()
    weighted = rewards.sum(dim=1)
    for block in range(len(inputs) // GENERATIONS):
        rows_of_block = slice(block * GENERATIONS, (block + 1) * GENERATIONS)
        assert float(advantages[rows_of_block].sum()) == pytest.approx(0.0, abs=1e-4)
        spread = weighted[rows_of_block] - weighted[rows_of_block].mean()
        assert torch.equal(torch.sign(advantages[rows_of_block]), torch.sign(spread))


def test_train_sampler_puts_each_prompts_rollouts_side_by_side(tmp_path):
    trainer = _trainer(tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    # One generation batch: per_device_train_batch_size × steps_per_generation rollouts.
    assert len(batch) == 4 * 2
    tags = [row["row_tag"] for row in batch]
    blocks = [tags[i : i + GENERATIONS] for i in range(0, len(tags), GENERATIONS)]
    assert all(len(set(block)) == 1 for block in blocks), tags
    assert len({block[0] for block in blocks}) == len(blocks)  # each prompt once per batch


def test_prepare_inputs_buffers_steps_per_generation_micro_batches(tmp_path):
    trainer = _trainer(tmp_path, cls=_RecordingTrainer)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer._step = 0
    first = trainer._prepare_inputs(batch)
    buffered = trainer._buffered_inputs
    assert trainer.generation_calls == 1
    assert isinstance(buffered, list) and len(buffered) == trainer.args.steps_per_generation
    # The returned micro-batch is the buffered dict itself: a change made to the buffer after
    # the call (the trainer's token normalisers) reaches the micro-batch trained on.
    assert first is buffered[0]
    tags = []
    for chunk in buffered:
        assert chunk["completion_mask"].shape[0] == trainer.args.per_device_train_batch_size
        # A key added by the override is shuffled and split with the rows it belongs to.
        assert torch.equal(chunk["task_index"].float(), chunk["advantages"])
        tags += chunk["task_index"].tolist()
    assert sorted(tags) == sorted(row["row_tag"] for row in batch)

    trainer._step = 1  # the next micro-batch of the same rollout batch: no new generation
    second = trainer._prepare_inputs(batch)
    assert trainer.generation_calls == 1
    assert trainer._buffered_inputs is buffered and second is buffered[1]
    trainer._step = 2  # a new rollout batch: generated again into a new buffer
    trainer._prepare_inputs(batch)
    assert trainer.generation_calls == 2 and trainer._buffered_inputs is not buffered


# ------------------------------------------------------------------ loss path
def test_logps_and_entropies_are_the_models_with_gradients(tmp_path):
    trainer = _trainer(tmp_path)
    model = trainer.model
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 900, (3, 9), generator=generator)
    attention = torch.ones_like(ids)
    attention[2, :2] = 0  # left padding in the prompt
    attention[1, -1] = 0  # right padding in the completion
    logps, entropies, aux = trainer._get_per_token_logps_and_entropies(
        model, ids, attention, 4, compute_entropy=True
    )
    assert aux is None and logps.shape == entropies.shape == (3, 4)
    # The entropy band's gradient flows through these entropies into the model.
    assert logps.requires_grad and entropies.requires_grad
    logits = model(input_ids=ids, attention_mask=attention).logits[:, -5:-1]
    expected_logps = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, -4:, None])[..., 0]
    real = attention[:, -4:].bool()
    torch.testing.assert_close(logps[real], expected_logps[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropies[real], token_entropy(logits)[real], atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad(entropies[real].sum(), model.lm_head.weight)
    assert float(grad.abs().sum()) > 0


class _LogpsRecorder(GRPOTrainer):
    """Records how the loss calls the log-probability method and what it returned."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.logps_calls: list[tuple[dict, torch.Tensor, torch.Tensor]] = []
        super().__init__(*args, **kwargs)

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        self.logps_calls.append((kwargs, logps, entropies))
        return logps, entropies, aux


def _loss_inputs(trainer: GRPOTrainer) -> dict[str, torch.Tensor]:
    """A micro-batch of 4 rollouts whose old log-probabilities put ratios far outside the clip:
    the model's own log-probabilities shifted by up to ±log 5 per token."""
    generator = torch.Generator().manual_seed(1)
    prompt_ids = torch.randint(10, 900, (4, 3), generator=generator)
    completion_ids = torch.randint(10, 900, (4, 6), generator=generator)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4, [1] * 5 + [0]])
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": mask,
        "advantages": torch.tensor([1.5, -0.7, -2.0, 0.3]),
    }
    with torch.no_grad():
        current, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer, trainer.model, torch.cat((prompt_ids, completion_ids), 1),
            torch.cat((inputs["prompt_mask"], mask), 1), 6,
        )  # fmt: skip
    shift = (torch.rand(4, 6, generator=generator) * 2 - 1) * math.log(5)
    inputs["old_per_token_logps"] = current - shift
    return inputs


@pytest.mark.parametrize(("loss_type", "aggregation"), [("dapo", "token"), ("grpo", "seq")])
def test_trl_loss_is_the_method_loss_with_our_settings(tmp_path, loss_type, aggregation):
    """TRL's loss with epsilon / epsilon_high / delta is docs/method.md §3's loss with dual clip,
    aggregated as loss_aggregation says, and normalised as trl_loss_terms assumes."""
    accumulation, steps_per_generation = 2, 4
    trainer = _trainer(
        tmp_path,
        cls=_LogpsRecorder,
        loss_type=loss_type,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=steps_per_generation,
    )
    trainer.current_gradient_accumulation_steps = accumulation  # set by the training loop
    inputs = _loss_inputs(trainer)
    mask, old = inputs["completion_mask"], inputs["old_per_token_logps"]
    advantages = inputs["advantages"]
    items = 50.0  # what G2RPOTrainer puts here: the optimiser step's token count, all processes
    inputs["num_items_in_batch"] = torch.tensor(items)
    loss = trainer._compute_loss(trainer.model, inputs)

    # The loss takes log-probabilities and entropies from one call, entropy requested by keyword
    # (G2RPOTrainer reads kwargs["compute_entropy"] there to capture them).
    assert len(trainer.logps_calls) == 1
    kwargs, logps, entropies = trainer.logps_calls[0]
    assert kwargs.get("compute_entropy") is True and entropies is not None

    method, metrics = method_policy_loss(
        logps, old, advantages, mask, clip_high=0.3, dual_clip=3.0, aggregation=aggregation
    )
    assert metrics["dual_clip_frac"] > 0 and metrics["clip_frac"] > 0  # both clips matter here
    if loss_type == "dapo":
        # Σ mask·ℓ / (num_items / processes × accumulation / steps_per_generation)
        expected = method * mask.sum() / (items * accumulation / steps_per_generation)
    else:
        expected = method / accumulation  # mean of sequence means, per accumulation step
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)

    per_token = clipped_policy_loss(logps, old, advantages, 0.2, 0.3, 3.0)
    terms, normalizer = trl_loss_terms(
        per_token,
        mask,
        loss_type,
        num_items_in_batch=inputs["num_items_in_batch"],
        num_processes=1,
        accumulation=accumulation,
        steps_per_generation=steps_per_generation,
    )
    assert float((terms * mask).sum() / normalizer) == pytest.approx(float(loss), rel=1e-5)
    (trl_grad,) = torch.autograd.grad(loss, trainer.model.lm_head.weight, retain_graph=True)
    (method_grad,) = torch.autograd.grad(expected, trainer.model.lm_head.weight)
    torch.testing.assert_close(trl_grad, method_grad, rtol=1e-4, atol=1e-7)


def test_delta_caps_the_ratio_of_bad_tokens_only(tmp_path):
    trainer = _trainer(tmp_path, cls=_LogpsRecorder)
    trainer.current_gradient_accumulation_steps = 1
    trainer.args.steps_per_generation = 1
    inputs = _loss_inputs(trainer)
    mask = torch.ones_like(inputs["completion_mask"])
    inputs["completion_mask"] = mask
    inputs["num_items_in_batch"] = mask.sum()
    logps, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
        trainer, trainer.model, torch.cat((inputs["prompt_ids"], inputs["completion_ids"]), 1),
        torch.cat((inputs["prompt_mask"], mask), 1), 6,
    )  # fmt: skip
    inputs["old_per_token_logps"] = logps.detach() - math.log(5.0)  # ratio 5 everywhere
    inputs["advantages"] = torch.tensor([-1.0, -2.0, 1.0, 2.0])
    capped = trainer._compute_loss(trainer.model, inputs)
    # A < 0: loss −A·3 (capped), A > 0: −A·1.3 (clipped high) → (3 + 6 − 1.3 − 2.6) / 4.
    assert float(capped) == pytest.approx((3 + 6 - 1.3 - 2.6) / 4, rel=1e-5)
    (grad,) = torch.autograd.grad(capped, trainer.model.lm_head.weight)
    assert float(grad.abs().max()) == 0.0  # every token is capped or clipped: no gradient
    trainer.args.delta = None
    uncapped = trainer._compute_loss(trainer.model, inputs)
    assert float(uncapped) == pytest.approx((5 + 10 - 1.3 - 2.6) / 4, rel=1e-5)


@pytest.mark.parametrize("bias_correction", [False, True])
def test_kl_term_is_beta_times_the_token_mean_of_k3(tmp_path, bias_correction):
    """``beta`` (algorithm.kl_coef) adds β × the token mean of the k3 estimate to the loss. TRL's
    ``use_bias_correction_kl`` (its default: on) weights each token's k3 by the ratio ρ, which
    leaves the value unchanged on-policy (ρ = 1) but not off-policy; off, it is the method's k3."""
    trainer = _trainer(tmp_path, cls=_LogpsRecorder, use_bias_correction_kl=bias_correction)
    trainer.current_gradient_accumulation_steps = 1
    trainer.args.steps_per_generation = 1
    inputs = _loss_inputs(trainer)
    mask = inputs["completion_mask"]
    inputs["num_items_in_batch"] = mask.sum()
    base = trainer._compute_loss(trainer.model, inputs)
    logps = trainer.logps_calls[-1][1]
    inputs["ref_per_token_logps"] = inputs["old_per_token_logps"] + 0.25
    trainer.beta = 0.04
    with_kl = trainer._compute_loss(trainer.model, inputs)
    per_token = k3_kl(logps, inputs["ref_per_token_logps"])
    if bias_correction:
        per_token = per_token * torch.exp(logps - inputs["old_per_token_logps"])
    kl = masked_mean(per_token, mask, "token")
    assert float(kl) > 0
    assert float(with_kl - base) == pytest.approx(0.04 * float(kl), rel=1e-4)


def test_fake_loss_trainer_gives_the_real_trainers_loss(tmp_path):
    """The stand-in of oracles.py reads what TRL's loss reads and gets the same number."""
    trainer = _trainer(tmp_path, cls=_LogpsRecorder)
    trainer.current_gradient_accumulation_steps = 1
    trainer.args.steps_per_generation = 1
    inputs = _loss_inputs(trainer)
    inputs["num_items_in_batch"] = inputs["completion_mask"].sum()
    real = trainer._compute_loss(trainer.model, inputs)
    logps = trainer.logps_calls[-1][1].detach()
    fake = GRPOTrainer._compute_loss(fake_loss_trainer(logps, "dapo", delta=3.0), None, inputs)
    assert float(fake) == pytest.approx(float(real), rel=1e-6)
