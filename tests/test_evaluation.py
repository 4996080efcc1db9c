"""`vlthinker.evaluation`: every benchmark adapter on a small fixture in its public file layout,
scored with hand-checked expectations; the results table recomputed from predictions.jsonl; a
rerun that skips the scored items; the `vlthinker eval` command wiring. No model: a fake
generator returns chosen responses per item."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path

import pytest

from vlthinker.data import PromptConfig
from vlthinker.evaluation import (
    DataSpec,
    all_benchmarks,
    evaluate_records,
    get_benchmark,
    read_predictions,
    run_eval,
    summarize,
    task_means,
)
from vlthinker.evaluation.adapters import BENCHMARKS
from vlthinker.evaluation.aggregates import AGGREGATES
from vlthinker.evaluation.scoring import RULES, score_prediction

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
CONFIG = PromptConfig()

# Per benchmark: {item id: (answer the fake model gives, expected item score)}, and the expected
# reported number (percent; OCRBench out of 1000). Each expectation is worked out by hand from
# the benchmark's rule (comments give the reasoning where it is not a plain match).
CASES: dict[str, tuple[dict[str, tuple[str, float]], float]] = {
    "mmmu": (
        {
            "validation_Art_1": ("C", 1.0),
            "validation_Art_2": ("B", 0.0),
            "validation_Math_1": ("24", 1.0),  # open: number equal to the reference
            "validation_Math_2": ("3.50", 1.0),  # open: 3.50 == 3.5 (first of ['3.5', '7/2'])
        },
        75.0,
    ),
    "mmbench": (  # CircularEval: question 0 right in all 4 rotations, 1 wrong in one, 2 right
        {
            "0": ("B", 1.0),
            "1000000": ("A", 1.0),
            "2000000": ("D", 1.0),
            "3000000": ("C", 1.0),
            "1": ("A", 1.0),
            "1000001": ("C", 1.0),
            "2000001": ("A", 0.0),  # rotation 2 puts "one" at B
            "2": ("B", 1.0),
            "1000002": ("A", 1.0),
        },
        200.0 / 3.0,
    ),
    "mmstar": ({"0": ("A", 1.0), "1": ("C", 1.0), "2": ("B", 0.0)}, 200.0 / 3.0),
    "mathvista": (
        {
            "1": ("B", 1.0),  # multi_choice: key "4" is option B
            "2": ("12", 1.0),
            "3": ("1.52", 1.0),  # float at precision 1: round(1.52, 1) == 1.5
            "4": ("8", 0.0),
        },
        75.0,
    ),
    "mathverse": ({"1": ("B", 1.0), "2": ("5", 1.0), "3": ("C", 0.0)}, 200.0 / 3.0),
    "mathvision": (
        {"1": ("C", 1.0), "2": ("14", 1.0), "3": ("1/3", 0.0)},  # 1/3 != \frac{1}{2}
        200.0 / 3.0,
    ),
    "ai2d": ({"0": ("B", 1.0), "1": ("A", 1.0), "2": ("C", 0.0)}, 200.0 / 3.0),
    "chartqa": (
        {
            "0": ("46", 1.0),  # |46 - 45| / 45 = 2.2 % <= 5 %
            "1": ("14", 0.0),  # |14 - 12.5| / 12.5 = 12 % > 5 %
            "2": ("Yes", 1.0),
            "3": ("Brazil", 1.0),
        },
        75.0,
    ),
    "charxiv": (
        {
            "images/0.jpg": ("0.25", 1.0),
            "images/1.jpg": ("model a", 1.0),  # text: normalised (case-folded) equality
            "images/2.jpg": ("4", 0.0),
        },
        200.0 / 3.0,
    ),
    "docvqa": (
        {
            "101": ("ITC Limited", 1.0),
            "102": ("1990", 0.75),  # ANLS: edit distance 1 over length 4 -> 1 - 0.25
            "103": ("Mary", 0.0),  # normalised distance > 0.5 -> 0
        },
        175.0 / 3.0,
    ),
    "infovqa": (
        {"201": ("62", 1.0), "202": ("North America", 1.0), "203": ("5", 0.0)},
        200.0 / 3.0,
    ),
    "ocrbench": (
        {
            "0": ("stop sign", 1.0),  # "stop" contained (case-insensitive)
            "1": ("05/12/2020", 0.0),
            "2": ("x ^ { 2 } + 1", 1.0),  # handwritten math: compared with spaces removed
            "3": ("Coca-Cola", 1.0),  # second reference "coca-cola" contained
        },
        750.0,
    ),
    "embspatial": ({"mp3d_0": ("C", 1.0), "mp3d_1": ("B", 0.0), "mp3d_2": ("D", 1.0)}, 200 / 3),
    "refspatial": (
        {
            "location-1": ("[(0.75, 0.5)]", 1.0),  # mask: right half
            "location-2": ("[(0.75, 0.5), (0.25, 0.5)]", 0.5),  # mask: left half, 1 of 2 in
            # JSON point_2d on the 0-1000 scale: (0.5, 0.2), mask: top half (VLMEvalKit's
            # Point2DParser; a text pair above 1.5 would be read as pixels)
            "placement-1": ('[{"point_2d": [500, 200]}]', 1.0),
        },
        250.0 / 3.0,
    ),
    "robospatial": (  # correct / total over all items (the official overall): 4 / 5
        {
            "configuration-0": ("Yes, it is.", 1.0),
            # the key is "no"; the official rule is startswith("no"), which "nothing" passes
            "configuration-1": ("nothing blocks it, so yes", 1.0),
            "compatibility-0": ("yes", 1.0),
            "context-0": ("[(0.3, 0.3)]", 1.0),  # inside the polygon [0.1, 0.5]^2
            "context-1": ("[(0.8, 0.8)]", 0.0),
        },
        80.0,  # the mean of category means would be (1 + 1 + 1/2) / 3 = 83.3
    ),
    # RefCOCO family: image 64x48, boxes in Qwen's 0-1000 scale. 1001: bbox [16, 12, 32, 24]
    # (x, y, w, h) = [250, 250, 750, 750]; 1002: [0, 0, 32, 48] = [0, 0, 500, 1000].
    "refcoco": (
        {
            "1001-0": ('{"boxes": [250, 250, 750, 750]}', 1.0),
            "1001-1": ('{"boxes": [300, 300, 800, 800]}', 1.0),  # IoU 0.68
            "1002-0": ('{"boxes": [500, 0, 1000, 1000]}', 0.0),  # IoU 0
        },
        200.0 / 3.0,
    ),
    "refcoco+": (
        {
            "1001-0": ('{"boxes": [250, 250, 750, 750]}', 1.0),
            "1001-1": ("[250, 250, 750, 750]", 1.0),
            "1002-0": ('{"boxes": [0, 0, 500, 1000]}', 1.0),
        },
        100.0,
    ),
    "refcocog": (
        {
            "1001-0": ('{"boxes": [250, 250, 750, 750]}', 1.0),
            "1001-1": ("the dog", 0.0),  # no box
            "1002-0": ('{"boxes": [0, 0, 240, 1000]}', 0.0),  # IoU 0.48 < 0.5
        },
        100.0 / 3.0,
    ),
}
PAPER_BENCHMARKS = list(CASES)


def reply(record, answer: str) -> str:
    """A well-formed response: think + answer for reasoning tasks, a bare answer otherwise."""
    if CONFIG.is_reasoning(record.task):
        return f"<think>Looking at the image.</think><answer>{answer}</answer>"
    return f"<answer>{answer}</answer>"


class FakeModel:
    """A generator (records -> responses) answering from CASES; counts what it was asked."""

    def __init__(self, answers: dict[tuple[str, str], str] | None = None) -> None:
        self.answers = answers or {
            (name, item): answer
            for name, (items, _) in CASES.items()
            for item, (answer, _) in items.items()
        }
        self.calls = 0
        self.items = 0

    def __call__(self, records):
        self.calls += 1
        self.items += len(records)
        return [reply(r, self.answers.get((r.meta["benchmark"], r.id), "none")) for r in records]


def test_the_registry_has_the_papers_18_benchmarks_in_six_categories():
    names = [b.name for b in all_benchmarks()]
    assert sorted(set(names) - {"synthetic", "records"}) == sorted(PAPER_BENCHMARKS)
    by_category = defaultdict(list)
    for b in all_benchmarks():
        by_category[b.category].append(b.name)
    for category in (
        "general VQA",
        "math VQA",
        "charts",
        "documents",
        "spatial reasoning",
        "grounding",
    ):
        assert len(by_category[category]) == 3, category
    assert get_benchmark("RefCOCO_plus").name == "refcoco+"
    assert get_benchmark("OCRBench").scale == 1000.0
    assert {b.name for b in all_benchmarks() if b.judged} >= {"mathvista", "mathverse"}
    with pytest.raises(KeyError, match="unknown benchmark"):
        get_benchmark("imagenet")


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_adapter_on_its_fixture_scores_as_hand_checked(name, tmp_path):
    items, expected = CASES[name]
    records = get_benchmark(name).load(FIXTURES / name, image_dir=tmp_path)
    # the paper's split only: test / dev / text-only / unseen files in the fixture are skipped
    assert sorted(r.id for r in records) == sorted(items)
    for record in records:
        assert record.meta["benchmark"] == name
        assert record.images and all(Path(p).is_file() for p in record.images)
        assert all(image.mode == "RGB" for image in record.load_images())
    result = evaluate_records(
        None,
        None,
        records,
        batch_size=2,
        max_new_tokens=8,
        prompt_config=CONFIG,
        progress=False,
        generator=FakeModel(),
    )
    got = {p.id: p.score for p in result.predictions}
    assert got == pytest.approx({item: score for item, (_, score) in items.items()})
    assert all(p.format == 1.0 for p in result.predictions)
    entry = result.per_benchmark[name]
    assert entry["score"] == pytest.approx(expected)
    assert entry["category"] == get_benchmark(name).category


def test_mmbench_rotations_and_multi_image_items(tmp_path):
    records = get_benchmark("mmbench").load(FIXTURES / "mmbench", image_dir=tmp_path)
    by_id = {r.id: r for r in records}
    assert by_id["2000000"].options == ["A. blue", "B. black", "C. red", "D. green"]
    assert by_id["2000000"].answer == "D"
    # row 2 refers to row 0's image (VLMEvalKit's index reference)
    assert Path(by_id["2"].images[0]).read_bytes() == Path(by_id["0"].images[0]).read_bytes()
    assert (
        get_benchmark("mmbench").load(FIXTURES / "mmbench", image_dir=tmp_path, limit=1)[-1].id
        == "3000000"
    )
    mmmu = {r.id: r for r in get_benchmark("mmmu").load(FIXTURES / "mmmu", image_dir=tmp_path)}
    assert len(mmmu["validation_Art_2"].images) == 2
    assert mmmu["validation_Math_2"].meta["eval"]["answers"] == ["3.5", "7/2"]


def test_grounding_records_carry_the_verifiers_box_convention(tmp_path):
    record = get_benchmark("refcoco").load(FIXTURES / "refcoco", image_dir=tmp_path)[0]
    assert record.answer == [250.0, 250.0, 750.0, 750.0]
    assert record.meta["box_format"] == "qwen1000" and record.meta["image_size"] == [64, 48]
    scores = score_prediction(record, '<answer>{"boxes": [250, 250, 750, 750]}</answer>', CONFIG)
    assert scores["accuracy"] == pytest.approx(1.0)  # the training verifier: IoU
    assert scores["score"] == 1.0


def test_untrusted_model_output_is_never_executed_and_stays_bounded(tmp_path):
    records = get_benchmark("mmmu").load(FIXTURES / "mmmu", image_dir=tmp_path)
    open_item = next(r for r in records if r.id == "validation_Math_1")
    nasty = [
        "<answer>__import__('os').system('touch pwned')</answer>",
        "<answer>" + "[" * 10_000 + "</answer>",
        "<answer>" + "9" * 200_000 + "</answer>",
        "<think>" + "x" * 1_000_000,
    ]
    started = time.perf_counter()
    for response in nasty:
        scores = score_prediction(open_item, response, CONFIG)
        assert all(math.isfinite(v) for k, v in scores.items() if k not in ("extracted", "numbers"))
        assert scores["score"] == 0.0
    assert time.perf_counter() - started < 10
    assert not Path("pwned").exists()


def _specs() -> list[DataSpec]:
    return [DataSpec.parse(f"{name}={FIXTURES / name}") for name in PAPER_BENCHMARKS]


def _recompute(rows: list[dict]) -> dict[str, float]:
    """Each benchmark's number from the JSONL rows, written out independently of table.py."""
    grouped = defaultdict(list)
    for row in rows:
        grouped[row["benchmark"]].append(row)
    numbers = {}
    for name, items in grouped.items():
        if name == "mmbench":
            questions = defaultdict(list)
            for row in items:
                questions[row["group"]].append(row["score"])
            value = sum(all(s == 1.0 for s in v) for v in questions.values()) / len(questions)
        else:  # RoboSpatial too: correct / total over all items, as its official script
            value = sum(row["score"] for row in items) / len(items)
        numbers[name] = value * (1000.0 if name == "ocrbench" else 100.0)
    return numbers


def test_run_eval_table_is_recomputable_from_the_predictions_file(tmp_path):
    fake = FakeModel()
    out = tmp_path / "out"
    run_eval(_specs(), out_dir=out, generator=fake, batch_size=4, progress=False, model_path="fake")
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(items) for items, _ in CASES.values()) == fake.items
    assert {
        "benchmark",
        "id",
        "task",
        "score",
        "accuracy",
        "format",
        "response",
        "extracted",
    } <= set(rows[0])

    results = json.loads((out / "results.json").read_text())
    reported = {b["name"]: b["score"] for b in results["benchmarks"]}
    assert reported == pytest.approx(_recompute(rows))
    assert reported == pytest.approx({name: expected for name, (_, expected) in CASES.items()})
    counts = {b["name"]: b["n"] for b in results["benchmarks"]}
    assert counts["mmbench"] == 3 and counts["ocrbench"] == 4 and counts["refspatial"] == 3

    # category means in percent (OCRBench / 10), all six categories complete
    categories = {c["name"]: c for c in results["categories"]}
    docs = (reported["docvqa"] + reported["ocrbench"] / 10 + reported["infovqa"]) / 3
    assert categories["documents"]["mean"] == pytest.approx(docs)
    assert all(c["complete"] for c in categories.values())
    assert categories["general VQA"]["paper"]["Qwen3-VL-8B-Instruct"] == pytest.approx(
        71.27, abs=0.01
    )

    # per-task means over the rows
    for task, values in results["tasks"].items():
        task_rows = [r for r in rows if r["task"] == task]
        assert values["n"] == len(task_rows)
        assert values["accuracy"] == pytest.approx(
            sum(r["accuracy"] for r in task_rows) / len(task_rows)
        )
        assert values["score"] == pytest.approx(sum(r["score"] for r in task_rows) / len(task_rows))

    # the same summary again from the file alone
    again = summarize(rows)
    assert [b["score"] for b in again["benchmarks"]] == pytest.approx(list(reported.values()))

    table = (out / "results.md").read_text()
    assert "OCRBench" in table and "750 /1000" in table
    assert "MathVista (testmini)†" in table and "MathVerse (testmini)†" in table
    assert "not comparable" in table and "judge-free" in table
    order = [
        table.index(c)
        for c in (
            "| general VQA |",
            "| math VQA |",
            "| charts |",
            "| documents |",
            "| spatial reasoning |",
            "| grounding |",
        )
    ]
    assert order == sorted(order)


def test_task_means_carry_the_standard_error_of_accuracy():
    # By hand: accuracies 1, 0, 1, 0 → mean 0.5, sample variance 1/3, s.e. √(1/3 / 4) = 0.2887;
    # one item has no spread to measure (0); a constant task has none either.
    rows = [{"task": "math", "accuracy": a, "format": 1.0} for a in (1.0, 0.0, 1.0, 0.0)]
    rows += [{"task": "ocr", "accuracy": 0.7}]
    rows += [{"task": "vqa", "accuracy": 0.5}, {"task": "vqa", "accuracy": 0.5}]
    means = task_means(rows)
    assert means["math"]["accuracy"] == 0.5
    assert means["math"]["accuracy_se"] == pytest.approx(0.288675, abs=1e-6)
    assert means["ocr"]["accuracy_se"] == 0.0
    assert means["vqa"]["accuracy_se"] == 0.0


def test_rerun_skips_scored_items_and_finishes_an_interrupted_run(tmp_path):
    specs = [DataSpec.parse(f"{n}={FIXTURES / n}") for n in ("chartqa", "ocrbench")]
    out = tmp_path / "out"
    first = FakeModel()
    run_eval(specs, out_dir=out, generator=first, batch_size=3, progress=False)
    assert first.items == 8

    again = FakeModel()
    result = run_eval(specs, out_dir=out, generator=again, batch_size=3, progress=False)
    assert again.items == 0 and again.calls == 0
    timings = json.loads((out / "results.json").read_text())["timings"]
    assert set(timings) == {"chartqa", "ocrbench"}  # kept from the run that generated them
    assert result.per_benchmark["ocrbench"]["score"] == pytest.approx(750.0)

    # an interrupted run: the last prediction never written, the one before it torn mid-line
    path = out / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]) + lines[-2][:25])
    resumed = FakeModel()
    result = run_eval(specs, out_dir=out, generator=resumed, batch_size=3, progress=False)
    assert resumed.items == 2
    assert len(read_predictions(path)) == 8
    assert result.per_benchmark["chartqa"]["score"] == pytest.approx(75.0)
    assert result.per_benchmark["ocrbench"]["score"] == pytest.approx(750.0)

    # a larger --limit later only adds the new items
    limited = tmp_path / "limited"
    run_eval(specs, out_dir=limited, generator=FakeModel(), limit=1, progress=False)
    more = FakeModel()
    run_eval(specs, out_dir=limited, generator=more, limit=3, progress=False)
    assert more.items == 4


def test_synthetic_suite_and_record_files_use_the_training_verifiers(tmp_path):
    from vlthinker.data import target_text, write_records

    records = get_benchmark("synthetic").load(None, image_dir=tmp_path)
    assert {r.task for r in records} == {"math", "chart", "ocr", "grounding", "spatial", "vqa"}
    assert [r.id for r in records] == [
        r.id for r in get_benchmark("synthetic").load(None, image_dir=tmp_path)
    ]
    # the reference answer in the prompt's own format scores (about) 1 with the verifiers
    perfect = evaluate_records(
        None,
        None,
        records[:12],
        batch_size=4,
        max_new_tokens=8,
        prompt_config=CONFIG,
        progress=False,
        generator=lambda rs: [target_text(r, CONFIG) for r in rs],
    )
    assert set(perfect.per_task) == {"math", "chart", "ocr", "grounding", "spatial", "vqa"}
    for task, values in perfect.per_task.items():
        assert values["n"] == 2
        assert values["format"] == 1.0
        assert values["accuracy"] >= (0.9 if task == "grounding" else 1.0), task
    wrong = evaluate_records(
        None,
        None,
        records[:6],
        batch_size=6,
        max_new_tokens=8,
        prompt_config=CONFIG,
        progress=False,
        generator=lambda rs: ["no tags at all" for _ in rs],
    )
    assert all(v["format"] == 0.0 and v["accuracy"] == 0.0 for v in wrong.per_task.values())

    folder = tmp_path / "records"
    write_records(records[:6], folder / "synthetic.jsonl")
    out = tmp_path / "out"
    result = run_eval(
        [DataSpec.parse(str(folder)), DataSpec.parse("synthetic")],
        out_dir=out,
        limit=6,
        progress=False,
        generator=lambda rs: [target_text(r, CONFIG) for r in rs],
    )
    assert result.per_benchmark["synthetic"]["n"] == 6
    assert result.per_benchmark["records"]["n"] == 6
    assert result.per_benchmark["records"]["score"] == pytest.approx(
        result.per_benchmark["synthetic"]["score"]
    )
    assert result.per_benchmark["synthetic"]["category"] == "other"
    assert "| other | Synthetic suite |" in (out / "results.md").read_text()
    with pytest.raises(ValueError, match="more than once"):
        run_eval(
            [DataSpec.parse("synthetic"), DataSpec.parse(f"synthetic={folder}")],
            out_dir=out,
            generator=lambda rs: [],
        )


def test_eval_command_writes_the_three_files(tmp_path, monkeypatch, capsys):
    from vlthinker.cli import main
    from vlthinker.evaluation import runner

    fake = FakeModel()
    seen = {}

    def load(model_path, prompt_config, backend, max_new_tokens, temperature, top_p):
        seen.update(model=model_path, backend=backend, max_new_tokens=max_new_tokens)
        return fake

    monkeypatch.setattr(runner, "load_generator", load)
    out = tmp_path / "cli"
    argv = [
        "eval",
        "--model",
        "some/model",
        "--data",
        f"ai2d={FIXTURES / 'ai2d'}",
        f"ocrbench={FIXTURES / 'ocrbench'}",
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--max-new-tokens",
        "16",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert seen == {"model": "some/model", "backend": "auto", "max_new_tokens": 16}
    assert {p.name for p in out.iterdir()} >= {"predictions.jsonl", "results.md", "results.json"}
    printed = capsys.readouterr().out
    assert "AI2D" in printed and "750 /1000" in printed
    with pytest.raises(SystemExit, match="unknown benchmark"):
        main(["eval", "--model", "m", "--data", "nosuch=/tmp", "--out", str(out)])
    with pytest.raises(SystemExit, match="no such file"):
        main(
            [
                "eval",
                "--model",
                "m",
                "--data",
                f"ai2d={tmp_path / 'missing'}",
                "--out",
                str(tmp_path / "o2"),
            ]
        )


# ---------------------------------------------------------------- plug-in registries


@pytest.fixture
def scratch_registries():
    """Eval rules, aggregates and benchmarks restored after the test (no leaking entries)."""
    with RULES.scoped(), AGGREGATES.scoped(), BENCHMARKS.scoped():
        yield


def test_a_new_rule_aggregate_and_benchmark_work_end_to_end(tmp_path, scratch_registries):
    from vlthinker.evaluation.adapters import OTHER, Benchmark, register
    from vlthinker.evaluation.adapters.base import make_record

    @RULES.register("starts_with")
    def starts_with(pred, record, details):
        return float(pred.lower().startswith(str(record.answer).lower()))

    @AGGREGATES.register("best")
    def best(rows):
        return max(float(row["score"]) for row in rows), len(rows)

    def load_tiny(path, *, image_dir, limit=None):
        records = [
            make_record(
                benchmark="tinybench",
                item_id=i,
                task="vqa",
                answer_type="ocr",
                question="Which colour?",
                answer=colour,
                images=[],
                rule="starts_with",
            )
            for i, colour in enumerate(["red", "blue"])
        ]
        return records if limit is None else records[:limit]

    register(
        Benchmark(
            name="tinybench",
            title="Tiny bench",
            category=OTHER,
            metric="prefix match",
            load=load_tiny,
            aggregate="best",
            aliases=("tiny-bench",),
        )
    )
    assert get_benchmark("Tiny_Bench").name == "tinybench"
    assert "tinybench" in [b.name for b in all_benchmarks()]
    result = run_eval(
        [DataSpec.parse(f"tiny-bench={tmp_path}")],
        out_dir=tmp_path / "out",
        generator=lambda records: ["<answer>Red, surely</answer>" for _ in records],
        progress=False,
    )
    assert [p.score for p in result.predictions] == [1.0, 0.0]  # the new rule scored them
    entry = result.per_benchmark["tinybench"]
    assert entry["aggregate"] == "best" and entry["score"] == 100.0  # max, not the mean 50


def test_unknown_rule_aggregate_and_benchmark_names_fail_listing_the_known_ones(
    scratch_registries,
):
    from vlthinker.evaluation.adapters import OTHER, Benchmark, register
    from vlthinker.evaluation.adapters.base import make_record
    from vlthinker.evaluation.table import aggregate
    from vlthinker.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown eval rule 'anlz'; known: anls, charxiv"):
        make_record(
            benchmark="x",
            item_id=0,
            task="ocr",
            answer_type="ocr",
            question="q",
            answer="a",
            images=[],
            rule="anlz",
        )
    with pytest.raises(UnknownNameError, match="unknown aggregate 'medain'; known: circular"):
        register(
            Benchmark(
                name="x", title="x", category=OTHER, metric="m", load=list, aggregate="medain"
            )
        )
    assert "x" not in BENCHMARKS
    with pytest.raises(UnknownNameError, match="known: circular, mean, subset_mean"):
        aggregate([{"score": 1.0}], "median")
    with pytest.raises(UnknownNameError, match="unknown benchmark 'imagenet'; known: ai2d"):
        DataSpec.parse("imagenet=/tmp")
