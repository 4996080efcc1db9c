"""`vlthinker sft`: cold-start supervised fine-tuning with TRL's SFTTrainer.

Rows are prompt–completion pairs: the record's prompt (the same text RL uses) and its reference
solution wrapped in the configured tags; the loss is on the completion only. The same command
fine-tunes the embedded tiny model on CPU and a Qwen3-VL checkpoint on GPUs (bf16, optional LoRA).

Settings come from a YAML file of sections (``model``, ``data``, ``training``, ``logging``) read
by the loader ``vlthinker train`` uses (:func:`vlthinker.configuration.load_sections`), then
``--flag`` options, then ``key.sub=value`` overrides; :data:`SFT_KEYS` says where each setting
lives in the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlthinker.configuration import (
    ConfigError,
    Override,
    flat_sections,
    flat_settings,
    load_sections,
)
from vlthinker.data import (
    PromptConfig,
    Record,
    RecordError,
    load_records,
    prompt_text,
    synthetic,
    target_text,
)


@dataclass
class SFTSettings:
    model: str = "embedded:tiny_vlm"
    data: str = "synthetic"  # "synthetic" or a path readable by vlthinker.data.load_records
    out: str = "runs/sft"
    synthetic_size: int = 6000
    synthetic_seed: int = 1
    difficulty: float = 0.0
    image_size: int = 112
    epochs: float = 1.0
    batch_size: int = 32
    gradient_accumulation: int = 1
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    bf16: bool = False
    lora_rank: int = 0
    think_tag: str = "think"
    seed: int = 0
    logging_steps: int = 10
    report_to: list[str] = field(default_factory=lambda: ["none"])


def sft_rows(records: Sequence[Record], prompt_config: PromptConfig) -> Any:
    """Records → TRL prompt–completion rows with images (conversational form)."""
    from datasets import Dataset

    rows = []
    for record in records:
        if prompt_config.is_reasoning(record.task) and not record.solution:
            raise ValueError(
                f"{record.origin}: reasoning task {record.task!r} needs a 'solution' for SFT"
            )
        rows.append(
            {
                "prompt": [{"role": "user", "content": prompt_text(record, prompt_config)}],
                "completion": [
                    {"role": "assistant", "content": target_text(record, prompt_config)}
                ],
                "images": record.load_images(),
            }
        )
    return Dataset.from_list(rows)


def load_sft_records(settings: SFTSettings) -> list[Record]:
    if settings.data == "synthetic":
        return synthetic.generate(
            settings.synthetic_size,
            seed=settings.synthetic_seed,
            difficulty=settings.difficulty,
            image_size=settings.image_size,
        )
    return load_records(settings.data)


def run_sft(settings: SFTSettings) -> Path:
    """Fine-tune, save model + processor to ``settings.out``, and return that folder."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from vlthinker.models import load_policy, save_processor

    torch.manual_seed(settings.seed)
    prompt_config = PromptConfig(think_tag=settings.think_tag)
    records = load_sft_records(settings)  # data problems surface before the model loads
    if not records:
        raise RecordError(str(settings.data), "<file>", "no records to fine-tune on")
    model, processor = load_policy(settings.model, dtype="bfloat16" if settings.bf16 else "float32")
    peft_config = None
    if settings.lora_rank > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=2 * settings.lora_rank,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    rows = sft_rows(records, prompt_config)
    out = Path(settings.out)
    args = SFTConfig(
        output_dir=str(out),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        bf16=settings.bf16,
        completion_only_loss=True,
        max_length=None,  # truncating would cut image tokens out of the prompt
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to=settings.report_to,
        seed=settings.seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        processing_class=processor,
        peft_config=peft_config,
    )
    started = time.perf_counter()
    trainer.train()
    model = trainer.model
    if peft_config is not None:
        model = model.merge_and_unload()
    model.save_pretrained(out)
    save_processor(processor, out)
    summary = {
        "settings": asdict(settings),
        "seconds": round(time.perf_counter() - started, 1),
        "log": trainer.state.log_history,
    }
    (out / "sft_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out


#: Help for each option of ``vlthinker sft`` (one per ``SFTSettings`` field).
OPTION_HELP: dict[str, str] = {
    "model": "base checkpoint: a local folder, or embedded:tiny_vlm (the shipped tiny model)",
    "data": "'synthetic' or a path readable by vlthinker.data (file, folder, saved dataset)",
    "out": "folder the fine-tuned model and processor are saved to",
    "synthetic_size": "number of synthetic items when --data is synthetic",
    "synthetic_seed": "seed of the synthetic items",
    "difficulty": "synthetic difficulty, 0 (easy) … 1 (hard)",
    "image_size": "side of the synthetic images in pixels",
    "epochs": "passes over the data (may be fractional; must be > 0)",
    "batch_size": "examples per device per optimizer micro-step",
    "gradient_accumulation": "micro-steps accumulated per optimizer step",
    "learning_rate": "peak learning rate (cosine schedule)",
    "warmup_ratio": "warm-up length as a fraction of training, in [0, 1)",
    "weight_decay": "AdamW weight decay",
    "bf16": "train in bfloat16 (GPU)",
    "lora_rank": "LoRA rank; 0 fine-tunes every weight",
    "think_tag": "reasoning tag the targets use (e.g. think)",
    "seed": "random seed",
    "logging_steps": "log every N optimizer steps",
    "report_to": "logging integrations, e.g. none or tensorboard",
}

# (minimum, inclusive?) per numeric option; maxima where a range is closed.
_RANGES: dict[str, tuple[float, bool, float | None]] = {
    "synthetic_size": (1, True, None),
    "difficulty": (0.0, True, 1.0),
    "image_size": (1, True, None),
    "epochs": (0.0, False, None),
    "batch_size": (1, True, None),
    "gradient_accumulation": (1, True, None),
    "learning_rate": (0.0, False, None),
    "warmup_ratio": (0.0, True, 1.0),
    "weight_decay": (0.0, True, None),
    "lora_rank": (0, True, None),
    "logging_steps": (1, True, None),
}


#: Where each setting lives in an SFT config file (``section.key``, named as in a training config
#: where the meaning is the same); its command-line flag is ``--<setting>`` (``_`` → ``-``).
SFT_KEYS: dict[str, str] = {
    "model": "model.path",
    "lora_rank": "model.lora_rank",
    "data": "data.train",
    "synthetic_size": "data.train_size",
    "synthetic_seed": "data.seed",
    "difficulty": "data.difficulty",
    "image_size": "data.image_size",
    "think_tag": "data.think_tag",
    "out": "training.output_dir",
    "epochs": "training.epochs",
    "batch_size": "training.per_device_batch_size",
    "gradient_accumulation": "training.gradient_accumulation_steps",
    "learning_rate": "training.learning_rate",
    "warmup_ratio": "training.warmup_ratio",
    "weight_decay": "training.weight_decay",
    "bf16": "training.bf16",
    "seed": "training.seed",
    "logging_steps": "logging.logging_steps",
    "report_to": "logging.report_to",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: The sectioned form of :class:`SFTSettings` that a config file holds.
SFTSections = flat_sections(SFTSettings, SFT_KEYS, "SFT")


def load_sft_settings(
    path: str | Path | None = None, overrides: Sequence[Override] | None = None
) -> SFTSettings:
    """:class:`SFTSettings` from an SFT config file (or the defaults) plus overrides, type- and
    range-checked: a bad value raises :class:`ConfigError` naming its key (and flag)."""
    sections = load_sections(SFTSections, path, overrides)
    settings = flat_settings(SFTSettings, SFT_KEYS, sections)
    validate_settings(settings)
    return settings


def validate_settings(settings: SFTSettings) -> None:
    """Raise :class:`ConfigError` naming the key and the flag of a value outside its range."""
    for name, (low, inclusive, high) in _RANGES.items():
        value = getattr(settings, name)
        where = f"{SFT_KEYS[name]} ({_flag(name)})"
        too_low = value < low if inclusive else value <= low
        if too_low:
            bound = f"at least {low:g}" if inclusive else f"greater than {low:g}"
            raise ConfigError(f"{where} must be {bound}, got {value:g}")
        if high is not None and value > high:
            raise ConfigError(f"{where} must be at most {high:g}, got {value:g}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sft",
        help="cold-start supervised fine-tuning (TRL SFTTrainer)",
        description="Supervised fine-tuning on reference solutions (loss on the completion only). "
        "Settings: the defaults, then --config FILE (sections model, data, training, logging), "
        "then the flags below, then key.sub=value overrides.",
    )
    parser.add_argument("--config", type=Path, help="SFT config YAML (sections as in the README)")
    for setting in dataclasses.fields(SFTSettings):
        name = setting.name
        default = getattr(SFTSettings(), name)
        text = f"{OPTION_HELP[name]} [{SFT_KEYS[name]}; default: {default}]"
        # SUPPRESS: a flag not given leaves the file's value (or the default) in place.
        if isinstance(default, bool):
            parser.add_argument(
                _flag(name), action="store_true", default=argparse.SUPPRESS, help=text
            )
        elif isinstance(default, list):
            parser.add_argument(_flag(name), nargs="+", default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(
                _flag(name), type=type(default), default=argparse.SUPPRESS, help=text
            )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="config overrides, e.g. training.epochs=2 data.train=data/train.jsonl",
    )
    parser.set_defaults(func=_run_from_args)


def _run_from_args(args: argparse.Namespace) -> int:
    flags = [(SFT_KEYS[name], getattr(args, name)) for name in SFT_KEYS if hasattr(args, name)]
    try:
        settings = load_sft_settings(args.config, [*flags, *args.overrides])
    except ConfigError as error:
        from vlthinker.train.cli import with_source

        raise SystemExit(
            f"vlthinker sft: {with_source(error, args.config, args.overrides)}"
        ) from None
    try:
        out = run_sft(settings)
    except (RecordError, FileNotFoundError) as error:
        raise SystemExit(f"vlthinker sft: {error}") from None
    print(f"saved the fine-tuned model and processor to {out}")
    return 0
