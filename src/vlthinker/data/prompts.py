"""Per-task prompt templates and the chat-message form processors and TRL expect.

Reasoning tasks ask for ``<think>…</think><answer>…</answer>`` (the tag is configurable: the
authors' Qwen3 prompt uses ``thinking``); perception tasks ask for a bare ``<answer>…</answer>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vlthinker.data.records import Record

DEFAULT_REASONING = {
    "math": True,
    "chart": True,
    "spatial": True,
    "ocr": False,
    "grounding": False,
    "vqa": False,
}

REASONING_INSTRUCTION = (
    "Think step by step inside <{tag}> </{tag}> tags, then give the final answer inside "
    "<answer> </answer> tags."
)
DIRECT_INSTRUCTION = "Give only the final answer inside <answer> </answer> tags."
ANSWER_HINTS = {
    "grounding": 'Answer with the box as JSON: {{"boxes": [x1, y1, x2, y2]}}.',
    "multiple_choice": "Answer with the option's letter.",
}


@dataclass
class PromptConfig:
    """How prompts are worded. ``reasoning`` maps task → reasoning prompt (True) or direct (False);
    tasks it does not name use :data:`DEFAULT_REASONING`, then ``default_reasoning``."""

    think_tag: str = "think"
    reasoning: dict[str, bool] | None = None
    default_reasoning: bool = True
    reasoning_instruction: str = REASONING_INSTRUCTION
    direct_instruction: str = DIRECT_INSTRUCTION
    answer_hints: dict[str, str] = field(default_factory=lambda: dict(ANSWER_HINTS))

    def is_reasoning(self, task: str) -> bool:
        if self.reasoning and task in self.reasoning:
            return bool(self.reasoning[task])
        return DEFAULT_REASONING.get(task, self.default_reasoning)


def prompt_text(record: Record, config: PromptConfig) -> str:
    """The user turn's text: question, lettered options, answer hint, output instruction."""
    parts = [record.question.strip()]
    if record.options:
        parts.append("Options:\n" + "\n".join(_lettered(record.options)))
    hint = config.answer_hints.get(record.answer_type)
    if hint:
        parts.append(hint.format())
    if config.is_reasoning(record.task):
        parts.append(config.reasoning_instruction.format(tag=config.think_tag))
    else:
        parts.append(config.direct_instruction)
    return "\n".join(parts)


def _lettered(options: list[str]) -> list[str]:
    """Options as ``A. text``; lettered ones (the reference data's form) stay as they are."""
    letters = "ABCDEFGHIJ"
    already = all(len(o) > 2 and o[0] in letters and o[1] in ".)" for o in options)
    return list(options) if already else [f"{letters[i]}. {o}" for i, o in enumerate(options)]


def build_messages(record: Record, config: PromptConfig | None = None) -> list[dict[str, Any]]:
    """``[{"role": "user", "content": [{"type": "image"}…, {"type": "text", "text": …}]}]``."""
    config = config or PromptConfig()
    content: list[dict[str, Any]] = [{"type": "image"} for _ in record.images]
    content.append({"type": "text", "text": prompt_text(record, config)})
    return [{"role": "user", "content": content}]


def target_text(record: Record, config: PromptConfig | None = None) -> str:
    """The SFT target: the record's reference solution, wrapped to the prompt's style.

    ``solution`` holds the reasoning only (no tags); the think tag is the config's, so one data set
    trains either tag.
    """
    config = config or PromptConfig()
    answer = record.answer
    if record.answer_type == "grounding":
        answer_text = json.dumps({"boxes": [round(v) for v in answer]})
    else:
        answer_text = answer if isinstance(answer, str) else json.dumps(answer)
    if config.is_reasoning(record.task):
        tag = config.think_tag
        thought = record.solution or ""
        return f"<{tag}>{thought}</{tag}><answer>{answer_text}</answer>"
    return f"<answer>{answer_text}</answer>"


# Meta keys evaluation adapters attach for their own rules; the training verifiers never see them.
EVALUATION_ONLY_META = ("eval", "benchmark")


def json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def verifier_meta(record: Record, config: PromptConfig | None = None) -> dict[str, Any]:
    """What ``vlthinker.rewards.score`` needs beside the answer: the record's meta, the prompt's
    reasoning style and tag, and the options. Training and evaluation both score through this."""
    meta = {
        key: value
        for key, value in (record.meta or {}).items()
        if key not in EVALUATION_ONLY_META and json_safe(value)
    }
    if config is not None:
        meta["reasoning"] = config.is_reasoning(record.task)
        meta["think_tag"] = config.think_tag
    if record.options:
        meta["options"] = list(record.options)
    return meta
