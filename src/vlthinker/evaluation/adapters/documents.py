"""Documents and OCR: DocVQA (val, ANLS), InfoVQA (val, ANLS), OCRBench (containment, /1000)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlthinker.evaluation.adapters.base import (
    ImageStore,
    Row,
    answer_list,
    build_each,
    make_record,
    read_rows,
    single_image,
    take,
)
from vlthinker.evaluation.adapters.registry import Benchmark, register

SHORT_ANSWER = "Answer the question using a single word or phrase."
HME_CATEGORY = "Handwritten Mathematical Expression Recognition"


def _answers(row: Row) -> list[str]:
    return answer_list(row, "answers" if "answers" in row.data else "answer")


def _docvqa_loader(benchmark: str, folder: str, exclude: tuple[str, ...]):
    def load(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
        store = ImageStore(image_dir, benchmark)
        rows = read_rows(
            path, prefer=(f"{folder}/validation", "validation", "_val"), exclude=exclude
        )

        def build(row: Row) -> Any:
            item_id = row.get("questionId", row.get("index", row.index))
            answers = _answers(row)
            return make_record(
                benchmark=benchmark,
                item_id=item_id,
                task="ocr",
                answer_type="ocr",
                question=f"{row.text('question')}\n{SHORT_ANSWER}",
                answer=answers[0],
                images=single_image(row, store, str(item_id)),
                rule="anls",
                answers=answers,
            )

        return build_each(take(rows, limit), build)

    load.__doc__ = (
        f"{benchmark} validation: lmms-lab/DocVQA parquet (config folder ``{folder}``: "
        "``questionId``, ``question``, ``answers`` list, ``image``) or a VLMEvalKit TSV."
    )
    return load


load_docvqa = _docvqa_loader("docvqa", "docvqa", ("infographic", "infovqa", "test"))
load_infovqa = _docvqa_loader("infovqa", "infographicvqa", ("test",))


def load_ocrbench(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """OCRBench, from any of its three releases:

    - the authors' ``OCRBench.json`` (Yuliang-Liu/MultimodalOCR: ``dataset_name``, ``id``,
      ``image_path`` relative to the ``OCRBench_Images`` folder beside it, ``question``,
      ``answers`` — one string or a list —, ``type``);
    - VLMEvalKit ``OCRBench.tsv`` (``answer`` as a list string, ``category``);
    - the HF parquet (``question_type``, ``dataset``, ``answer`` list).

    Handwritten-maths items (``dataset_name`` / ``dataset`` HME100k, or the category
    "Handwritten Mathematical Expression Recognition") are compared with spaces removed.
    """
    store = ImageStore(image_dir, "ocrbench")
    rows = read_rows(path, suffixes=(".tsv", ".parquet", ".json"))

    def build(row: Row) -> Any:
        item_id = row.get("index", row.get("id", row.index))
        answers = _answers(row)
        category = row.get("category", row.get("question_type", row.get("type")))
        dataset = row.get("dataset", row.get("dataset_name"))
        handwritten_math = category == HME_CATEGORY or dataset == "HME100k"
        if "image_path" in row.data and "image" not in row.data:
            images = [
                store.save(
                    row.require("image_path"),
                    str(item_id),
                    row,
                    "image_path",
                    base_dir=_ocrbench_image_root(row),
                )
            ]
        else:
            images = single_image(row, store, str(item_id))
        return make_record(
            benchmark="ocrbench",
            item_id=item_id,
            task="ocr",
            answer_type="ocr",
            question=row.text("question").strip(),
            answer=answers[0],
            images=images,
            rule="ocrbench",
            answers=answers,
            subset=category,
            handwritten_math=handwritten_math or None,
        )

    return build_each(take(rows, limit), build)


def _ocrbench_image_root(row: Row) -> Path:
    """Where ``OCRBench.json``'s relative ``image_path`` values start: the
    ``OCRBench_Images`` folder beside the file when there is one, else the file's folder."""
    for folder in (row.file.parent / "OCRBench_Images", row.file.parent.parent / "OCRBench_Images"):
        if folder.is_dir():
            return folder
    return row.file.parent


register(
    Benchmark(
        name="docvqa",
        title="DocVQA (val)",
        category="documents",
        metric="ANLS (threshold 0.5)",
        source="`anls` from open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py "
        "(anls_compute, hit_calculate)",
        load=load_docvqa,
        paper=(95.3, 96.7),
        expected_files="lmms-lab/DocVQA parquet (DocVQA/validation-*) or DocVQA_VAL.tsv",
    )
)
register(
    Benchmark(
        name="ocrbench",
        title="OCRBench",
        category="documents",
        metric="score out of 1000 (answer containment)",
        source="`ocrbench` containment from Yuliang-Liu/MultimodalOCR (OCRBench evaluation)",
        load=load_ocrbench,
        scale=1000.0,
        paper=(819.0, 911.0),
        expected_files="VLMEvalKit OCRBench.tsv or echo840/OCRBench parquet",
    )
)
register(
    Benchmark(
        name="infovqa",
        title="InfoVQA (val)",
        category="documents",
        metric="ANLS (threshold 0.5)",
        source="`anls` from open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py "
        "(anls_compute, hit_calculate)",
        load=load_infovqa,
        paper=(83.1, 86.4),
        aliases=("infographicvqa",),
        expected_files="lmms-lab/DocVQA parquet (InfographicVQA/validation-*) or InfoVQA_VAL.tsv",
    )
)
