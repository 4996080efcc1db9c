"""General VQA: MMMU (validation), MMBench (CircularEval), MMStar."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from vlthinker.evaluation.adapters.base import (
    LETTERS,
    BenchmarkFormatError,
    ImageStore,
    Row,
    answer_letter,
    build_each,
    choice_fields,
    column_options,
    inline_options,
    is_missing,
    letter_options,
    make_record,
    open_fields,
    parse_list,
    read_rows,
    single_image,
    take,
)
from vlthinker.evaluation.adapters.registry import Benchmark, register

_CIRCULAR_OFFSET = 1_000_000  # VLMEvalKit: rotation k of question i has index i + k·10⁶


def _tsv_images(row: Row, store: ImageStore, name: str) -> list[str]:
    value = row.require("image")
    if isinstance(value, str) and value.lstrip().startswith("["):
        return store.save_all(parse_list(value, row, "image"), name, row, "image")
    return [store.save(value, name, row, "image")]


# ---------------------------------------------------------------- MMMU


def load_mmmu(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """MMMU validation: HF parquet (``image_1`` … ``image_7``, ``options`` as a list string,
    ``question_type`` multiple-choice / open) or VLMEvalKit's ``MMMU_DEV_VAL.tsv`` (options in
    columns ``A``…, open questions with no options; only rows of split ``validation``)."""
    store = ImageStore(image_dir, "mmmu")
    rows = read_rows(path, prefer=("validation", "dev_val"), exclude=("test",))
    rows = [r for r in rows if str(r.get("split", "validation")).lower() in ("validation", "val")]

    def build(row: Row) -> Any:
        item_id = row.get("id", row.get("index", row.index))
        if "options" in row.data:  # Hugging Face layout
            choices = parse_list(row.get("options", "[]"), row, "options")
            images = [
                store.save(row.data[f"image_{k}"], f"{item_id}-{k}", row, f"image_{k}")
                for k in range(1, 8)
                if not is_missing(row.data.get(f"image_{k}"))
            ]
            is_mcq = str(row.get("question_type", "")).lower().startswith("multiple") and choices
        else:  # VLMEvalKit TSV
            choices = column_options(row)
            images = _tsv_images(row, store, str(item_id))
            is_mcq = bool(choices)
        record = partial(
            make_record,
            benchmark="mmmu",
            item_id=item_id,
            task="vqa",
            question=row.text("question"),
            images=images,
        )
        answer = row.text("answer")
        if is_mcq:
            return record(
                **choice_fields(answer, choices, row),
                subject=row.get("subfield", row.get("category")),
            )
        answers = (
            [str(a) for a in parse_list(answer, row, "answer")]
            if answer.startswith("[")
            else [answer]
        )
        return record(**open_fields(answers[0]), rule="mmmu_open", answers=answers)

    return build_each(take(rows, limit), build)


# ---------------------------------------------------------------- MMBench


def load_mmbench(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """MMBench (VLMEvalKit TSV: ``index, question, hint, A…D, answer, category, image``).

    CircularEval: a question is right only if every rotation of its options is answered right.
    A TSV that already holds the rotations (index + k·10⁶) is grouped as is; otherwise each
    question is expanded here into its rotations. ``limit`` counts questions, not rotations.
    """
    store = ImageStore(image_dir, "mmbench")
    rows = read_rows(path, suffixes=(".tsv",), prefer=("dev_en",))
    rows = [r for r in rows if not is_missing(r.data.get("answer"))]
    indices = [_int_index(r) for r in rows]
    has_rotations = any(i >= _CIRCULAR_OFFSET for i in indices)
    if limit is not None:
        keep = {i % _CIRCULAR_OFFSET for i in indices if i < _CIRCULAR_OFFSET}
        keep = set(sorted(keep)[:limit])
        rows = [r for r, i in zip(rows, indices, strict=True) if i % _CIRCULAR_OFFSET in keep]

    def build(row: Row) -> list[Any]:
        index = _int_index(row)
        choices = column_options(row)
        if len(choices) < 2:
            raise BenchmarkFormatError(f"{row.where('A')}: fewer than two options")
        key = LETTERS.index(answer_letter(row.text("answer"), choices, row))
        hint = row.get("hint")
        question = (f"Hint: {hint}\n" if hint else "") + row.text("question")
        images = _tsv_images(row, store, str(index))
        rotations = [0] if has_rotations else range(len(choices))
        records = []
        for k in rotations:
            rotated = choices[k:] + choices[:k]
            records.append(
                make_record(
                    benchmark="mmbench",
                    item_id=index + k * _CIRCULAR_OFFSET,
                    task="vqa",
                    answer_type="multiple_choice",
                    question=question,
                    answer=LETTERS[(key - k) % len(choices)],
                    images=images,
                    options=letter_options(rotated),
                    group=index % _CIRCULAR_OFFSET,
                    category=row.get("category"),
                )
            )
        return records

    return build_each(rows, build)


def _int_index(row: Row) -> int:
    value = row.require("index")
    try:
        return int(float(value))
    except (TypeError, ValueError) as error:
        raise BenchmarkFormatError(f"{row.where('index')} is not an integer: {value!r}") from error


# ---------------------------------------------------------------- MMStar


def load_mmstar(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """MMStar: VLMEvalKit ``MMStar.tsv`` (options in columns ``A``…) or the HF parquet, whose
    question text carries ``Options: A: …, B: …``."""
    store = ImageStore(image_dir, "mmstar")
    rows = read_rows(path, suffixes=(".tsv", ".parquet"))

    def build(row: Row) -> Any:
        item_id = row.get("index", row.index)
        question = row.text("question")
        choices = column_options(row)
        if not choices:
            question, choices = inline_options(question)
        answer = row.text("answer").strip()
        if choices:
            letter = answer_letter(answer, choices, row)
        elif len(answer) == 1 and answer.upper() in LETTERS:
            letter = answer.upper()  # options stay inside the question text
        else:
            raise BenchmarkFormatError(
                f"{row.where('answer')}: expected an option letter, got {answer!r}"
            )
        return make_record(
            benchmark="mmstar",
            item_id=item_id,
            task="vqa",
            answer_type="multiple_choice",
            question=question,
            answer=letter,
            images=single_image(row, store, str(item_id)),
            options=letter_options(choices) if choices else None,
            category=row.get("category"),
        )

    return build_each(take(rows, limit), build)


register(
    Benchmark(
        name="mmmu",
        title="MMMU (val)",
        category="general VQA",
        metric="accuracy (MCQ letter; open: MMMU number/string rule)",
        source="MCQ letter; open: `mmmu_open` from MMMU-Benchmark/MMMU eval/eval_utils.py "
        "(parse_open_response, eval_open)",
        load=load_mmmu,
        paper=(60.2, 71.6),
        expected_files="HF MMMU/MMMU parquet (validation split) or VLMEvalKit MMMU_DEV_VAL.tsv",
    )
)
register(
    Benchmark(
        name="mmbench",
        title="MMBench",
        category="general VQA",
        metric="accuracy (CircularEval)",
        source="CircularEval letter match from open-compass/VLMEvalKit "
        "vlmeval/dataset/utils/multiple_choice.py",
        load=load_mmbench,
        aggregate="circular",
        paper=(85.1, 88.2),
        expected_files="VLMEvalKit MMBench_DEV_EN(_V11).tsv",
    )
)
register(
    Benchmark(
        name="mmstar",
        title="MMStar",
        category="general VQA",
        metric="accuracy (MCQ letter)",
        source="MCQ letter, as open-compass/VLMEvalKit vlmeval/utils/matching_util.py (can_infer)",
        load=load_mmstar,
        paper=(68.5, 73.8),
        expected_files="VLMEvalKit MMStar.tsv or HF Lin-Chen/MMStar mmstar.parquet",
    )
)
