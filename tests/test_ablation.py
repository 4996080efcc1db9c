"""`vlthinker ablate`: the band arithmetic, per-task gradient norms, a 2-arm × 2-seed ablation on a
small tiny model, and the resume of an interrupted one."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vlthinker.ablation.analysis import (
    Estimate,
    between_seed_se,
    combine_seeds,
    mean_over_tasks,
    seed_task_changes,
    summarize_claim,
    verdict_line,
    worst_task,
)
from vlthinker.ablation.plan import (
    Claim,
    check_folder,
    load_arms,
    plan_runs,
    run_state,
)
from vlthinker.ablation.runner import prepare, run_sequentially, train_in_process
from vlthinker.cli import main
from vlthinker.train.config import ConfigError
from vlthinker.train.gradient_equity import (
    clipped_policy_loss,
    gradient_norm,
    gradient_shares,
    norm_ratio,
    per_task_gradient_norms,
    per_task_gradients,
    per_task_losses,
    task_gradient_metrics,
    trl_loss_terms,
)
from vlthinker.train.run_folder import (
    BATCHES_FILE,
    append_validation_items,
    latest_complete_checkpoint,
    read_metrics,
    read_validation_items,
)

TASKS = ["math", "chart", "ocr", "grounding"]  # the default budget's tasks
ARMS = ["grpo", "g2rpo"]
SEEDS = [0, 1]


# ------------------------------------------------------------------ band arithmetic
def _write_passes(folder: Path, passes: dict[int, dict[str, tuple[str, float]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for step, items in passes.items():
        append_validation_items(folder, step, items)
    return folder


def test_seed_change_is_paired_over_items_as_worked_by_hand(tmp_path: Path):
    # math items: 0 → .5, .5 → 1, 1 → 1: differences .5, .5, 0 → mean 1/3; sample variance
    # ((1/6)² + (1/6)² + (1/3)²) / 2 = 1/12, standard error √(1/12 / 3) = 1/6.
    folder = _write_passes(
        tmp_path / "run",
        {
            0: {"#0": ("math", 0.0), "#1": ("math", 0.5), "#2": ("math", 1.0), "#3": ("ocr", 0.0)},
            5: {"#0": ("math", 0.5), "#1": ("math", 1.0), "#2": ("math", 1.0), "#3": ("ocr", 1.0)},
        },
    )
    changes = seed_task_changes(folder, ["math", "ocr", "chart"])
    assert changes["math"].mean == pytest.approx(1 / 3)
    assert changes["math"].se == pytest.approx(1 / 6)
    assert changes["math"].n == 3
    assert changes["ocr"].mean == 1.0 and math.isinf(changes["ocr"].se)  # one item: no band
    assert "chart" not in changes  # no items of that task


def test_seeds_and_tasks_combine_as_worked_by_hand():
    # Two seeds: mean (0.1 + 0.3) / 2 = 0.2; se √(0.03² + 0.04²) / 2 = 0.05 / 2 = 0.025.
    combined = combine_seeds([Estimate(0.1, 0.03, 10), Estimate(0.3, 0.04, 10)])
    assert combined.mean == pytest.approx(0.2)
    assert combined.se == pytest.approx(0.025)
    assert combined.band == pytest.approx(0.05)
    assert combined.n == 20
    # Seed spread: sd(0.1, 0.3) = √0.02, over √2 → 0.1.
    assert between_seed_se([0.1, 0.3]) == pytest.approx(0.1)
    assert between_seed_se([0.1]) is None
    # Three tasks: mean (0.3 − 0.1 + 0.1) / 3 = 0.1; se √(0.02² + 0.04² + 0.04²) / 3 = 0.06 / 3.
    tasks = {"a": Estimate(0.3, 0.02), "b": Estimate(-0.1, 0.04), "c": Estimate(0.1, 0.04)}
    mean = mean_over_tasks(list(tasks.values()))
    assert mean.mean == pytest.approx(0.1)
    assert mean.se == pytest.approx(0.02)
    assert worst_task(tasks) == ("b", tasks["b"])
    assert math.isinf(combine_seeds([Estimate(0.1, math.inf), Estimate(0.2, 0.1)]).se)


def test_claim_difference_is_paired_by_seed_and_item(tmp_path: Path):
    def run(name: str, seed: int, end: list[float]) -> Path:
        start = {f"#{i}": ("math", 0.5) for i in range(3)}
        return _write_passes(
            tmp_path / name / f"seed{seed}",
            {0: start, 4: {f"#{i}": ("math", v) for i, v in enumerate(end)}},
        )

    # seed 0: arm − baseline per item = (1 − .5) − (.5 − .5) = .5, (.5 − .5) − (0 − .5) = .5,
    # (1 − .5) − (1 − .5) = 0 → mean 1/3, se 1/6 (as above).
    # seed 1: the same items give differences .25, .25, .25 → mean .25, se 0.
    arm = {0: run("arm", 0, [1.0, 0.5, 1.0]), 1: run("arm", 1, [0.75, 0.75, 0.75])}
    baseline = {0: run("base", 0, [0.5, 0.0, 1.0]), 1: run("base", 1, [0.5, 0.5, 0.5])}
    claim = summarize_claim(Claim("arm vs base", "arm", "base"), arm, baseline, ["math"])
    # Across seeds: mean (1/3 + 1/4) / 2 = 7/24; se √((1/6)² + 0²) / 2 = 1/12.
    assert claim["tasks"]["math"]["change"] == pytest.approx(7 / 24)
    assert claim["tasks"]["math"]["se"] == pytest.approx(1 / 12)
    assert claim["mean"]["change"] == pytest.approx(7 / 24)
    assert claim["worst_task"]["task"] == "math"
    expected = "arm vs base: mean +0.292 ± 0.167, worst task (math) +0.292 ± 0.167"
    assert verdict_line(claim) == expected


# ------------------------------------------------------------------ gradient equity
def _linear_policy_loss() -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 7)
    features = torch.randn(4, 6, 5)
    tokens = torch.randint(0, 7, (4, 6))
    logps = torch.log_softmax(model(features), dim=-1).gather(-1, tokens[..., None])[..., 0]
    old = logps.detach() + 0.3 * torch.randn_like(logps)  # ratios on both sides of the clip
    advantages = torch.tensor([1.0, -0.5, 2.0, -1.5])
    per_token = clipped_policy_loss(logps, old, advantages, 0.2, 0.3, 3.0)
    mask = torch.ones(4, 6)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    return model, per_token, mask, torch.tensor([0, 2, 0, 1])


def test_per_task_gradients_add_up_to_the_full_gradient():
    model, per_token, mask, tasks = _linear_policy_loss()
    params = list(model.parameters())
    full = torch.autograd.grad((per_token * mask).sum() / 7.0, params, retain_graph=True)
    gradients = per_task_gradients(per_token, mask, tasks, params, 7.0, num_tasks=4)
    assert sorted(gradients) == [0, 1, 2]  # task 3 has no rollout here: no entry
    for index, expected in enumerate(full):
        total = sum(gradients[task][index] for task in gradients)
        torch.testing.assert_close(total, expected)
    # Each task's gradient is its own: task 1 is row 3 alone.
    alone = torch.autograd.grad((per_token[3] * mask[3]).sum() / 7.0, params, retain_graph=True)
    for got, expected in zip(gradients[1], alone, strict=True):
        torch.testing.assert_close(got, expected)
    norms = per_task_gradient_norms(per_token, mask, tasks, params, 7.0, num_tasks=4)
    assert norms == pytest.approx({t: gradient_norm(g) for t, g in gradients.items()})
    assert all(norm > 0 for norm in norms.values())
    # The loss shares sum to the full loss too.
    shares = per_task_losses(per_token, mask, tasks, 4, 7.0)
    assert float(shares.sum().detach()) == pytest.approx(
        float((per_token * mask).sum().detach() / 7)
    )
    assert float(shares[3].detach()) == 0.0


def test_gradient_shares_and_ratio():
    shares = gradient_shares({0: 1.0, 2: 3.0})
    assert shares == pytest.approx({0: 0.25, 2: 0.75})
    assert gradient_shares({0: 0.0}) == {0: 0.0}
    assert norm_ratio([1.0, 3.0, 2.0]) == pytest.approx(3.0)
    assert math.isinf(norm_ratio([0.0, 1.0]))
    assert math.isnan(norm_ratio([])) and math.isnan(norm_ratio([0.0, 0.0]))


def test_trainer_metrics_split_the_recomputed_policy_loss_by_task():
    model, _, mask, tasks = _linear_policy_loss()
    torch.manual_seed(1)
    features = torch.randn(4, 6, 5)
    logps = torch.log_softmax(model(features), dim=-1)[..., 0]
    inputs = {"advantages": torch.tensor([1.0, -0.5, 2.0, -1.5]), "num_items_in_batch": 20.0}
    trainer = SimpleNamespace(
        args=SimpleNamespace(
            delta=3.0, steps_per_generation=2, task_names=["math", "chart", "ocr", "vqa"]
        ),
        epsilon_low=0.2,
        epsilon_high=0.3,
        loss_type="dapo",
        accelerator=SimpleNamespace(num_processes=1),
        current_gradient_accumulation_steps=2,
        method=SimpleNamespace(task_names=("math", "chart", "ocr", "vqa")),
    )
    metrics = task_gradient_metrics(trainer, model, logps, mask, tasks, inputs)
    assert set(metrics) == {f"{t}/{k}" for t in ("math", "chart", "ocr") for k in
                            ("grad_norm", "grad_share", "advantage_gradient_ratio")}  # fmt: skip
    # No old log-probabilities: ratio 1, the loss is −A per token, normalised by 20 × 2 / 2.
    per_token = clipped_policy_loss(logps, logps.detach(), inputs["advantages"], 0.2, 0.3, 3.0)
    expected = per_task_gradient_norms(per_token, mask, tasks, list(model.parameters()), 20.0)
    assert metrics["chart/grad_norm"] == pytest.approx(expected[1])
    assert metrics["ocr/grad_norm"] == pytest.approx(expected[2])
    total = sum(expected.values())
    assert metrics["math/grad_share"] == pytest.approx(expected[0] / total)
    # the advantage's own part: the same norms with every A replaced by its sign, divided out
    signs = torch.sign(inputs["advantages"])
    per_sign = clipped_policy_loss(logps, logps.detach(), signs, 0.2, 0.3, 3.0)
    sign_norms = per_task_gradient_norms(per_sign, mask, tasks, list(model.parameters()), 20.0)
    assert metrics["ocr/advantage_gradient_ratio"] == pytest.approx(expected[2] / sign_norms[2])
    assert metrics["ocr/advantage_gradient_ratio"] != pytest.approx(1.0)  # |A| = 2 there
    assert sum(v for k, v in metrics.items() if k.endswith("grad_share")) == pytest.approx(1.0)


def test_clipped_loss_and_normalisers_follow_trl():
    logps = torch.log(torch.tensor([[1.5, 5.0, 1.0]]))
    old = torch.zeros(1, 3)
    # ratio 1.5, A = 1: min(1.5, clip 1.3) → −1.3; ratio 5 (dual clip at 3), A = 1 → −1.3.
    up = clipped_policy_loss(logps, old, torch.tensor([1.0]), 0.2, 0.3, 3.0)
    torch.testing.assert_close(up, torch.tensor([[-1.3, -1.3, -1.0]]))
    # A = −1: −min(−r, −clip(r)) = max(r, clip(r)) capped at 3 by the dual clip → 1.5, 3, 1.
    down = clipped_policy_loss(logps, old, torch.tensor([-1.0]), 0.2, 0.3, 3.0)
    torch.testing.assert_close(down, torch.tensor([[1.5, 3.0, 1.0]]))
    # seq ("grpo"): mean over sequences of token means, / accumulation 2.
    per_token = torch.tensor([[1.0, 3.0, 9.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    terms, normalizer = trl_loss_terms(
        per_token, mask, "grpo", num_items_in_batch=None, num_processes=1, accumulation=2,
        steps_per_generation=2,
    )  # fmt: skip
    assert float((terms * mask).sum() / normalizer) == pytest.approx(((2.0 + 4.0) / 2) / 2)
    # token ("dapo"): Σ / (num_items / processes × accumulation / steps_per_generation).
    terms, normalizer = trl_loss_terms(
        per_token, mask, "dapo", num_items_in_batch=torch.tensor(6.0), num_processes=1,
        accumulation=2, steps_per_generation=4,
    )  # fmt: skip
    assert float((terms * mask).sum() / normalizer) == pytest.approx(8.0 / 3.0)


# ------------------------------------------------------------------ arms
def test_packaged_arms_and_a_user_file(tmp_path: Path):
    spec = load_arms()
    assert list(spec.arms) == [
        "grpo", "dr_grpo", "g2rpo_reference", "g2rpo", "g2rpo_length", "g2rpo_entropy",
        "g2rpo_full",
    ]  # fmt: skip
    assert "shaping.entropy=false" in spec.arms["g2rpo"].overrides
    # the paper's stage 2, ranked at any pool size, one value away from the default
    reference = spec.arms["g2rpo_reference"].overrides
    assert "algorithm.stage2=reference" in reference
    assert "algorithm.stage2_min_groups=0" in reference
    assert {"default", "quick"} <= set(spec.budgets)
    extra = tmp_path / "arms.yaml"
    extra.write_text(
        "arms:\n  rloo: [algorithm.estimator=rloo]\n"
        "claims:\n  - {label: RLOO vs GRPO, arm: rloo, baseline: grpo}\n"
    )
    spec = load_arms([extra])
    assert spec.arms["rloo"].overrides == ("algorithm.estimator=rloo",)
    assert spec.claims[-1] == Claim("RLOO vs GRPO", "rloo", "grpo")
    extra.write_text("arms:\n  broken: [algorithm.estimator]\n")
    with pytest.raises(ConfigError, match="not key=value"):
        load_arms([extra])


# ------------------------------------------------------------------ end to end
def tiny_overrides(small_model_dir: Path) -> list[str]:
    return [
        f"model.path={small_model_dir}",
        "training.max_steps=2",
        "training.save_steps=1",
        "training.eval_steps=2",
        "training.prompts_per_step=6",
        "training.per_device_batch_size=12",
        "training.eval_batch_size=12",
        "training.eval_samples=2",
        "rollout.num_generations=4",
        "rollout.max_new_tokens=10",
        "rollout.online_filter=null",  # one generation per step: the step logs line up
        "logging.task_gradient_norms_every=2",  # measured at step 1 only
        "algorithm.num_iterations=1",
        "data.train_size=36",
        "data.validation_size=2",
        "data.image_size=64",
        "logging.progress=false",
        "logging.plots=false",
        "logging.report_to=[]",
    ]


@pytest.fixture(scope="module")
def ablation(small_model_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ablation") / "out"
    seeds = [str(s) for s in SEEDS]
    argv = ["ablate", "--out", str(out), "--seeds", *seeds, "--arms", *ARMS]
    assert main([*argv, *tiny_overrides(small_model_dir)]) == 0
    return out


def test_two_arms_two_seeds_write_the_table_plot_and_json(ablation: Path):
    summary = json.loads((ablation / "ablation.json").read_text())
    assert summary["tasks"] == TASKS and summary["seeds"] == SEEDS
    assert summary["passes"] == {"first": 0, "last": 2}
    assert list(summary["arms"]) == ARMS
    for arm in ARMS:
        numbers = summary["arms"][arm]
        assert sorted(numbers["seeds"]) == ["0", "1"]
        assert set(numbers["tasks"]) == set(TASKS)
        for task in TASKS:
            entry = numbers["tasks"][task]
            seed_changes = [numbers["seeds"][s][task]["change"] for s in ("0", "1")]
            assert entry["change"] == pytest.approx(sum(seed_changes) / 2)
            assert -1.0 <= entry["change"] <= 1.0 and entry["n"] == 4  # 2 items × 2 seeds
            assert numbers["curves"][task]["steps"] == [0, 2]
            low, high = numbers["curves"][task]["low"], numbers["curves"][task]["high"]
            assert all(a <= b for a, b in zip(low, high, strict=True))
            # the change from the first pass at every pass, with its band
            passes = numbers["pass_changes"][task]
            assert passes["steps"] == [0, 2] and passes["change"][0] == 0.0
            assert passes["change"][1] == pytest.approx(entry["change"])
            # greedy: start model against final model, one answer per item, paired
            greedy = numbers["greedy"]["tasks"][task]
            assert greedy["n"] == 4 and -1.0 <= greedy["change"] <= 1.0
        assert set(numbers["advantages"]) >= {
            "wrong_positive_share", "right_negative_share", "advantage_abs_live",
            "advantage_rms_live", "advantage_gradient_ratio", "stage2_active",
        }  # fmt: skip
        assert numbers["worst_task"]["task"] in TASKS
        equity = numbers["gradient_equity"]
        assert set(equity["mean_norm"]) <= set(TASKS) and equity["mean_norm"]
        # (the untrained small model earns no reward, so its norms may all be zero)
        assert all(0 <= value < math.inf for value in equity["mean_norm"].values())
        assert equity["ratio"] is None or equity["ratio"] >= 1.0
        config = (ablation / arm / "seed1" / "config.yaml").read_text()
        assert f"estimator: {arm}" in config and "seed: 1" in config
    claims = {claim["label"]: claim for claim in summary["claims"]}
    assert set(claims) == {"G²RPO vs GRPO"}  # the other claims' arms were not run
    assert claims["G²RPO vs GRPO"]["seeds"] == SEEDS
    table = (ablation / "ablation.md").read_text()
    assert "| grpo |" in table and "| g2rpo |" in table
    assert "- G²RPO vs GRPO: mean " in table and ", worst task (" in table
    assert "; greedy mean " in table and "## Sign errors" in table
    for arm in ARMS:  # the greedy passes are normal validation passes of each run
        for which in ("start", "end"):
            assert read_validation_items(ablation / arm / "seed0" / "greedy" / which)
    assert (ablation / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    # Every 2nd step (1, 3, …) logs every present task's gradient norm and its share of the total.
    steps = [e for e in read_metrics(ablation / "g2rpo" / "seed0") if e["split"] == "train"]
    logged = [e for e in steps if any(k.endswith("/grad_norm") for k in e)]
    assert [e["step"] for e in logged] == [1]
    for entry in logged:
        shares = [v for k, v in entry.items() if k.endswith("/grad_share")]
        assert shares and all(0.0 <= s <= 1.0 for s in shares)
        assert sum(shares) == pytest.approx(1.0) or sum(shares) == 0.0  # one micro-batch a step


def test_an_interrupted_ablation_resumes_without_redoing_finished_runs(
    ablation: Path, small_model_dir: Path, tmp_path: Path
):
    out = tmp_path / "out"
    shutil.copytree(ablation, out)
    # g2rpo seed 1 was killed after its step-1 checkpoint; grpo seed 1 before any checkpoint.
    killed = out / "g2rpo" / "seed1"
    for path in [killed / "results.json", killed / "checkpoint-2", killed / "final"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert latest_complete_checkpoint(killed).step == 1
    early = out / "grpo" / "seed1"
    for child in early.iterdir():
        if child.name != "config.yaml" and child.name != "metrics.jsonl":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/seed0/results.json")}
    assert len(finished) == 2

    spec = load_arms()
    from vlthinker.train.cli import DEMO_CONFIG, packaged_config

    common = ["logging.task_gradient_norms=true", *spec.budgets["default"]]
    common += tiny_overrides(small_model_dir)
    runs = plan_runs(packaged_config(DEMO_CONFIG), [spec.arms[a] for a in ARMS], SEEDS, out, common)
    assert [run_state(r.folder) for r in runs] == ["done", "done", "partial", "partial"]
    done: list[tuple[str, int, str]] = []

    def recording(run, action: str) -> None:
        done.append((run.arm, run.seed, action))
        train_in_process(run, action)

    outcomes = run_sequentially(runs, recording, say=lambda _: None)
    # Both resume: from the step-1 checkpoint, and from step 0 (no checkpoint yet).
    assert [o.status for o in outcomes] == ["skipped", "skipped", "resumed", "resumed"]
    assert done == [("grpo", 1, "resume"), ("g2rpo", 1, "resume")]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # untouched
    for folder in (killed, early):
        assert run_state(folder) == "done"
        lines = (folder / BATCHES_FILE).read_text().splitlines()
        steps = [json.loads(line)["step"] for line in lines]
        assert steps == [1, 2]  # each step trained once
        assert sorted(read_validation_items(folder)) == [0, 2]
    assert all(prepare(r) == "done" for r in runs)

    # A run folder made with other settings is neither counted nor resumed.
    other = plan_runs(
        packaged_config(DEMO_CONFIG), [spec.arms["grpo"]], [0], out,
        [*common, "training.max_steps=3"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"training\.max_steps"):
        check_folder(other[0])


def test_parallel_runs_go_to_subprocesses_and_resume_there(
    ablation: Path, small_model_dir: Path, tmp_path: Path
):
    out = tmp_path / "out"
    shutil.copytree(ablation, out)
    killed = out / "grpo" / "seed1"  # stopped after its step-1 checkpoint
    for path in [killed / "results.json", killed / "checkpoint-2", killed / "final"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(out / "g2rpo" / "seed1")  # never started
    (out / "ablation.md").unlink()
    argv = ["ablate", "--out", str(out), "--seeds", "0", "1", "--parallel", "2", "--arms", *ARMS]
    assert main([*argv, *tiny_overrides(small_model_dir)]) == 0
    assert (out / "g2rpo" / "seed1.yaml").exists()  # the planned config it started from
    assert (out / "grpo" / "seed1.log").exists() and (out / "g2rpo" / "seed1.log").exists()
    for folder in (killed, out / "g2rpo" / "seed1"):
        assert run_state(folder) == "done"
        lines = (folder / BATCHES_FILE).read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [1, 2]
    summary = json.loads((out / "ablation.json").read_text())
    assert all(sorted(summary["arms"][arm]["seeds"]) == ["0", "1"] for arm in ARMS)
    assert (out / "ablation.md").exists()


def test_a_folder_without_a_config_starts_afresh_and_a_live_one_is_refused(tmp_path: Path):
    import os

    spec = load_arms()
    (run,) = plan_runs(None, [spec.arms["grpo"]], [0], tmp_path / "out")
    run.folder.mkdir(parents=True)
    (run.folder / "metrics.jsonl").write_text('{"step": 0, "split": "validation"}\n')
    (run.folder / "notes.txt").write_text("mine")
    dead = 2**22 + 7  # above Linux's largest PID: no such process
    (run.folder / "train.lock").write_text(json.dumps({"pid": dead, "host": ""}))
    assert run_state(run.folder) == "partial"
    assert prepare(run) == "new"  # stale lock, no config: what a run wrote is cleared
    assert not (run.folder / "metrics.jsonl").exists() and (run.folder / "notes.txt").exists()
    (run.folder / "config.yaml").write_text("")
    (run.folder / "train.lock").write_text(json.dumps({"pid": os.getppid(), "host": ""}))
    with pytest.raises(ConfigError, match="in use by another training process"):
        prepare(run)


def test_device_slots_give_one_run_per_gpu():
    from vlthinker.ablation.runner import device_slots

    assert device_slots(4, 2) == ["0", "1"]
    assert device_slots(2, 8) == ["0", "1"]
    assert device_slots(3, 0) == [None, None, None]
