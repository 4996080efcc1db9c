"""Benchmark scores against the official scorers: worked cases of each official rule (the
reference file is named per test), the real release layouts, the judged protocol through a fake
OpenAI-compatible endpoint, and the per-benchmark scoring line of results.md. No model."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlthinker import rewards
from vlthinker.evaluation import get_benchmark, summarize
from vlthinker.evaluation.adapters import BenchmarkFormatError
from vlthinker.evaluation.adapters.base import make_record
from vlthinker.evaluation.judge import Judge, judge_item, judge_rows
from vlthinker.evaluation.scoring import (
    exact_number,
    rule_charxiv,
    rule_mathvista,
    rule_mmmu_open,
    rule_point_in_mask,
    rule_point_in_polygon,
    rule_yes_no,
    score_prediction,
)
from vlthinker.evaluation.table import markdown

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"


def _image(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def _record(benchmark: str, answer: object, rule: str | None = None, **details: object):
    return make_record(
        benchmark=benchmark,
        item_id="x",
        task="math",
        answer_type="math",
        question="q",
        answer=answer,
        images=[],
        rule=rule,
        **details,
    )


def _details(record) -> dict:
    return record.meta["eval"]


# ---------------------------------------------------------------- MathVista
# lupantech/MathVista evaluation/calculate_score.py (normalize_extracted_answer, safe_equal)


def _mathvista_github(root: Path, items: dict[str, dict]) -> Path:
    """The GitHub release folder ``data/``: testmini.json keyed by pid, images/, and the
    annotation / query / source files that hold no questions."""
    data = root / "data"
    for pid in items:
        _image(data / "images" / f"{pid}.jpg")
    (data / "testmini.json").write_text(json.dumps(items))
    (data / "annot_testmini.json").write_text(json.dumps({"1": {"caption": "a figure"}}))
    (data / "query.json").write_text(json.dumps({"1": "Hint: ..."}))
    (data / "source.json").write_text(json.dumps({"1": {"source": "IQTest"}}))
    return data


def _mathvista_item(pid: str, **fields: object) -> dict:
    base = {
        "question": "Which one?",
        "image": f"images/{pid}.jpg",
        "choices": None,
        "unit": None,
        "precision": None,
        "question_type": "free_form",
        "answer_type": "integer",
        "pid": pid,
        "metadata": {"split": "testmini"},
    }
    return {**base, **fields}


def test_mathvista_github_folder_loads_and_keys_choices_by_option_text(tmp_path):
    items = {
        # a numeric option text is the option, not a 0-based index: "3" is C, not D
        "1": _mathvista_item(
            "1",
            question_type="multi_choice",
            answer_type="text",
            choices=["1", "2", "3", "6"],
            answer="3",
        ),
        # duplicate option texts (as in one real testmini item): either letter is right
        "2": _mathvista_item(
            "2",
            question_type="multi_choice",
            answer_type="text",
            choices=["2", "2", "4", "5"],
            answer="2",
        ),
        "3": _mathvista_item("3", answer="[2014, 2016]", answer_type="list"),
        "4": _mathvista_item("4", answer="2"),
        "5": _mathvista_item("5", answer="1.5", answer_type="float", precision=1),
    }
    records = get_benchmark("mathvista").load(
        _mathvista_github(tmp_path, items), image_dir=tmp_path / "img"
    )
    by_id = {r.id: r for r in records}
    assert sorted(by_id) == ["1", "2", "3", "4", "5"]  # annotation files are not questions
    assert by_id["1"].answer == "C"

    def score(item: str, answer: str) -> float:
        record = by_id[item]
        return rule_mathvista(answer, record, _details(record))

    assert score("1", "C") == 1.0 and score("1", "D") == 0.0
    assert score("1", "(C) 3") == 1.0  # a letter in parentheses is the letter
    assert score("2", "A") == score("2", "B") == 1.0 and score("2", "C") == 0.0
    assert score("3", "[2014, 2016]") == 1.0
    assert score("3", "[2014,2016]") == 0.0  # lists compare as exact strings officially
    assert score("4", "2") == 1.0 and score("4", "2.0") == 1.0
    assert score("4", "2.7") == 1.0  # str(int(float(x))) truncates, as the official rule does
    assert score("4", "3") == 0.0
    assert score("5", "1.52") == 1.0 and score("5", "1.46") == 1.0  # round(x, 1) == 1.5
    assert score("5", "1.6") == 0.0


def test_mathvista_hf_root_reads_the_parquet_not_the_annotations(tmp_path):
    root = tmp_path / "MathVista"
    shutil.copytree(FIXTURES / "mathvista" / "data", root / "data")
    (root / "annot_testmini.json").write_text(json.dumps({"1": {"caption": "x"}}))
    (root / "source.json").write_text(json.dumps({"1": "x"}))
    (root / "images.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    records = get_benchmark("mathvista").load(root, image_dir=tmp_path / "img")
    assert sorted(r.id for r in records) == ["1", "2", "3", "4"]


# ---------------------------------------------------------------- MathVerse


def test_mathverse_folder_with_json_and_parquet_reads_each_item_once(tmp_path):
    root = tmp_path / "MathVerse"
    root.mkdir()
    shutil.copy(FIXTURES / "mathverse" / "testmini.parquet", root / "testmini.parquet")
    rows = [
        {
            "sample_index": str(i),
            "question": "q",
            "image": f"images/{i}.png",
            "answer": "A",
            "question_type": "multi-choice",
            "problem_version": "Vision Only",
        }
        for i in (1, 2, 3)
    ]
    (root / "testmini.json").write_text(json.dumps(rows))
    records = get_benchmark("mathverse").load(root, image_dir=tmp_path / "img")
    ids = [r.id for r in records]
    assert sorted(ids) == ["1", "2", "3"] and len(ids) == len(set(ids))


def test_mathverse_unextracted_images_zip_says_to_extract_it(tmp_path):
    root = tmp_path / "MathVerse"
    root.mkdir()
    (root / "testmini.json").write_text(
        json.dumps(
            [
                {
                    "sample_index": "1",
                    "question": "q",
                    "image": "images/1.png",
                    "answer": "A",
                    "question_type": "multi-choice",
                }
            ]
        )
    )
    (root / "images.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(BenchmarkFormatError, match=r"images\.zip.*extract|extract.*images\.zip"):
        get_benchmark("mathverse").load(root, image_dir=tmp_path / "img")


# ---------------------------------------------------------------- multiple choice letters


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("C", 0.0), ("D", 1.0), ("(D)", 1.0), ("D. C", 1.0), ("C. D", 0.0), ("Answer: A", 0.0)],
)
def test_a_letter_answer_is_a_letter_even_when_options_are_letters(prediction, expected):
    # MMMU-Benchmark/MMMU eval/eval_utils.py reads letters before option texts; options that
    # are themselves letters must not let a wrong letter match the key's text
    options = ["A. B", "B. A", "C. D", "D. C"]
    assert rewards.multiple_choice(prediction, "D", options) == expected


def test_ai2d_parquet_keys_are_indices_and_tsv_keys_are_letters(tmp_path):
    records = get_benchmark("ai2d").load(FIXTURES / "ai2d", image_dir=tmp_path)
    assert all(r.answer in "ABCD" for r in records)


# ---------------------------------------------------------------- ANLS, relaxed accuracy


def test_anls_keeps_a_score_at_the_threshold():
    # open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py: 0 only when 1 - NL < 0.5
    assert rewards.anls("13", ["12"]) == 0.5
    assert rewards.anls("1990", ["1991"]) == pytest.approx(0.75)
    assert rewards.anls("ab", ["abcde"]) == 0.0  # 1 - 3/5 = 0.4
    record = _record("docvqa", "12", rule="anls", answers=["12", "twelve"])
    response = "<think>t</think><answer>13</answer>"
    assert score_prediction(record, response)["score"] == 0.5


@pytest.mark.parametrize(
    ("prediction", "answer", "expected"),
    [
        ("Under 30 mins", "Over 30 mins", 0.0),  # text around a number is text
        ("30", "30 mins", 0.0),
        ("46", "45", 1.0),  # 2.2 % off
        ("47.5", "45", 0.0),  # 5.6 % off
        ("12%", "0.12", 1.0),  # a trailing % divides by 100
        ("12", "12%", 0.0),
        ("1,000", "1000", 0.0),  # the official float() reads no thousands separators
        ("0.0", "0", 0.0),  # a 0 key falls back to exact text
        ("Yes", "yes", 1.0),
        (" Brazil ", "brazil", 1.0),
    ],
)
def test_chartqa_relaxed_accuracy_is_the_official_rule(prediction, answer, expected):
    # EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/chartqa/utils.py (relaxed_correctness)
    record = _record("chartqa", answer, rule="relaxed", answers=[answer])
    got = score_prediction(record, f"<think>t</think><answer>{prediction}</answer>")["score"]
    assert got == expected


def test_training_numeric_verifiers_read_only_whole_numbers():
    assert rewards.numeric("below 10", "above 10") == 0.0
    assert rewards.numeric("10 apples", "10") == 0.0
    assert rewards.relaxed_accuracy("Under 30 mins", "Over 30 mins") == 0.0
    assert rewards.counting("3 or 4", "3") == 0.0
    assert rewards.numeric("$1,234.50", "1234.5") == 1.0  # deliberate: currency, separators
    assert rewards.relaxed_accuracy("1,000", "1000") == 1.0  # deliberate training reading
    assert rewards.parse_number("below 10") is None
    assert rewards.parse_number("12 %") == (12.0, True)


@pytest.mark.parametrize(
    ("prediction", "answer"),
    [("2,829.38", "2829.38"), ("$5", "5"), ("€12.5", "12.5"), ("1,000%", "10")],
)
def test_benchmark_numbers_are_read_as_the_official_float(prediction, answer):
    # lmms-eval chartqa/utils.py and VLMEvalKit vqa_eval.py relaxed_correctness: float() fails on
    # separators and currency signs, the exact-text fallback differs: 0, for the benchmark score
    # and for the verifier accuracy of a benchmark item alike
    record = make_record(
        benchmark="chartqa",
        item_id="x",
        task="chart",
        question="q",
        answer_type="numeric",
        answer=answer,
        images=[],
        rule="relaxed",
        answers=[answer],
    )
    scored = score_prediction(record, f"<think>t</think><answer>{prediction}</answer>")
    assert scored["numbers"] == "official"
    assert scored["score"] == 0.0
    assert scored["accuracy"] == 0.0
    # the training rewards keep their declared lenient reading
    assert rewards.DEFAULT_NUMBERS == "lenient"
    assert rewards.numeric(prediction, answer) == 1.0


def test_each_number_verifier_has_an_official_reading():
    assert rewards.relaxed_accuracy("2,829.38", "2829.38") == 1.0
    assert rewards.relaxed_accuracy("2,829.38", "2829.38", numbers="official") == 0.0
    assert rewards.relaxed_accuracy("2829.3", "2829.38", numbers="official") == 1.0
    assert rewards.relaxed_accuracy("1_000", "1000", numbers="official") == 1.0  # float() does
    assert rewards.numeric("$1,234.50", "1234.5", numbers="official") == 0.0
    assert rewards.numeric("1234.50", "1234.5", numbers="official") == 1.0
    # VSI-Bench's to_float: mean relative accuracy of a currency-signed number is 0
    assert rewards.mean_relative_accuracy("$100", "100") == 1.0
    assert rewards.mean_relative_accuracy("$100", "100", numbers="official") == 0.0
    assert rewards.mean_relative_accuracy("1,000", "1000", numbers="official") == 0.0
    assert rewards.mean_relative_accuracy("100", "100", numbers="official") == 1.0
    assert rewards.counting("1,000", "1000", numbers="official") == 0.0
    meta = {"metric": "mra", "numbers": "official"}
    assert rewards.score("<answer>$100</answer>", "100", "chart", **meta)["accuracy"] == 0.0
    with pytest.raises(ValueError, match="number reading"):
        rewards.score("<answer>1</answer>", "1", "numeric", numbers="loose")


def test_the_results_line_says_which_number_reading_ran(tmp_path):
    from vlthinker.data import Record
    from vlthinker.evaluation.runner import Item, make_prediction
    from vlthinker.evaluation.table import scoring_lines

    bench = make_record(
        benchmark="chartqa",
        item_id="1",
        task="chart",
        question="q",
        answer_type="numeric",
        answer="5",
        images=[],
        rule="relaxed",
        answers=["5"],
    )
    plain = Record(task="chart", answer_type="numeric", question="q", answer="5", id="2")
    rows = [
        make_prediction(Item("chartqa", bench, "1"), "<answer>$5</answer>", None).to_json(),
        make_prediction(Item("records", plain, "2"), "<answer>$5</answer>", None).to_json(),
    ]
    assert [r["numbers"] for r in rows] == ["official", "lenient"]
    assert [r["score"] for r in rows] == [0.0, 1.0]
    lines = "\n".join(scoring_lines(summarize(rows)["benchmarks"]))
    chartqa = next(line for line in lines.splitlines() if line.startswith("- ChartQA"))
    records = next(line for line in lines.splitlines() if "Record-format" in line)
    assert "official scorer's float()" in chartqa
    assert "leniently" in records


# ---------------------------------------------------------------- CharXiv


@pytest.mark.parametrize(
    ("prediction", "answer", "expected"),
    [
        ("0.012", "0.01", 0.0),  # the rubric's own 0 example
        ("1.5e3", "1500", 1.0),  # the rubric's own 1 example
        ("10^{-2}", "0.01", 1.0),
        ("9.4 \\times 10^{1}", "94", 1.0),
        ("$9.4 \\times 10^{1}$", "94", 1.0),
        ("1.00", "1.0", 1.0),
        ("94.1", "94", 0.0),
        ("(b)", "b", 1.0),
        ("Model B, Model A", "Model A, Model B", 1.0),  # terms in any order
        ("Model A", "Model A, Model B", 0.0),
    ],
)
def test_charxiv_exact_values_in_any_notation(prediction, answer, expected):
    # princeton-nlp/CharXiv constants.py, REASONING_GRADING_INST
    record = _record("charxiv", answer, rule="charxiv")
    assert rule_charxiv(prediction, record, _details(record)) == expected


def test_exact_number_notations():
    assert exact_number("1,500") == exact_number("1.5e3") == exact_number("1.5 × 10^3")
    assert exact_number("below 10") is None


# ---------------------------------------------------------------- MMMU


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("acid", ["C"], 0.0),  # one-character references are padded with spaces
        ("C", ["C"], 1.0),
        ("The answer is c.", ["C"], 1.0),
        ("so the result is 3.50", ["3.5"], 1.0),
        ("3.499", ["3.5"], 1.0),  # 2 decimals
        ("3.6", ["3.5", "7/2"], 0.0),
        ("sodium chloride", ["chloride"], 1.0),
    ],
)
def test_mmmu_open_rule(prediction, answers, expected):
    # MMMU-Benchmark/MMMU eval/eval_utils.py (parse_open_response, eval_open)
    record = _record("mmmu", answers[0], rule="mmmu_open", answers=answers)
    assert rule_mmmu_open(prediction, record, _details(record)) == expected


# ---------------------------------------------------------------- RefSpatial, RoboSpatial


def _mask(tmp_path: Path) -> str:
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:, 5:] = 255  # right half
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    return str(path)


def _mask_file(tmp_path: Path, array: np.ndarray, name: str) -> str:
    path = tmp_path / f"{name}.png"
    Image.fromarray(array).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # clip to the image, then round: 4.6 is pixel 5 (int() gave 4, outside)
        ("[(0.46, 0.5)]", 1.0),
        ("[(0.449, 0.5)]", 0.0),
        ("[(0.75, 0.5), (1.01, 0.5)]", 1.0),  # <= 1.5 is normalised; 10.1 clips to pixel 9
        ("[(7, 5), (3, 5)]", 0.5),  # text pairs above 1.5 are pixels, not 0-1000
        ("[(750, 500)]", 1.0),  # pixel 750 clips to the right edge
        ('[{"point_2d": [750, 500], "label": "a"}]', 1.0),  # JSON: 0-1000 scale, pixel 8
        ('[{"point_2d": [300, 500]}]', 0.0),
        ('{"point": [0.9, 0.1]}', 1.0),
        ('```json\n[{"point_2d": [0.9, 0.1]}]\n```', 1.0),
        ("[{'point_2d': (0.2, 0.1)}, {'point_2d': [0.8, 0.1]}]", 0.5),  # a Python literal
        ('[{"point_2d": [1200, 5]}]', 1.0),  # above 1000: pixels, clipped
        ("(0.4, 0.0, 0.6, 1.0)", 0.5),  # a box is every pixel it covers: columns 4 and 5
        ("(0.4, 0.0, 0.6, 1.0) and (0.9, 0.9)", 11 / 21),
        ("[0.9, 0.1]", 0.0),  # square brackets are not read
        ("( 0.9, 0.1)", 0.0),  # nor a space after the bracket
        ("no points", 0.0),
    ],
)
def test_refspatial_follows_vlmevalkit_point2d_parser(tmp_path, answer, expected):
    # open-compass/VLMEvalKit vlmeval/dataset/refspatialbench.py (evaluate) with Point2DParser,
    # vlmeval/dataset/utils/spatial_bench/tools/utils.py, commit e8e78f05f308
    record = _record("refspatial", None, rule="point_in_mask", mask=_mask(tmp_path))
    assert rule_point_in_mask(answer, record, _details(record)) == pytest.approx(expected)


def test_refspatial_clips_points_and_boxes_onto_the_edge(tmp_path):
    edge = np.zeros((10, 10), dtype=np.uint8)
    edge[:, 0] = 255  # only the left column is inside
    record = _record("refspatial", None, rule="point_in_mask", mask=_mask_file(tmp_path, edge, "e"))
    details = _details(record)
    assert rule_point_in_mask("(-0.2, 0.5)", record, details) == 1.0  # clipped to column 0
    # pixel columns -2, -1, 0, 1 clip to 0, 0, 0, 1: three of four inside
    assert rule_point_in_mask("(-2, 0, 2, 10)", record, details) == pytest.approx(0.75)
    # a box too large to enumerate is counted, not built: 10 of its 10^10 pixels are inside
    started = time.perf_counter()
    assert rule_point_in_mask("(0, 0, 1000000000, 10)", record, details) == pytest.approx(1e-9)
    assert time.perf_counter() - started < 1.0
    assert (
        rule_point_in_mask('[{"point_2d": ["nan", 0.5]}, {"point_2d": [0, 0.5]}]', record, details)
        == 0.5
    )  # NaN lands nowhere


def test_refspatial_reads_the_masks_first_channel(tmp_path):
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[:, :, 1] = 255  # green everywhere, red nowhere: outside by the first channel
    record = _record("refspatial", None, rule="point_in_mask", mask=_mask_file(tmp_path, rgb, "g"))
    assert rule_point_in_mask("[(0.5, 0.5)]", record, _details(record)) == 0.0


def test_refspatial_results_line_names_the_file_and_commit():
    from vlthinker.evaluation.scoring import REFSPATIAL_COMMIT

    line = get_benchmark("refspatial").scored_by()
    assert "vlmeval/dataset/utils/spatial_bench/tools/utils.py" in line
    assert "Point2DParser" in line and REFSPATIAL_COMMIT[:12] in line


def test_robospatial_yes_no_and_point_follow_the_official_script():
    # chanhee-luke/RoboSpatial-Eval evaluation.py (evaluate_answer)
    yes, no = _record("robospatial", "yes"), _record("robospatial", "no")
    assert rule_yes_no("Yes, it fits.", yes, {}) == 1.0
    assert rule_yes_no("It does: yes", yes, {}) == 0.0
    assert rule_yes_no("No.", no, {}) == 1.0
    square = {"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]}
    assert rule_point_in_polygon("[(0.3, 0.3), (0.9, 0.9)]", no, square) == 1.0
    assert rule_point_in_polygon("[0.3, 0.3]", no, square) == 1.0
    assert rule_point_in_polygon("(300, 300)", no, square) == 0.0  # coordinates as given


def test_robospatial_overall_counts_every_item_once():
    rows = [
        {"benchmark": "robospatial", "subset": "context", "score": 1.0},
        {"benchmark": "robospatial", "subset": "configuration", "score": 1.0},
        {"benchmark": "robospatial", "subset": "configuration", "score": 0.0},
        {"benchmark": "robospatial", "subset": "configuration", "score": 0.0},
    ]
    entry = summarize(rows)["benchmarks"][0]
    assert entry["score"] == pytest.approx(50.0)  # 2 / 4, not (1 + 1/3) / 2


# ---------------------------------------------------------------- OCRBench


def test_ocrbench_release_json_loads_with_handwritten_maths(tmp_path):
    root = tmp_path / "OCRBench"
    _image(root / "OCRBench_Images" / "IIIT5K" / "a.jpg")
    _image(root / "OCRBench_Images" / "HME100k" / "b.jpg")
    items = [
        {
            "dataset_name": "IIIT5K",
            "id": 0,
            "image_path": "IIIT5K/a.jpg",
            "question": "what is written in the image?",
            "answers": ["CENTRE"],
            "type": "Regular Text Recognition",
        },
        {
            "dataset_name": "HME100k",
            "id": 1,
            "image_path": "HME100k/b.jpg",
            "question": "Please write out the expression of the formula in the image using LaTeX "
            "format.",
            "answers": "x ^ { 2 }",
            "type": "Handwritten Mathematical Expression Recognition",
        },
    ]
    (root / "OCRBench.json").write_text(json.dumps(items))
    records = get_benchmark("ocrbench").load(root, image_dir=tmp_path / "img")
    assert [r.id for r in records] == ["0", "1"]
    text, maths = records
    assert score_prediction(text, "<answer>The word is centre.</answer>")["score"] == 1.0
    assert score_prediction(maths, "<answer>x^{2}</answer>")["score"] == 1.0
    assert score_prediction(maths, "<answer>x^{3}</answer>")["score"] == 0.0


# ---------------------------------------------------------------- judged benchmarks, table


def test_mathvision_is_marked_judged_and_each_benchmark_names_its_rule():
    for name in ("mathvista", "mathverse", "mathvision", "charxiv"):
        assert get_benchmark(name).judged
        assert "comparable: no" in get_benchmark(name).scored_by()
    assert "comparable: yes" in get_benchmark("chartqa").scored_by()
    assert "lmms-eval" in get_benchmark("chartqa").scored_by()
    assert "calculate_score.py" in get_benchmark("mathvista").scored_by()
    rows = [{"benchmark": "chartqa", "task": "chart", "score": 1.0, "accuracy": 1.0}]
    text = markdown(summarize(rows))
    assert "## How each number was scored" in text
    assert "ChartQA: scored by `relaxed` from EvolvingLMMs-Lab/lmms-eval" in text


class FakeEndpoint:
    """An OpenAI-compatible transport answering from a list; records what it was sent."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []

    def __call__(self, url, body, headers, timeout):
        assert url.endswith("/chat/completions")
        self.requests.append({"url": url, "body": json.loads(body), "headers": dict(headers)})
        reply = self.replies.pop(0)
        return json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]})


def _mathvista_choice_record():
    return make_record(
        benchmark="mathvista",
        item_id="7",
        task="math",
        answer_type="multiple_choice",
        question="Which?",
        answer="C",
        images=[],
        options=["A. 1", "B. 2", "C. 3", "D. 6"],
        rule="mathvista",
        kind="multi_choice",
        choices=["1", "2", "3", "6"],
        answer_text="3",
    )


def test_judge_extracts_mathvista_answers_and_scores_them_by_the_official_rule():
    endpoint = FakeEndpoint(["C", "Extracted answer: 6"])
    judge = Judge("http://judge/v1", "judge-model", api_key="k", transport=endpoint)
    record = _mathvista_choice_record()
    assert judge_item(judge, "mathvista", record, "long reasoning ... so (C)")["score"] == 1.0
    assert judge_item(judge, "mathvista", record, "it must be six")["score"] == 0.0
    sent = endpoint.requests[0]
    assert sent["body"]["model"] == "judge-model" and sent["body"]["temperature"] == 0.0
    assert sent["headers"]["Authorization"] == "Bearer k"
    assert "so (C)" in sent["body"]["messages"][0]["content"]


def test_judge_charxiv_grading_and_mathverse_two_steps():
    charxiv = make_record(
        benchmark="charxiv",
        item_id="1",
        task="chart",
        answer_type="numeric",
        question="Value?",
        answer="0.01",
        images=[],
        rule="charxiv",
        subset=3,
    )
    endpoint = FakeEndpoint(['{"extracted_answer": "0.012", "score": 0}', "x", "1"])
    judge = Judge("http://judge/v1", "m", transport=endpoint)
    assert judge_item(judge, "charxiv", charxiv, "about 0.012") == {
        "extracted": "0.012",
        "score": 0.0,
    }
    mathverse = make_record(
        benchmark="mathverse",
        item_id="2",
        task="math",
        answer_type="math",
        question="AB?",
        answer="5",
        images=[],
    )
    assert judge_item(judge, "mathverse", mathverse, "AB is x") == {"extracted": "x", "score": 1.0}
    assert len(endpoint.requests) == 3


def test_judged_rows_are_cached_per_response(tmp_path):
    record = _mathvista_choice_record()
    rows = [{"benchmark": "mathvista", "id": "7", "response": "(C)"}]
    endpoint = FakeEndpoint(["C"])
    judge = Judge("http://judge/v1", "m", transport=endpoint)
    first = judge_rows(judge, rows, {("mathvista", "7"): record}, tmp_path)
    again = judge_rows(judge, rows, {("mathvista", "7"): record}, tmp_path)
    assert first[0]["score"] == again[0]["score"] == 1.0
    assert len(endpoint.requests) == 1  # the second pass read judged.jsonl


def test_judge_over_plain_http_to_a_local_server():
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            seen.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            payload = json.dumps({"choices": [{"message": {"content": "B"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        judge = Judge(f"http://127.0.0.1:{server.server_port}/v1", "local", timeout_s=10)
        assert judge.complete("hello") == "B"
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["body"]["messages"] == [{"role": "user", "content": "hello"}]


def test_judged_numbers_appear_beside_the_judge_free_ones():
    rows = [{"benchmark": "mathvista", "task": "math", "score": 0.0, "accuracy": 0.0}]
    summary = summarize(rows)
    summary["benchmarks"][0]["judge"] = {
        "score": 100.0,
        "n": 1,
        "model": "judge-model",
        "endpoint": "http://judge/v1",
    }
    text = markdown(summary)
    assert "MathVista (testmini) (judged: judge-model)" in text
    assert "judged): answers read by judge-model" in text and "comparable: yes" in text


def test_judge_run_adds_judged_numbers_to_a_finished_run(tmp_path):
    from vlthinker.evaluation import DataSpec, run_eval
    from vlthinker.evaluation.judge import judge_run

    specs = [DataSpec.parse(f"mathvista={FIXTURES / 'mathvista'}")]
    out = tmp_path / "out"
    result = run_eval(
        specs,
        out_dir=out,
        generator=lambda records: ["<think>t</think><answer>no idea</answer>"] * len(records),
        progress=False,
        model_path="fake",
    )
    assert result.per_benchmark["mathvista"]["score"] == 0.0
    # the judge's extractions: right for items 1-3 (B, 12, 1.5), wrong for item 4 (key 7)
    endpoint = FakeEndpoint(["B", "12", "1.5", "8"])
    judge = Judge("http://judge/v1", "judge-model", transport=endpoint)
    summary = judge_run(judge, specs, out, result.summary)
    judged = summary["benchmarks"][0]["judge"]
    assert judged["n"] == 4 and judged["score"] == pytest.approx(75.0)
    assert "(judged: judge-model)" in (out / "results.md").read_text()
    assert json.loads((out / "results.json").read_text())["benchmarks"][0]["judge"]["n"] == 4
