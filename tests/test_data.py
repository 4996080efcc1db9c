"""Data layer: readers of every format, precise errors for bad records, prompts, synthetic suite."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlthinker.data import (
    LoadReport,
    PromptConfig,
    Record,
    RecordError,
    build_messages,
    load_records,
    synthetic,
    target_text,
    write_records,
)
from vlthinker.data.cli import check_records
from vlthinker.rewards import score

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference_records_sample.json"
FIXTURE = Path(__file__).parent / "fixtures" / "reference_records_sample.json"


def _png(color=(200, 10, 10), size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def reference_dir(tmp_path: Path) -> Path:
    """The reference sample with small generated images standing in for the missing ones."""
    source = SAMPLE if SAMPLE.exists() else FIXTURE
    shutil.copy(source, tmp_path / "train.json")
    for raw in json.loads(source.read_text()):
        for image in raw["images"]:
            path = tmp_path / image
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png())
    return tmp_path


def test_fixture_matches_the_shared_sample():
    if SAMPLE.exists():
        assert json.loads(SAMPLE.read_text()) == json.loads(FIXTURE.read_text())


def test_reference_format_maps_tasks_answer_types_and_answers(reference_dir: Path):
    records = load_records(reference_dir / "train.json")
    assert len(records) == 7
    by_source = {r.source: r for r in records}
    grounding = by_source["RefCOCOg"]
    assert (grounding.task, grounding.answer_type) == ("grounding", "grounding")
    assert grounding.answer == [577.0, 232.0, 899.0, 786.0]
    assert grounding.meta["box_format"] == "qwen1000"
    assert "<image>" not in grounding.question
    mc = by_source["A-OKVQA"]
    assert (mc.task, mc.answer_type, mc.answer) == ("vqa", "multiple_choice", "C")
    assert mc.options[3] == "D. bedding"
    counting = by_source["Super-CLEVR"]
    assert (counting.task, counting.answer_type, counting.answer) == ("spatial", "numeric", "3")
    tasks = {r.task for r in records}
    assert tasks == {"grounding", "spatial", "vqa", "math", "chart", "ocr"}
    regression = next(r for r in records if r.meta.get("metric") == "mra")
    assert regression.answer_type == "chart"
    ocr = next(r for r in records if r.task == "ocr")
    assert ocr.meta["metric"] == "wer"
    image = records[0].load_images()[0]
    assert image.mode == "RGB" and image.size == (8, 8)


def test_plain_jsonl_json_parquet_and_saved_datasets_read_the_same(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    (tmp_path / "img.png").write_bytes(_png())
    rows = [
        {
            "id": "a",
            "task": "ocr",
            "answer_type": "ocr",
            "question": "<image> Read it.",
            "answer": "HELLO",
            "images": ["img.png"],
        },
        {
            "id": "b",
            "task": "chart",
            "answer_type": "chart",
            "question": "Value?",
            "answer": "3.5",
            "images": ["img.png"],
            "meta": {"metric": "relaxed"},
        },
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "d.json").write_text(json.dumps({"data": rows}))
    table_rows = [dict(r, images=[_png()], meta=json.dumps(r.get("meta", {}))) for r in rows]
    pq.write_table(pa.Table.from_pylist(table_rows), tmp_path / "d.parquet")
    Dataset.from_list(table_rows).save_to_disk(str(tmp_path / "saved"))
    loaded = [load_records(tmp_path / name) for name in ("d.jsonl", "d.json", "d.parquet", "saved")]
    for records in loaded:
        assert [(r.id, r.task, r.answer, r.question) for r in records] == [
            ("a", "ocr", "HELLO", "Read it."),
            ("b", "chart", "3.5", "Value?"),
        ]
        assert records[1].meta == {"metric": "relaxed"}
        assert records[0].load_images()[0].size == (8, 8)


def test_base64_and_data_uri_images(tmp_path: Path):
    payload = base64.b64encode(_png((0, 0, 255), (40, 40))).decode()
    rows = [
        {
            "task": "vqa",
            "answer_type": "counting",
            "question": "How many?",
            "answer": "2",
            "images": [payload],
        },
        {
            "task": "vqa",
            "answer_type": "counting",
            "question": "How many?",
            "answer": "2",
            "images": ["data:image/png;base64," + payload],
        },
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    for record in load_records(tmp_path / "d.jsonl"):
        assert record.load_images()[0].getpixel((3, 3)) == (0, 0, 255)


BAD_RECORDS = [
    (
        {"task": "ocr", "answer_type": "ocr", "question": "q", "images": []},
        "answer",
        "missing answer",
    ),
    (
        {"task": "ocr", "answer_type": "ocr", "question": "q", "answer": "<answer></answer>"},
        "answer",
        "empty",
    ),
    (
        {"task": "ocr", "answer_type": "poetry", "question": "q", "answer": "x"},
        "answer_type",
        "unknown answer type",
    ),
    (
        {
            "task": "ocr",
            "answer_type": "ocr",
            "question": "q",
            "answer": "x",
            "images": ["nope.png"],
        },
        "images[0]",
        "not found",
    ),
    (
        {"task": "ocr", "answer_type": "ocr", "question": "q", "answer": "x", "options": "A"},
        "options",
        "list of strings",
    ),
    ({"task": 3, "answer_type": "ocr", "question": "q", "answer": "x"}, "task", "expected text"),
    (
        {"task": "g", "answer_type": "grounding", "question": "q", "answer": "[1, 2, 3]"},
        "answer",
        "4 numbers",
    ),
    (
        {"problem": "q", "problem_type": "free-form", "task_type": "x", "answer": "y"},
        "problem_type",
        "unknown answer type",
    ),
]


@pytest.mark.parametrize(("raw", "field", "reason"), BAD_RECORDS)
def test_each_bad_record_names_file_record_and_field(tmp_path: Path, raw, field, reason):
    good = {"task": "ocr", "answer_type": "ocr", "question": "q", "answer": "x"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(raw) + "\n")
    with pytest.raises(RecordError) as caught:
        load_records(path)
    error = caught.value
    assert error.origin == f"{path}#1" and error.field == field
    assert reason in str(error) and str(path) in str(error)
    report = LoadReport()
    records = load_records(path, on_bad_record="skip", report=report)
    assert len(records) == 1 and report.skipped == 1 and report.problems[0].field == field


def test_invalid_json_line_and_corrupt_image_are_reported(tmp_path: Path, caplog):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    path = tmp_path / "d.jsonl"
    good = {"task": "ocr", "answer_type": "ocr", "question": "q", "answer": "x"}
    path.write_text(
        json.dumps(dict(good, images=["broken.png"])) + "\n{not json\n" + json.dumps(good) + "\n"
    )
    # the image is checked at load time (no pixels decoded), so record 0 is the first problem
    with pytest.raises(RecordError, match=r"d.jsonl#0: field 'images\[0\]': corrupt"):
        load_records(path)
    with caplog.at_level("WARNING"):
        records = load_records(path, on_bad_record="skip")
    assert "skipped 2 bad record" in caplog.text and len(records) == 1
    unchecked = load_records(path, on_bad_record="skip", check_images=False)
    with pytest.raises(RecordError, match=r"d.jsonl#0: field 'images\[0\]': corrupt"):
        unchecked[0].load_images()
    good_records, problems = check_records(path)
    assert len(good_records) == 1 and len(problems) == 2
    assert {p.field for p in problems} == {"<line>", "images[0]"}


def test_prompts_put_images_first_and_follow_the_task_style():
    record = Record(
        id="1",
        task="spatial",
        answer_type="multiple_choice",
        question="Where?",
        answer="B",
        images=[_png(), _png()],
        options=["left of", "right of"],
    )
    messages = build_messages(record, PromptConfig(think_tag="thinking"))
    content = messages[0]["content"]
    assert [part["type"] for part in content] == ["image", "image", "text"]
    assert "A. left of\nB. right of" in content[-1]["text"]
    assert "<thinking> </thinking>" in content[-1]["text"]
    direct = PromptConfig(reasoning={"spatial": False})
    assert "<think>" not in build_messages(record, direct)[0]["content"][-1]["text"]
    record.solution = "It is on the right."
    assert target_text(record, PromptConfig(think_tag="thinking")) == (
        "<thinking>It is on the right.</thinking><answer>B</answer>"
    )


def test_synthetic_items_are_deterministic_and_prefix_stable():
    first = synthetic.generate(12, seed=3)
    again = synthetic.generate(24, seed=3)[:12]
    assert [(r.question, r.answer, r.images) for r in first] == [
        (r.question, r.answer, r.images) for r in again
    ]
    other = synthetic.generate(12, seed=4)
    assert [r.images for r in first] != [r.images for r in other]
    assert [r.task for r in first[:6]] == ["math", "chart", "ocr", "grounding", "spatial", "vqa"]


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_every_synthetic_reference_answer_scores_full_marks(difficulty: float):
    """The reference solution of every item passes its own verifier, in both prompt styles."""
    for record in synthetic.generate(60, seed=11, difficulty=difficulty, image_size=96):
        assert record.load_images()[0].size == (96, 96)
        for config in (PromptConfig(), PromptConfig(think_tag="thinking")):
            meta = dict(
                record.meta,
                reasoning=config.is_reasoning(record.task),
                think_tag=config.think_tag,
                options=record.options,
            )
            result = score(target_text(record, config), record.answer, record.answer_type, **meta)
            assert result["accuracy"] == 1.0 and result["format"] == 1.0, (record, result)
        if config.is_reasoning(record.task):
            assert record.solution


def test_synthetic_reward_shapes_differ_by_task():
    """Near misses earn partial credit on ocr, grounding and counting, none on math and spatial."""
    items = {r.task: r for r in synthetic.generate(6, seed=0)}

    def near(task: str, response: str) -> float:
        r = items[task]
        meta = dict(r.meta, reasoning=False, options=r.options)
        return score(response, r.answer, r.answer_type, **meta)["accuracy"]

    ocr_word = items["ocr"].answer
    assert 0 < near("ocr", f"<answer>{ocr_word[:-1]}?</answer>") < 1
    box = items["grounding"].answer
    shifted = [box[0] + 20, box[1], box[2] + 20, box[3]]
    assert 0 < near("grounding", "<answer>" + json.dumps({"boxes": shifted}) + "</answer>") < 1
    math_answer = int(items["math"].answer)
    assert near("math", f"<answer>{math_answer + 1}</answer>") == 0


def test_synth_written_records_read_back(tmp_path: Path):
    records = synthetic.generate(12, seed=2)
    write_records(records, tmp_path)
    back = load_records(tmp_path)
    keys = (
        "id",
        "task",
        "answer_type",
        "question",
        "answer",
        "options",
        "meta",
        "solution",
        "source",
    )
    assert [[getattr(r, k) for k in keys] for r in back] == [
        [getattr(r, k) for k in keys] for r in records
    ]
    for original, loaded in zip(records, back, strict=True):
        assert list(original.load_images()[0].getdata()) == list(loaded.load_images()[0].getdata())
    raw = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[3])
    assert raw["task_type"] == "spatial_grounding" and raw["answer"].startswith('<answer>{"boxes"')


def test_data_cli_synth_and_check(tmp_path: Path, capsys):
    from vlthinker.cli import main

    assert (
        main(["data", "synth", "--out", str(tmp_path), "--n", "12", "--tasks", "ocr", "math"]) == 0
    )
    assert main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 usable record(s), 0 problem(s)" in out
    assert "ocr" in out and "math" in out
    (
        tmp_path / "images" / next(iter(sorted(p.name for p in (tmp_path / "images").iterdir())))
    ).write_bytes(b"junk")
    assert main(["data", "check", str(tmp_path)]) == 1
    assert "corrupt" in capsys.readouterr().out
