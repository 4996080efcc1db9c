"""Data: typed records, readers for every supported format, prompts, and the synthetic suite."""

from vlthinker.data import synthetic
from vlthinker.data.prompts import (
    PromptConfig,
    build_messages,
    prompt_text,
    target_text,
    verifier_meta,
)
from vlthinker.data.readers import (
    REFERENCE_PROBLEM_TYPES,
    REFERENCE_TASK_TYPES,
    LoadReport,
    iter_records,
    load_records,
    to_record,
)
from vlthinker.data.records import ANSWER_TYPES, TASKS, Record, RecordError
from vlthinker.data.writer import write_records

__all__ = [
    "ANSWER_TYPES",
    "REFERENCE_PROBLEM_TYPES",
    "REFERENCE_TASK_TYPES",
    "TASKS",
    "LoadReport",
    "PromptConfig",
    "Record",
    "RecordError",
    "build_messages",
    "iter_records",
    "load_records",
    "prompt_text",
    "synthetic",
    "target_text",
    "to_record",
    "verifier_meta",
    "write_records",
]
