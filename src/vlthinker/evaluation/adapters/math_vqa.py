"""Math VQA: MathVista (testmini), MathVerse (testmini), MathVision (test).

MathVista and MathVerse are officially scored after an LLM judge extracts the answer; here the
answer is read from the response's ``<answer>`` tag and checked by rule, so the numbers are
judge-free and not comparable to judged ones (the results table says so).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from vlthinker.evaluation.adapters.base import (
    LETTERS,
    BenchmarkFormatError,
    ImageStore,
    Row,
    build_each,
    choice_fields,
    inline_options,
    is_missing,
    letter_options,
    make_record,
    open_fields,
    parse_list,
    read_rows,
    take,
)
from vlthinker.evaluation.adapters.registry import Benchmark, register

JUDGE_NOTE = "judge-free rule-based answer extraction; not comparable to LLM-judged numbers"


def _image(row: Row, store: ImageStore, name: str, fields: tuple[str, ...]) -> list[str]:
    for field in fields:
        value = row.data.get(field)
        if not is_missing(value):
            return [store.save(value, name, row, field)]
    raise BenchmarkFormatError(
        f"{row.where(fields[0])} is missing (no image in {', '.join(fields)})"
    )


# ---------------------------------------------------------------- MathVista


def _mathvista_hint(answer_type: str, precision: Any) -> str:
    if answer_type == "integer":
        return "Give the final answer as an integer."
    if answer_type == "float":
        digits = int(float(precision)) if not is_missing(precision) else 1
        places = "place" if digits == 1 else "places"
        return f"Give the final answer as a number with {digits} decimal {places}."
    if answer_type == "list":
        return "Give the final answer as a list, e.g. [1, 2, 3]."
    return ""


def load_mathvista(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """MathVista testmini, from either real release layout or VLMEvalKit's TSV.

    - HF ``AI4Math/MathVista`` root: ``data/testmini-*.parquet`` (``decoded_image``,
      ``choices``, ``question_type`` multi_choice / free_form, ``answer_type`` integer / float /
      text / list, ``precision``, ``unit``); ``annot_testmini.json``, ``source.json`` and
      ``images.zip`` beside it are not questions and are skipped;
    - GitHub ``lupantech/MathVista`` ``data/``: ``testmini.json`` (an object keyed by pid, each
      item with ``image`` = ``images/<pid>.jpg``) with the extracted ``images/`` folder;
      ``annot_testmini.json``, ``query.json``, ``source.json`` and ``texts/`` are skipped;
    - VLMEvalKit ``MathVista_MINI.tsv``.

    Multiple-choice keys are option texts and are matched against the option texts first.
    """
    store = ImageStore(image_dir, "mathvista")
    rows = read_rows(
        path,
        prefer=("testmini",),
        exclude=("annot_", "source.json", "query.json", "texts/", "texts\\"),
    )

    def build(row: Row) -> Any:
        item_id = row.get("pid", row.get("index", row.get("_key", row.index)))
        images = _image(row, store, str(item_id), ("decoded_image", "image"))
        question = row.text("question")
        answer = row.text("answer")
        question_type = row.text("question_type", "free_form")
        kind = row.text("answer_type", "text")
        unit = row.get("unit")
        if unit:
            question = f"{question} (Unit: {unit})"
        record = partial(
            make_record, benchmark="mathvista", item_id=item_id, task="math", images=images
        )
        if question_type == "multi_choice":
            choices = [str(c) for c in parse_list(row.require("choices"), row, "choices")]
            return record(
                question=question,
                **choice_fields(answer, choices, row, key="text"),
                rule="mathvista",
                kind="multi_choice",
                choices=choices,
                answer_text=answer.strip(),
            )
        hint = _mathvista_hint(kind, row.get("precision"))
        return record(
            answer_type="numeric" if kind in ("integer", "float") else "math",
            question=f"{question}\n{hint}" if hint else question,
            answer=answer,
            rule="mathvista",
            kind=kind,
            precision=None
            if is_missing(row.get("precision"))
            else int(float(row.get("precision"))),
        )

    return build_each(take(rows, limit), build)


# ---------------------------------------------------------------- MathVerse


def load_mathverse(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """MathVerse testmini: HF ``testmini.parquet`` / ``testmini.json`` (+ ``images/``) or
    VLMEvalKit ``MathVerse_MINI.tsv``; ``question_type`` multi-choice (letter key, options in
    the question text) or free-form; the text-only version is not read (it has no image)."""
    store = ImageStore(image_dir, "mathverse")
    rows = read_rows(path, prefer=("testmini",), exclude=("text_only", "text-only"))

    def build(row: Row) -> Any:
        item_id = row.get("sample_index", row.get("index", row.index))
        images = _image(row, store, str(item_id), ("image",))
        question = row.text("question", "").strip()
        if not question:  # the vision-only version puts the whole question in the image
            question = "Answer the question shown in the image."
        answer = row.text("answer").strip()
        version = row.get("problem_version")
        record = partial(
            make_record,
            benchmark="mathverse",
            item_id=item_id,
            task="math",
            images=images,
            subset=version,
        )
        if str(row.get("question_type", "")).lower().startswith("multi"):
            stem, choices = inline_options(question)
            letter = answer.strip("() ").upper()
            if letter not in LETTERS[: max(len(choices), 8)]:
                raise BenchmarkFormatError(
                    f"{row.where('answer')}: expected an option letter, got {answer!r}"
                )
            return record(
                answer_type="multiple_choice",
                question=stem if choices else question,
                answer=letter,
                options=letter_options(choices) if choices else None,
            )
        return record(question=question, **open_fields(answer))

    return build_each(take(rows, limit), build)


# ---------------------------------------------------------------- MathVision


def load_mathvision(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """MATH-Vision: HF parquet (``question``, ``options`` list — empty for free-form —,
    ``decoded_image`` / ``image``, ``answer`` letter or value); the full ``test`` split is read
    when present, else whatever split is given."""
    store = ImageStore(image_dir, "mathvision")
    rows = read_rows(path, prefer=("test-", "test.", "/test"))

    def build(row: Row) -> Any:
        item_id = row.get("id", row.get("index", row.index))
        images = _image(row, store, str(item_id), ("decoded_image", "image"))
        question = row.text("question")
        answer = row.text("answer").strip()
        options = row.get("options")
        choices = parse_list(options, row, "options") if options is not None else []
        return make_record(
            benchmark="mathvision",
            item_id=item_id,
            task="math",
            question=question,
            **(choice_fields(answer, choices, row) if choices else open_fields(answer)),
            images=images,
            subject=row.get("subject"),
        )

    return build_each(take(rows, limit), build)


register(
    Benchmark(
        name="mathvista",
        title="MathVista (testmini)",
        category="math VQA",
        metric="accuracy (MCQ letter; free-form: MathVista type/precision rule)",
        source="`mathvista` from lupantech/MathVista evaluation/calculate_score.py "
        "(extraction by rule, not by the official LLM judge)",
        load=load_mathvista,
        judged=True,
        note=JUDGE_NOTE,
        paper=(74.2, 79.5),
        expected_files="HF AI4Math/MathVista testmini parquet, annot_testmini.json + images/, "
        "or VLMEvalKit MathVista_MINI.tsv",
    )
)
register(
    Benchmark(
        name="mathverse",
        title="MathVerse (testmini)",
        category="math VQA",
        metric="accuracy (MCQ letter; free-form: symbolic equivalence)",
        source="MCQ letter; free-form: symbolic equivalence (official: LLM extraction + LLM "
        "scoring, open-compass/VLMEvalKit vlmeval/dataset/utils/mathverse.py)",
        load=load_mathverse,
        judged=True,
        note=JUDGE_NOTE,
        paper=(58.1, 65.8),
        expected_files="HF AI4Math/MathVerse testmini.parquet / testmini.json + images/",
    )
)
register(
    Benchmark(
        name="mathvision",
        title="MathVision",
        category="math VQA",
        metric="accuracy (MCQ letter; free-form: symbolic equivalence)",
        source="MCQ letter; free-form: symbolic equivalence (official: LLM extraction, "
        "open-compass/VLMEvalKit vlmeval/dataset/utils/mathv.py)",
        load=load_mathvision,
        judged=True,
        note=JUDGE_NOTE,
        paper=(45.4, 53.4),
        aliases=("math-vision", "mathv"),
        expected_files="HF MathLLMs/MathVision parquet (test split)",
    )
)
