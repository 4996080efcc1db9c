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
    """OCRBench: VLMEvalKit ``OCRBench.tsv`` (``answer`` as a list string, ``category``) or the
    HF parquet (``question_type``, ``dataset``, ``answer`` list)."""
    store = ImageStore(image_dir, "ocrbench")
    rows = read_rows(path, suffixes=(".tsv", ".parquet", ".json"))

    def build(row: Row) -> Any:
        item_id = row.get("index", row.get("id", row.index))
        answers = _answers(row)
        category = row.get("category", row.get("question_type"))
        handwritten_math = category == HME_CATEGORY or row.get("dataset") == "HME100k"
        return make_record(
            benchmark="ocrbench",
            item_id=item_id,
            task="ocr",
            answer_type="ocr",
            question=row.text("question").strip(),
            answer=answers[0],
            images=single_image(row, store, str(item_id)),
            rule="ocrbench",
            answers=answers,
            subset=category,
            handwritten_math=handwritten_math or None,
        )

    return build_each(take(rows, limit), build)


register(
    Benchmark(
        name="docvqa",
        title="DocVQA (val)",
        category="documents",
        metric="ANLS (threshold 0.5)",
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
        load=load_infovqa,
        paper=(83.1, 86.4),
        aliases=("infographicvqa",),
        expected_files="lmms-lab/DocVQA parquet (InfographicVQA/validation-*) or InfoVQA_VAL.tsv",
    )
)
