"""A procedurally drawn multi-domain visual task suite: one family per task of the method.

Every item is drawn with Pillow from its own random stream (``seed`` and the item's index), so a
data set is the same on every machine and any item can be regenerated alone. ``difficulty`` in
[0, 1] widens the value ranges and adds distractors. Rewards differ in shape the way the real
tasks' do: exact 0/1 (math, spatial), relaxed numeric (chart), edit-distance scores (ocr),
continuous IoU (grounding) and partial-credit counts (vqa).

Each item carries a reference ``solution`` (a short worked reasoning for reasoning tasks) for the
cold-start SFT stage.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vlthinker.data.records import TASKS, Record

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (150, 60, 190),
    "orange": (240, 130, 20),
}
SHAPES = ("circle", "square", "triangle")
OCR_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ2345789"
OCR_WORDS = (
    "CAT", "DOG", "SUN", "BOX", "RED", "MAP", "KEY", "JAR", "FOX", "HAT", "PEN", "CUP",
    "BUS", "OWL", "ICE", "TOY", "ZIP", "WAX", "GUM", "LOG", "NET", "YAK", "VAN", "EGG",
)  # fmt: skip
BAR_LABELS = "ABCDEF"
RELATIONS = ("left of", "right of", "above", "below")


@dataclass
class Canvas:
    size: int
    image: Image.Image
    draw: ImageDraw.ImageDraw

    @classmethod
    def new(cls, size: int, rng: random.Random) -> Canvas:
        shade = rng.randint(225, 255)
        image = Image.new("RGB", (size, size), (shade, shade, shade))
        return cls(size, image, ImageDraw.Draw(image))

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], color: str
) -> None:
    x1, y1, x2, y2 = box
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=fill)


def _free_box(rng: random.Random, size: int, side: int, taken: list[tuple[int, int, int, int]]):
    """A ``side``-pixel square box that does not overlap ``taken`` (best effort, 50 tries)."""
    box = (0, 0, side, side)
    for _ in range(50):
        x, y = rng.randint(2, size - side - 2), rng.randint(2, size - side - 2)
        box = (x, y, x + side, y + side)
        if all(box[2] < t[0] or box[0] > t[2] or box[3] < t[1] or box[1] > t[3] for t in taken):
            break
    taken.append(box)
    return box


def _qwen1000(box: tuple[int, int, int, int], size: int) -> list[float]:
    """Pixel box → Qwen-VL's relative 0–1000 coordinates (the authors' grounding format)."""
    return [float(round(v * 1000 / size)) for v in box]


def _math(rng: random.Random, size: int, difficulty: float, index: int) -> Record:
    high = 9 + int(difficulty * 11)
    count = 3 if rng.random() < difficulty * 0.5 else 2
    numbers = [rng.randint(1, high) for _ in range(count)]
    canvas = Canvas.new(size, rng)
    slot = size // count
    # Digits as large as the slots allow: a glyph must span several vision patches to be read.
    digits = len(str(high))
    font = _font(max(12, min(size // 2, int(slot / (digits * 0.75)))))
    jitter = 2 + int(difficulty * size / 5)  # easy items keep each number near its slot's centre
    for i, number in enumerate(numbers):
        left, top, right, bottom = canvas.draw.textbbox((0, 0), str(number), font=font)
        x = i * slot + (slot - (right - left)) // 2 + rng.randint(-jitter, jitter)
        y = (size - (bottom - top)) // 2 + rng.randint(-jitter, jitter)
        x = min(max(x, i * slot), (i + 1) * slot - (right - left)) - left  # stay in its slot
        y = min(max(y, 0), size - (bottom - top)) - top
        canvas.draw.text((x, y), str(number), fill=(rng.randint(0, 60),) * 3, font=font)
    listed = (
        " and ".join(str(n) for n in numbers) if count == 2 else "{}, {} and {}".format(*numbers)
    )
    if count == 2 and rng.random() < 0.5:
        big, small = max(numbers), min(numbers)
        question = "What is the larger number in the image minus the smaller one?"
        solution = f"The numbers are {listed}. {big} - {small} = {big - small}."
        answer = big - small
    else:
        question = "What is the sum of the numbers in the image?"
        answer = sum(numbers)
        solution = f"The numbers are {listed}. {' + '.join(map(str, numbers))} = {answer}."
    return _record(index, "math", "numeric", question, str(answer), canvas, solution)


def _chart(rng: random.Random, size: int, difficulty: float, index: int) -> Record:
    count = 4 + round(difficulty * 2)  # 4 bars when easy, 6 when hard
    values = [rng.randint(1, 9) for _ in range(count)]
    canvas = Canvas.new(size, rng)
    font = _font(max(9, size // 9))
    top, bottom = size // 10, size - size // 6
    unit = (bottom - top) / 9
    for level in range(1, 10):  # faint grid lines at every unit, so heights can be read
        y = bottom - level * unit
        canvas.draw.line([(4, y), (size - 4, y)], fill=(200, 200, 200))
    width = (size - 8) // count
    color = rng.choice(list(COLORS))
    for i, value in enumerate(values):
        x1 = 4 + i * width + width // 5
        x2 = 4 + (i + 1) * width - width // 5
        canvas.draw.rectangle([x1, bottom - value * unit, x2, bottom], fill=COLORS[color])
        canvas.draw.text((x1, bottom + 2), BAR_LABELS[i], fill=(0, 0, 0), font=font)
    labels = BAR_LABELS[:count]
    listed = ", ".join(f"{label} = {v}" for label, v in zip(labels, values, strict=True))
    if rng.random() < 0.6 or len(set(values)) < count:
        target = rng.randrange(count)
        question = f"What is the value of bar {labels[target]} in the chart?"
        answer = str(values[target])
        solution = f"The bars are {listed}. Bar {labels[target]} is {values[target]}."
    else:
        best = max(range(count), key=values.__getitem__)
        question = "Which bar in the chart is the tallest? Answer with its label."
        answer = labels[best]
        solution = f"The bars are {listed}. The tallest is {labels[best]}."
    return _record(index, "chart", "chart", question, answer, canvas, solution)


def _ocr(rng: random.Random, size: int, difficulty: float, index: int) -> Record:
    if difficulty < 0.5:  # easy: a short word; hard: a random code of 3–5 characters
        word = rng.choice(OCR_WORDS)
    else:
        word = "".join(rng.choice(OCR_ALPHABET) for _ in range(3 + round(difficulty * 2)))
    length = len(word)
    canvas = Canvas.new(size, rng)
    font = _font(max(10, int(size / (length * 0.75))))
    jitter = 2 + int(difficulty * size / 6)
    x = size // 24 + rng.randint(0, jitter)
    y = size // 3 + rng.randint(-jitter, jitter)
    canvas.draw.text((x, y), word, fill=(rng.randint(0, 80),) * 3, font=font)
    for _ in range(int(10 + difficulty * 40)):  # speckle noise
        px, py = rng.randrange(size), rng.randrange(size)
        canvas.draw.point((px, py), fill=(rng.randint(0, 255),) * 3)
    if difficulty > 0.5:
        canvas.image = canvas.image.filter(ImageFilter.GaussianBlur(0.6))
        canvas.draw = ImageDraw.Draw(canvas.image)
    record = _record(index, "ocr", "ocr", "What text is written in the image?", word, canvas, None)
    record.meta["metric"] = "anls"  # partial credit per character, as document benchmarks score
    return record


def _grounding(rng: random.Random, size: int, difficulty: float, index: int) -> Record:
    canvas = Canvas.new(size, rng)
    distractors = round(difficulty * 3)  # easy: the described shape alone
    kinds = rng.sample([(s, c) for s in SHAPES for c in COLORS], distractors + 1)
    taken: list[tuple[int, int, int, int]] = []
    boxes = []
    for shape, color in kinds:
        side = (
            rng.randint(size // 4, int(size / 2.5))
            if not distractors
            else rng.randint(size // 6, size // 3)
        )
        box = _free_box(rng, size, side, taken)
        _shape(canvas.draw, shape, box, color)
        boxes.append(box)
    shape, color = kinds[0]
    question = f"Locate the {color} {shape} in the image (coordinates from 0 to 1000)."
    answer = _qwen1000(boxes[0], size)
    record = _record(index, "grounding", "grounding", question, answer, canvas, None)
    record.meta["box_format"] = "qwen1000"
    return record


def _spatial(rng: random.Random, size: int, difficulty: float, index: int) -> Record:
    canvas = Canvas.new(size, rng)
    (shape_a, color_a), (shape_b, color_b) = rng.sample([(s, c) for s in SHAPES for c in COLORS], 2)
    relation = rng.choice(RELATIONS)
    side = size // 4
    low, high = 2, size - side - 2
    along = [rng.randint(low, size // 2 - side), rng.randint(size // 2 + 2, high)]  # a before b
    if relation in ("right of", "below"):
        along.reverse()
    across = [rng.randint(low, high), rng.randint(low, high)]
    if relation in ("left of", "right of"):
        positions = [(along[0], across[0]), (along[1], across[1])]
        axis_a = "on the left" if relation == "left of" else "on the right"
        axis_b = "on the right" if relation == "left of" else "on the left"
    else:
        positions = [(across[0], along[0]), (across[1], along[1])]
        axis_a = "at the top" if relation == "above" else "at the bottom"
        axis_b = "at the bottom" if relation == "above" else "at the top"
    for (x, y), shape, color in zip(positions, (shape_a, shape_b), (color_a, color_b), strict=True):
        _shape(canvas.draw, shape, (x, y, x + side, y + side), color)
    for _ in range(round(difficulty * 2)):
        d_shape, d_color = rng.choice(SHAPES), rng.choice(list(COLORS))
        x, y = rng.randint(low, high), rng.randint(low, high)
        _shape(canvas.draw, d_shape, (x, y, x + side // 2, y + side // 2), d_color)
    a, b = f"{color_a} {shape_a}", f"{color_b} {shape_b}"
    question = f"Where is the {a} relative to the {b}?"
    letter = "ABCD"[RELATIONS.index(relation)]
    solution = f"The {a} is {axis_a} and the {b} is {axis_b}, so the {a} is {relation} the {b}."
    record = _record(index, "spatial", "multiple_choice", question, letter, canvas, solution)
    record.options = list(RELATIONS)
    return record


def _vqa(rng: random.Random, size: int, difficulty: float, index: int) -> Record:
    canvas = Canvas.new(size, rng)
    taken: list[tuple[int, int, int, int]] = []
    if rng.random() < 0.5:
        count = rng.randint(1, 4 + round(difficulty * 4))
        shape = rng.choice(SHAPES)
        side = max(8, size // 7)
        for _ in range(count):
            _shape(canvas.draw, shape, _free_box(rng, size, side, taken), rng.choice(list(COLORS)))
        other = rng.choice([s for s in SHAPES if s != shape])
        for _ in range(round(difficulty * 2)):
            _shape(canvas.draw, other, _free_box(rng, size, side, taken), rng.choice(list(COLORS)))
        question = f"How many {shape}s are in the image?"
        record = _record(index, "vqa", "counting", question, str(count), canvas, None)
        record.meta["partial"] = True
        return record
    shape = rng.choice(SHAPES)
    options = rng.sample(list(COLORS), 4)
    color = options[0]
    rng.shuffle(options)
    _shape(canvas.draw, shape, _free_box(rng, size, size // 3, taken), color)
    question = f"What color is the {shape}?"
    record = _record(
        index, "vqa", "multiple_choice", question, "ABCD"[options.index(color)], canvas, None
    )
    record.options = options
    return record


FAMILIES: dict[str, Callable[[random.Random, int, float, int], Record]] = {
    "math": _math,
    "chart": _chart,
    "ocr": _ocr,
    "grounding": _grounding,
    "spatial": _spatial,
    "vqa": _vqa,
}


def _record(
    index: int, task: str, answer_type: str, question: str, answer, canvas: Canvas, solution
) -> Record:
    return Record(
        id=f"synthetic-{task}-{index}",
        task=task,
        answer_type=answer_type,
        question=question,
        answer=answer,
        images=[canvas.png()],
        source="synthetic",
        meta={},
        solution=solution,
        origin=f"synthetic#{index}",
    )


def generate(
    n: int,
    *,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    difficulty: float | Mapping[str, float] = 0.0,
    image_size: int = 112,
) -> list[Record]:
    """``n`` items, cycling through ``tasks`` (all six by default); item ``i`` depends only on
    ``(seed, i)``, so prefixes of a larger draw are the smaller draw. ``difficulty`` is one value
    for every task or one per task (a task left out gets 0)."""
    tasks = list(tasks or TASKS)
    unknown = [t for t in tasks if t not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown synthetic task(s) {unknown}; known: {list(FAMILIES)}")
    per_task = (
        {task: float(difficulty.get(task, 0.0)) for task in tasks}
        if isinstance(difficulty, Mapping)
        else dict.fromkeys(tasks, float(difficulty))
    )
    for task, value in per_task.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"difficulty of {task} must be in [0, 1], got {value}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    records = []
    for index in range(n):
        rng = random.Random(f"vlthinker-synthetic:{seed}:{index}")
        task = tasks[index % len(tasks)]
        records.append(FAMILIES[task](rng, image_size, per_task[task], index))
    return records
