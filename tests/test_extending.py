"""docs/extending.md: each recipe's code, run as written in the doc, does what the doc says.

A recipe is the fenced ``python`` block after a ``<!-- recipe: NAME -->`` line; it is executed
inside the registry's ``scoped()`` block, so what it registers is gone after the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from vlthinker.algorithms import ESTIMATORS, compute_advantages
from vlthinker.evaluation import BENCHMARKS, DataSpec, get_benchmark, run_eval
from vlthinker.registry import Registry
from vlthinker.rewards import ANSWER_TYPES, canonical_answer_type, score, score_batch

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
_RECIPE = re.compile(r"<!-- recipe: (\w+) -->\n```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def recipes() -> dict[str, str]:
    return dict(_RECIPE.findall(DOC.read_text(encoding="utf-8")))


def run_recipe(name: str) -> dict[str, Any]:
    """Execute recipe ``name`` as a module would run; returns its namespace."""
    namespace: dict[str, Any] = {"__name__": f"recipe_{name}"}
    exec(compile(recipes()[name], f"{DOC}#{name}", "exec"), namespace)
    return namespace


@pytest.fixture
def scoped(request: pytest.FixtureRequest) -> Iterator[None]:
    """The registry passed by indirect parametrization, restored after the test."""
    registry: Registry[Any] = request.param
    with registry.scoped():
        yield


def test_the_doc_has_the_three_recipes_each_under_30_lines() -> None:
    found = recipes()
    assert sorted(found) == ["answer_type", "benchmark", "estimator"]
    for name, code in found.items():
        assert len(code.strip().splitlines()) < 30, name


# ---------------------------------------------------------------- recipe 1: an estimator


@pytest.mark.parametrize("scoped", [ESTIMATORS], indirect=True)
def test_recipe_estimator(scoped: None) -> None:
    assert "median_grpo" not in ESTIMATORS
    run_recipe("estimator")
    assert "median_grpo" in ESTIMATORS
    # groups 0 and 1 of three rollouts, 2 of two (the lower middle value), 3 of one
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.9, 0.4, 0.0, 1.0, 0.7])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3])
    got = compute_advantages("median_grpo", rewards, groups, scale=2.0)
    # group 0: median 0.5; group 1: median 0.4; group 2: median 0.0; group 3: itself
    expected = torch.tensor([1.0, -1.0, 0.0, -0.4, 1.0, 0.0, 0.0, 2.0, 0.0])
    torch.testing.assert_close(got, expected)
    # the default scale is 1; [B, K] components are summed with the weights, as the trainer does
    torch.testing.assert_close(compute_advantages("median_grpo", rewards, groups), expected / 2)
    components = torch.stack([rewards, torch.ones_like(rewards)], dim=1)
    weighted = compute_advantages("median_grpo", components, groups, weights=[1.0, 0.5])
    torch.testing.assert_close(weighted, expected / 2)  # a constant component shifts no median
    with pytest.raises(ValueError, match="no option 'temperature'; its options: scale"):
        compute_advantages("median_grpo", rewards, groups, temperature=1.0)


@pytest.mark.parametrize("scoped", [ESTIMATORS], indirect=True)
def test_recipe_estimator_in_a_training_config(scoped: None) -> None:
    from vlthinker.train.config import ConfigError, estimator_settings, load_config

    with pytest.raises(ConfigError, match="unknown advantage estimator 'median_grpo'"):
        load_config(None, ["algorithm.estimator=median_grpo"])  # not imported yet
    run_recipe("estimator")
    config = load_config(None, ["algorithm.estimator=median_grpo"])
    assert config.algorithm.estimator == "median_grpo"
    assert estimator_settings(config.algorithm) == {}  # none of the G²RPO shorthands
    config = load_config(
        None, ["algorithm.estimator=median_grpo", "algorithm.estimator_options.scale=2"]
    )
    assert estimator_settings(config.algorithm) == {"scale": 2.0}
    with pytest.raises(ConfigError, match="has no option 'shift'; its options here: scale"):
        load_config(
            None, ["algorithm.estimator=median_grpo", "algorithm.estimator_options.shift=1"]
        )


# ---------------------------------------------------------------- recipe 2: an answer type


def _respond(answer: str) -> str:
    return f"<think>Looking at it.</think><answer>{answer}</answer>"


@pytest.mark.parametrize("scoped", [ANSWER_TYPES], indirect=True)
def test_recipe_answer_type(scoped: None, tmp_path: Path) -> None:
    from vlthinker.data import load_records

    run_recipe("answer_type")
    out = score_batch(
        [_respond("Yes, it is."), _respond("no"), _respond("Nope"), "Yes"],
        ["yes", "yes", "no", "yes"],
        ["yes_no", "Yes-or-No", "binary", "yes_no"],
    )
    # "Nope" is not "no"; a response without an <answer> tag scores 0 whatever it says
    assert [o["accuracy"] for o in out] == [1.0, 0.0, 0.0, 0.0]
    assert out[0]["format"] == 1.0 and out[3]["format"] == 0.0
    assert score(_respond("NO!"), "no", "yes_no")["accuracy"] == 1.0
    assert canonical_answer_type("yes or no") == "yes_no"

    plain = {"id": "a", "task": "vqa", "answer_type": "yes_no", "question": "Red?", "answer": "yes"}
    reference = {
        "problem_id": "b",
        "problem": "<image> Is it blue?",
        "problem_type": "Yes or No",
        "task_type": "general_vqa_science_stem",
        "answer": "<answer>no</answer>",
        "images": [],
    }
    path = tmp_path / "yes_no.json"
    path.write_text(json.dumps([plain, reference]), encoding="utf-8")
    records = load_records(path)
    assert [(r.id, r.task, r.answer_type, r.answer) for r in records] == [
        ("a", "vqa", "yes_no", "yes"),
        ("b", "vqa", "yes_no", "no"),
    ]


def test_without_the_recipe_the_data_layer_refuses_the_answer_type(tmp_path: Path) -> None:
    from vlthinker.data import RecordError, load_records

    path = tmp_path / "yes_no.json"
    raw = {"task": "vqa", "answer_type": "yes_no", "question": "Red?", "answer": "yes"}
    path.write_text(json.dumps([raw]), encoding="utf-8")
    with pytest.raises(RecordError, match="unknown answer type 'yes_no'"):
        load_records(path)


# ---------------------------------------------------------------- recipe 3: a benchmark


@pytest.mark.parametrize("scoped", [BENCHMARKS], indirect=True)
def test_recipe_benchmark(scoped: None, tmp_path: Path) -> None:
    run_recipe("benchmark")
    assert get_benchmark("Colour_Bench").name == "colours"
    data = tmp_path / "colours"
    data.mkdir()
    items = [
        {"id": 1, "question": "The sky?", "options": ["red", "blue"], "answer": "B"},
        {"id": 2, "question": "Grass?", "options": ["green", "grey"], "answer": "A"},
        {"id": 3, "question": "Snow?", "options": ["black", "white"], "answer": "B"},
        {"id": 4, "question": "Coal?", "options": ["black", "white"], "answer": "A"},
    ]
    (data / "questions.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")

    def always_b(records: list[Any]) -> list[str]:
        return [_respond("B") for _ in records]

    result = run_eval(
        [DataSpec.parse(f"colour-bench={data}")],
        out_dir=tmp_path / "out",
        generator=always_b,
        progress=False,
    )
    assert [p.score for p in result.predictions] == [1.0, 0.0, 1.0, 0.0]
    assert result.per_benchmark["colours"]["score"] == 50.0
    rows = [line for line in result.table().splitlines() if line.startswith("| other | Colour")]
    assert len(rows) == 1 and "| 4 | 50.0 |" in rows[0]  # its category, item count and score
    assert "Colour questions" in (tmp_path / "out" / "results.md").read_text()
    # the loader's limit keeps the first items
    limited = run_eval(
        [DataSpec.parse(f"colours={data}")],
        out_dir=tmp_path / "out2",
        generator=always_b,
        progress=False,
        limit=1,
    )
    assert [p.score for p in limited.predictions] == [1.0]
