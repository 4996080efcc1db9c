"""Spatial reasoning: EmbSpatial-Bench, RefSpatial-Bench, RoboSpatial-Home."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from vlthinker.evaluation.adapters.base import (
    BenchmarkFormatError,
    ImageStore,
    Row,
    build_each,
    choice_fields,
    make_record,
    parse_list,
    read_rows,
    single_image,
    take,
)
from vlthinker.evaluation.adapters.registry import Benchmark, register

# Pointing items have no training verifier; their rule scores them (accuracy = the rule).
# Their answer type "point" is not a training one, so prompts add no box hint.
POINT_ANSWER_TYPE = "point"
# RefSpatial's official reading (VLMEvalKit's Point2DParser) takes text pairs above 1.5 as
# pixels and JSON ``point_2d`` pairs up to 1000 on Qwen's 0-1000 scale
POINT_FORMAT = (
    "Answer with a list of points [(x1, y1), (x2, y2), ...], coordinates normalised to [0, 1], "
    'or as JSON [{"point_2d": [x, y]}] with 0-1000 relative coordinates.'
)


def load_embspatial(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """EmbSpatial-Bench: ``embspatial_bench.json`` (a list of items with ``question``, base64
    ``image``, ``answer_options`` and the key's 0-based index ``answer``, ``relation``)."""
    store = ImageStore(image_dir, "embspatial")
    rows = read_rows(
        path, suffixes=(".json", ".jsonl", ".parquet"), prefer=("bench",), exclude=("sft",)
    )

    def build(row: Row) -> Any:
        item_id = row.get("question_id", row.index)
        choices = parse_list(row.require("answer_options"), row, "answer_options")
        return make_record(
            benchmark="embspatial",
            item_id=item_id,
            task="spatial",
            question=row.text("question").strip().lstrip("'\""),
            **choice_fields(row.require("answer"), choices, row, key="index"),
            images=single_image(row, store, str(item_id)),
            subset=row.get("relation"),
        )

    return build_each(take(rows, limit), build)


def _split_of(row: Row, names: tuple[str, ...]) -> str | None:
    lowered = str(row.file).lower()
    return next((name for name in names if name in lowered), None)


def load_refspatial(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """RefSpatial-Bench: HF parquet splits ``location`` and ``placement`` (``image``, ``mask``,
    ``prompt``, ``suffix``, ``step``); the ``unseen`` split is left out (it is meant for models
    trained on RefSpatial). Scored by the share of predicted points inside the mask."""
    store = ImageStore(image_dir, "refspatial")
    rows = read_rows(path, suffixes=(".parquet", ".json", ".jsonl"), exclude=("unseen",))

    def build(row: Row) -> Any:
        split = _split_of(row, ("location", "placement")) or "all"
        item_id = f"{split}-{row.get('id', row.index)}"
        image_field = "image" if "image" in row.data else "rgb_path"
        mask_field = "mask" if "mask" in row.data else "mask_path"
        suffix = row.get("suffix") or POINT_FORMAT
        return make_record(
            benchmark="refspatial",
            item_id=item_id,
            task="spatial",
            answer_type=POINT_ANSWER_TYPE,
            question=f"{row.text('prompt').strip()} {suffix}".strip(),
            answer=None,
            images=single_image(row, store, item_id, image_field),
            rule="point_in_mask",
            mask=store.save(row.require(mask_field), f"{item_id}-mask", row, mask_field),
            subset=split,
            step=row.get("step"),
        )

    return build_each(take(rows, limit), build)


def load_robospatial(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
    """RoboSpatial-Home: HF parquet splits ``configuration`` / ``compatibility`` (yes/no) and
    ``context`` (a point inside the answer polygon, normalised coordinates), or the evaluation
    repository's JSON (``question``, ``answer``, ``category``, ``img``)."""
    store = ImageStore(image_dir, "robospatial")
    rows = read_rows(path, suffixes=(".parquet", ".json", ".jsonl"))
    categories = ("configuration", "compatibility", "context")

    def build(row: Row) -> Any:
        category = str(row.get("category") or _split_of(row, categories) or "unknown").lower()
        item_id = f"{category}-{row.get('id', row.index)}"
        image_field = "image" if "image" in row.data else "img"
        images = single_image(row, store, item_id, image_field)
        answer = row.require("answer")
        record = partial(
            make_record,
            benchmark="robospatial",
            item_id=item_id,
            task="spatial",
            question=row.text("question").strip(),
            images=images,
            subset=category,
        )
        text = str(answer).strip().lower()
        if text in ("yes", "no"):
            return record(answer_type="math", answer=text, rule="yes_no")
        polygon = parse_list(answer, row, "answer")
        try:
            points = [(float(x), float(y)) for x, y in polygon]
        except (TypeError, ValueError) as error:
            raise BenchmarkFormatError(
                f"{row.where('answer')}: expected yes/no or a list of (x, y) points"
            ) from error
        if len(points) < 3:
            raise BenchmarkFormatError(f"{row.where('answer')}: a polygon needs at least 3 points")
        return record(
            answer_type=POINT_ANSWER_TYPE,
            answer=None,
            rule="point_in_polygon",
            polygon=[list(p) for p in points],
        )

    return build_each(take(rows, limit), build)


register(
    Benchmark(
        name="embspatial",
        title="EmbSpatial",
        category="spatial reasoning",
        metric="accuracy (MCQ letter)",
        source="MCQ letter, as open-compass/VLMEvalKit vlmeval/utils/matching_util.py (can_infer)",
        load=load_embspatial,
        paper=(78.2, 83.1),
        aliases=("embspatial-bench",),
        expected_files="EmbSpatial-Bench embspatial_bench.json",
    )
)
register(
    Benchmark(
        name="refspatial",
        title="RefSpatial",
        category="spatial reasoning",
        metric="share of predicted points inside the mask",
        source="`point_in_mask` as open-compass/VLMEvalKit vlmeval/dataset/refspatialbench.py "
        "with Point2DParser of vlmeval/dataset/utils/spatial_bench/tools/utils.py (points "
        "clipped to the image, then rounded) at commit e8e78f05f308 (utils.py last changed in "
        "401916c00a47)",
        load=load_refspatial,
        paper=(43.9, 44.6),
        aliases=("refspatial-bench",),
        expected_files="HF BAAI/RefSpatial-Bench parquet (location, placement)",
    )
)
register(
    Benchmark(
        name="robospatial",
        title="RoboSpatial",
        category="spatial reasoning",
        metric="accuracy (yes/no; context: first point inside the polygon), over all items",
        source="`yes_no` / `point_in_polygon` from chanhee-luke/RoboSpatial-Eval evaluation.py",
        load=load_robospatial,
        paper=(60.6, 63.2),
        aliases=("robospatial-home",),
        expected_files="HF chanhee-luke/RoboSpatial-Home parquet "
        "(configuration, compatibility, context)",
    )
)
