"""Charts and diagrams: AI2D, ChartQA (relaxed accuracy), CharXiv (reasoning questions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlthinker.evaluation.adapters.base import (
    ImageStore,
    Row,
    answer_list,
    as_number,
    build_each,
    choice_fields,
    column_options,
    make_record,
    open_fields,
    parse_list,
    read_rows,
    single_image,
    take,
)
from vlthinker.evaluation.adapters.math_vqa import JUDGE_NOTE
from vlthinker.evaluation.adapters.registry import Benchmark, register

SHORT_ANSWER = "Answer with a single word, phrase or number."


def load_ai2d(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """AI2D test: VLMEvalKit ``AI2D_TEST.tsv`` (options in columns ``A``…, letter key) or the
    lmms-lab parquet (``options`` list, ``answer`` as the option's 0-based index)."""
    store = ImageStore(image_dir, "ai2d")
    rows = read_rows(path, suffixes=(".tsv", ".parquet"), prefer=("test",), exclude=("no_mask",))

    def build(row: Row) -> Any:
        item_id = row.get("index", row.get("id", row.index))
        choices = column_options(row)
        key = "letter"  # VLMEvalKit TSV: options in columns, the key as a letter
        if not choices:  # lmms-lab parquet: an options list, the key as a 0-based index
            choices, key = parse_list(row.require("options"), row, "options"), "index"
        return make_record(
            benchmark="ai2d",
            item_id=item_id,
            task="chart",
            question=row.text("question"),
            **choice_fields(row.require("answer"), choices, row, key=key),
            images=single_image(row, store, str(item_id)),
        )

    return build_each(take(rows, limit), build)


def load_chartqa(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """ChartQA test: lmms-lab parquet (``question``, ``answer``, ``type`` human / augmented),
    HuggingFaceM4 parquet (``query``, ``label`` list) or VLMEvalKit ``ChartQA_TEST.tsv``."""
    store = ImageStore(image_dir, "chartqa")
    rows = read_rows(path, prefer=("test",))

    def build(row: Row) -> Any:
        item_id = row.get("index", row.get("id", row.index))
        question = row.text("question") if "question" in row.data else row.text("query")
        # HuggingFaceM4 keeps a list of accepted answers in ``label``
        answers = answer_list(row, "answer" if "answer" in row.data else "label")
        return make_record(
            benchmark="chartqa",
            item_id=item_id,
            task="chart",
            question=f"{question}\n{SHORT_ANSWER}",
            **open_fields(answers[0]),
            images=single_image(row, store, str(item_id)),
            rule="relaxed",
            answers=answers,
            subset=row.get("type", row.get("human_or_machine")),
        )

    return build_each(take(rows, limit), build)


def _charxiv_hint(source: int, answer: str) -> str:
    if source in (3, 4) or as_number(answer) is not None:
        decimals = answer.strip().split(".")[1] if "." in answer.strip() else ""
        if decimals and decimals.isdigit():
            return f"Give the final answer as a number with {len(decimals)} decimal places."
        return (
            "Give the final answer as an exact integer."
            if source == 4
            else "Give the final answer as a number."
        )
    return (
        "Give the final answer as the exact text it has in the figure."
        if source == 1
        else SHORT_ANSWER
    )


def load_charxiv(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """CharXiv reasoning questions (validation): HF ``val.parquet`` with ``reasoning_q``,
    ``reasoning_a`` and ``reasoning_q_source`` (1 text-in-chart, 2 text-in-general,
    3 number-in-chart, 4 number-in-general)."""
    store = ImageStore(image_dir, "charxiv")
    rows = read_rows(path, prefer=("val",))

    def build(row: Row) -> Any:
        item_id = row.get("figure_path", row.get("figure_id", row.index))
        answer = row.text("reasoning_a").strip()
        source = int(row.get("reasoning_q_source", 0) or 0)
        return make_record(
            benchmark="charxiv",
            item_id=item_id,
            task="chart",
            question=f"{row.text('reasoning_q')}\n{_charxiv_hint(source, answer)}",
            **open_fields(answer),
            images=single_image(row, store, str(item_id)),
            rule="charxiv",
            subset=source or None,
        )

    return build_each(take(rows, limit), build)


register(
    Benchmark(
        name="ai2d",
        title="AI2D",
        category="charts",
        metric="accuracy (MCQ letter)",
        source="MCQ letter, as open-compass/VLMEvalKit vlmeval/utils/matching_util.py (can_infer)",
        load=load_ai2d,
        paper=(82.3, 87.5),
        expected_files="VLMEvalKit AI2D_TEST.tsv or lmms-lab/ai2d parquet",
    )
)
register(
    Benchmark(
        name="chartqa",
        title="ChartQA",
        category="charts",
        metric="relaxed accuracy (5% numeric tolerance)",
        source="`relaxed` from EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/chartqa/utils.py and "
        "open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py (relaxed_correctness)",
        load=load_chartqa,
        paper=(82.8, 87.4),
        expected_files="lmms-lab/ChartQA or HuggingFaceM4/ChartQA parquet (test)",
    )
)
register(
    Benchmark(
        name="charxiv",
        title="CharXiv (RQ)",
        category="charts",
        metric="accuracy (number: exact at the key's precision; text: normalised match)",
        source="`charxiv` after the rubric of princeton-nlp/CharXiv constants.py "
        "(REASONING_GRADING_INST; official: GPT-4o grading)",
        load=load_charxiv,
        judged=True,
        note=JUDGE_NOTE,
        paper=(44.5, 53.0),
        aliases=("charxiv-rq", "charxiv_reasoning"),
        expected_files="HF princeton-nlp/CharXiv val.parquet",
    )
)
