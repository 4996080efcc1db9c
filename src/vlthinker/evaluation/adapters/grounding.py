"""Referring-expression grounding: RefCOCO, RefCOCO+, RefCOCOg (val), Acc@IoU ≥ 0.5.

The lmms-lab parquet releases hold one row per annotated object: the COCO ``bbox``
(``[x, y, width, height]`` in pixels) and the list of referring expressions for it in
``answer``; as lmms-eval does, every expression becomes its own item. Boxes are turned into
Qwen-VL's 0–1000 relative coordinates, the convention of the training grounding data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from vlthinker.evaluation.adapters.base import (
    BenchmarkFormatError,
    ImageStore,
    Row,
    make_record,
    parse_list,
    read_rows,
)
from vlthinker.evaluation.adapters.registry import Benchmark, register

COORDS = "qwen1000"
PROMPT = (
    'Locate the region this sentence describes: "{expression}". Give its bounding box as JSON '
    '{{"boxes": [x1, y1, x2, y2]}} in 0-1000 relative coordinates.'
)


def coco_to_relative(bbox: list[float], width: int, height: int) -> list[float]:
    """COCO ``[x, y, w, h]`` in pixels → ``[x1, y1, x2, y2]`` on Qwen-VL's 0–1000 scale."""
    x, y, w, h = (float(v) for v in bbox)
    return [
        round(1000.0 * x / width, 2),
        round(1000.0 * y / height, 2),
        round(1000.0 * (x + w) / width, 2),
        round(1000.0 * (y + h) / height, 2),
    ]


def _loader(benchmark: str):
    def load(path: Path, *, image_dir: Path, limit: int | None = None) -> list[Any]:
        store = ImageStore(image_dir, benchmark)
        rows = read_rows(
            path, suffixes=(".parquet",), prefer=("val-", "val.", "/val"), exclude=("test", "train")
        )

        def build(row: Row) -> list[Any]:
            base_id = row.get("question_id", row.get("id", row.index))
            bbox = parse_list(row.require("bbox"), row, "bbox")
            if len(bbox) != 4:
                raise BenchmarkFormatError(
                    f"{row.where('bbox')}: expected [x, y, w, h], got {bbox!r}"
                )
            image = store.save(
                row.require("image"), str(row.get("file_name", base_id)), row, "image"
            )
            with Image.open(image) as opened:
                width, height = opened.size
            box = coco_to_relative(bbox, width, height)
            expressions = parse_list(row.require("answer"), row, "answer")
            return [
                make_record(
                    benchmark=benchmark,
                    item_id=f"{base_id}-{k}",
                    task="grounding",
                    answer_type="grounding",
                    question=PROMPT.format(expression=str(expression).strip()),
                    answer=box,
                    images=[image],
                    rule="iou50",
                    verifier_meta={"box_format": COORDS, "image_size": [width, height]},
                )
                for k, expression in enumerate(expressions)
            ]

        records: list[Any] = []
        for row in rows:
            records.extend(build(row))
            if limit is not None and len(records) >= limit:
                return records[:limit]
        return records

    load.__doc__ = (
        f"{benchmark} val: lmms-lab parquet (``bbox``, ``answer`` expressions, ``image``)."
    )
    return load


load_refcoco = _loader("refcoco")
load_refcoco_plus = _loader("refcoco+")
load_refcocog = _loader("refcocog")

for _name, _title, _loader_fn, _paper, _aliases in (
    ("refcoco", "RefCOCO (val)", load_refcoco, (89.9, 93.4), ()),
    (
        "refcoco+",
        "RefCOCO+ (val)",
        load_refcoco_plus,
        (84.5, 88.2),
        ("refcocoplus", "refcoco_plus"),
    ),
    ("refcocog", "RefCOCOg (val)", load_refcocog, (86.8, 90.4), ()),
):
    _repo = _name.replace("+", "plus").replace("refcoco", "RefCOCO")
    register(
        Benchmark(
            name=_name,
            title=_title,
            category="grounding",
            metric="Acc@IoU 0.5",
            source="`iou50` (Acc@IoU 0.5 on the original image's pixels), as lmms-eval's "
            "refcoco*_bbox_rec tasks",
            load=_loader_fn,
            paper=_paper,
            aliases=_aliases,
            expected_files=f"lmms-lab/{_repo} parquet (val split: data/val-*.parquet)",
        )
    )
