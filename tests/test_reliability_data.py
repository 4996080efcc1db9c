"""The data path under bad input and at scale: messages that name the file, record and cause;
image paths kept inside the data folder; lazy image decoding; `data check` and `data synth`."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from vlthinker.cli import main
from vlthinker.data import LoadReport, PromptConfig, RecordError, load_records, synthetic
from vlthinker.data.cli import check_records
from vlthinker.data.readers import ALLOW_ABSOLUTE_ENV

GOOD = {"task": "ocr", "answer_type": "ocr", "question": "Read it.", "answer": "HI"}


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG whose header claims 400 megapixels (the pixel data itself is tiny)."""
    small = _png((1, 1))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return small[:8] + patched + small[8 + 25 :]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------ files that cannot be read


def test_non_utf8_jsonl_line_names_the_file_line_and_cause(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"task": "caf\xe9"}\n')
    with pytest.raises(RecordError) as caught:
        load_records(path)
    assert str(path) in str(caught.value) and "#1" in str(caught.value)
    assert "not UTF-8" in str(caught.value) and "0xe9" in str(caught.value)
    report = LoadReport()
    assert len(load_records(path, on_bad_record="skip", report=report)) == 1
    assert report.skipped == 1


def test_non_utf8_and_truncated_json_files_name_the_file_and_cause(tmp_path: Path):
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[{"task": "caf\xe9"}]')
    with pytest.raises(RecordError, match=r"latin\.json.*not UTF-8 text"):
        load_records(latin)
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps([GOOD, GOOD, GOOD])[:-20])
    with pytest.raises(RecordError, match=r"cut\.json.*truncated"):
        load_records(truncated)
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": [GOOD]})[:-5])
    with pytest.raises(RecordError, match=r"wrapped\.json.*invalid JSON"):
        load_records(wrapped)


def test_a_json_list_streams_across_chunks_with_multibyte_text(tmp_path: Path, monkeypatch):
    import vlthinker.data.readers as readers

    monkeypatch.setattr(readers, "_JSON_CHUNK", 7)  # every element and character split
    rows = [dict(GOOD, id=f"r{i}", question=f"Lies é ü 漢字 {i}", answer=i * 10) for i in range(30)]
    path = tmp_path / "d.json"
    path.write_text(
        "\ufeff[\n " + ",\n ".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]"
    )
    records = load_records(path)
    assert [r.answer for r in records] == [i * 10 for i in range(30)]
    assert records[7].question == "Lies é ü 漢字 7"
    assert (
        load_records(tmp_path / "d.json") and load_records(_write(tmp_path / "e.json", "[]")) == []
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ images


def test_a_decompression_bomb_names_the_record(tmp_path: Path):
    (tmp_path / "huge.png").write_bytes(_bomb_png())
    path = _jsonl(tmp_path / "d.jsonl", [GOOD, dict(GOOD, images=["huge.png"])])
    with pytest.raises(RecordError) as caught:
        load_records(path)
    assert caught.value.origin == f"{path}#1" and caught.value.field == "images[0]"
    assert "too large" in str(caught.value)
    unchecked = load_records(path, check_images=False)
    with pytest.raises(RecordError, match=r"d\.jsonl#1: field 'images\[0\]': image too large"):
        unchecked[1].load_images()


def test_skip_also_skips_and_reports_records_whose_image_cannot_be_decoded(tmp_path: Path):
    (tmp_path / "ok.png").write_bytes(_png())
    (tmp_path / "cut.png").write_bytes(_png((64, 64))[:-30])  # truncated: IEND and data gone
    (tmp_path / "text.png").write_text("not an image")
    rows = [
        dict(GOOD, id="a", images=["ok.png"]),
        dict(GOOD, id="b", images=["cut.png"]),
        dict(GOOD, id="c", images=["text.png"]),
    ]
    report = LoadReport()
    records = load_records(_jsonl(tmp_path / "d.jsonl", rows), on_bad_record="skip", report=report)
    assert [r.id for r in records] == ["a"]
    assert report.skipped == 2 and {p.field for p in report.problems} == {"images[0]"}
    assert {p.origin.rsplit("#", 1)[1] for p in report.problems} == {"1", "2"}


def test_image_paths_stay_inside_the_data_folder(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(ALLOW_ABSOLUTE_ENV, raising=False)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / "ok.png").write_bytes(_png())
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png())
    os.symlink(outside, data / "images" / "link.png")
    os.symlink(data / "images" / "ok.png", data / "inner.png")  # a link inside is fine
    escapes = ["../secret.png", str(outside), "images/link.png", "../../../../../../etc/passwd"]
    for value in escapes:
        path = _jsonl(data / "d.jsonl", [dict(GOOD, images=[value])])
        with pytest.raises(RecordError, match="outside the data folder") as caught:
            load_records(path, check_images=False)
        assert caught.value.field == "images[0]" and caught.value.origin == f"{path}#0"
    for value in ("images/ok.png", "./images/../images/ok.png", "inner.png"):
        path = _jsonl(data / "d.jsonl", [dict(GOOD, images=[value])])
        assert load_records(path)[0].load_images()[0].size == (8, 8)
    path = _jsonl(data / "d.jsonl", [dict(GOOD, images=[str(outside)])])
    assert load_records(path, allow_absolute_images=True)[0].images == [str(outside)]
    monkeypatch.setenv(ALLOW_ABSOLUTE_ENV, "1")
    assert load_records(path)[0].images == [str(outside)]


def test_a_nested_data_file_may_use_images_anywhere_under_the_scanned_folder(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(_png())
    (tmp_path / "splits").mkdir()
    _jsonl(tmp_path / "splits" / "train.jsonl", [dict(GOOD, images=["../images/a.png"])])
    assert len(load_records(tmp_path)) == 1
    with pytest.raises(RecordError, match="outside the data folder"):
        load_records(tmp_path / "splits" / "train.jsonl")


# ------------------------------------------------------------------ folder scans


def test_folder_scans_skip_vlthinkers_own_output_files(tmp_path: Path):
    _jsonl(tmp_path / "train.jsonl", [GOOD])
    eval_out = tmp_path / "eval"
    eval_out.mkdir()
    (eval_out / "predictions.jsonl").write_text(json.dumps({"benchmark": "x", "id": "1"}) + "\n")
    (eval_out / "results.json").write_text(json.dumps({"benchmarks": []}))
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.1}) + "\n")
    (run / "batches.jsonl").write_text(json.dumps({"step": 1, "ids": []}) + "\n")
    (run / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (run / "checkpoint-2" / "tokenizer.json").write_text("{}")
    (tmp_path / "results.json").write_text("{}")  # an --out equal to the data folder
    records = load_records(tmp_path)
    assert [r.question for r in records] == ["Read it."]


# ------------------------------------------------------------------ data check / data synth


def test_data_check_flags_repeated_ids_unknown_tasks_and_empty_files(tmp_path: Path, capsys):
    (tmp_path / "a").mkdir()
    _jsonl(tmp_path / "a" / "d.jsonl", [dict(GOOD, id="1"), dict(GOOD, id="1")])
    assert main(["data", "check", str(tmp_path / "a" / "d.jsonl")]) == 1
    assert "repeats" in capsys.readouterr().out
    _jsonl(tmp_path / "t.jsonl", [dict(GOOD, id="1", task="poetry")])
    assert main(["data", "check", str(tmp_path / "t.jsonl")]) == 1
    assert "unknown task 'poetry'" in capsys.readouterr().out
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["data", "check", str(tmp_path / "empty.jsonl")]) == 1
    assert "no records" in capsys.readouterr().out
    (tmp_path / "cut.json").write_text('[{"task": "ocr"')
    assert main(["data", "check", str(tmp_path / "cut.json")]) == 1
    assert "cut.json" in capsys.readouterr().err
    _jsonl(tmp_path / "ok.jsonl", [dict(GOOD, id="1"), dict(GOOD, id="2")])
    assert main(["data", "check", str(tmp_path / "ok.jsonl")]) == 0


def test_data_check_shows_progress_on_a_slow_check(tmp_path: Path, capsys, monkeypatch):
    import tqdm.auto

    seen: dict = {}
    real = tqdm.auto.tqdm

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", spy)
    _jsonl(tmp_path / "ok.jsonl", [GOOD])
    good, problems = check_records(tmp_path / "ok.jsonl", progress=True)
    assert len(good) == 1 and not problems
    assert seen["disable"] is False and seen["unit"] == "record"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["data", "synth", "--out", "x", "--n", "-5"], "--n"),
        (["data", "synth", "--out", "x", "--difficulty", "7"], "--difficulty"),
        (["data", "synth", "--out", "x", "--image-size", "0"], "--image-size"),
        (["sft", "--epochs", "-1"], "--epochs"),
        (["sft", "--batch-size", "0"], "--batch-size"),
        (["sft", "--warmup-ratio", "2"], "--warmup-ratio"),
        (["eval", "--data", "synthetic", "--top-p", "5"], "--top-p"),
        (["eval", "--data", "synthetic", "--top-p", "0"], "--top-p"),
        (["eval", "--data", "synthetic", "--temperature", "-1"], "--temperature"),
    ],
)
def test_out_of_range_options_are_refused_naming_the_option(
    argv, option, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(argv)
    message = str(caught.value.code) + capsys.readouterr().err
    assert caught.value.code != 0 and option in message
    assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ lazy decoding


def test_training_rows_decode_images_only_when_a_batch_is_read(tmp_path: Path, monkeypatch):
    import torch.utils.data

    import vlthinker.data.records as records_module
    from vlthinker.train.dataset import training_rows

    records = synthetic.generate(12, seed=3, image_size=48)
    decoded: list[str] = []
    real = records_module.decode_image

    def counting(ref, origin, field_name):
        decoded.append(origin)
        return real(ref, origin, field_name)

    monkeypatch.setattr(records_module.Record, "load_images", lambda self: pytest.fail("eager"))
    import vlthinker.train.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "decode_image", counting)
    tasks = sorted({r.task for r in records})
    dataset = training_rows(
        records, PromptConfig(), {t: i for i, t in enumerate(tasks)}, {"synthetic": 0}, "source"
    )
    assert decoded == [] and len(dataset) == 12
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=list)
    batch = next(iter(loader))
    assert len(decoded) == 4
    assert set(batch[0]) == {
        "prompt",
        "images",
        "answer_json",
        "answer_type",
        "task",
        "task_index",
        "stage2_index",
        "record_id",
        "score_meta",
    }
    assert batch[1]["images"][0].mode == "RGB" and batch[1]["images"][0].size == (48, 48)
    assert [row["record_id"] for row in batch] == [r.id for r in records[:4]]
    assert json.loads(batch[0]["answer_json"]) == records[0].answer
