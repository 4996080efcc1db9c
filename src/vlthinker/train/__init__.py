"""The G²RPO trainer on TRL: config, reward components, trainer, callbacks and the run.

The names below are imported on first use (module ``__getattr__``), so importing
``vlthinker.train.cli`` — and so ``vlthinker --help`` — does not load torch or TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlthinker.configuration import load_sections
    from vlthinker.train.config import RunConfig, load_config, trainer_config
    from vlthinker.train.trainer import G2RPOConfig, G2RPOTrainer, batch_advantages

_LAZY = {
    "RunConfig": "vlthinker.train.config",
    "load_config": "vlthinker.train.config",
    "load_sections": "vlthinker.configuration",
    "trainer_config": "vlthinker.train.config",
    "G2RPOConfig": "vlthinker.train.trainer",
    "G2RPOTrainer": "vlthinker.train.trainer",
    "batch_advantages": "vlthinker.train.trainer",
}

__all__ = [
    "G2RPOConfig",
    "G2RPOTrainer",
    "RunConfig",
    "batch_advantages",
    "load_config",
    "load_sections",
    "trainer_config",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
