"""vlthinker: G²RPO reinforcement learning for vision-language (and text) models on TRL.

``from vlthinker import G2RPOConfig, G2RPOTrainer`` turns a TRL GRPO script into a G²RPO one
(docs/trl.md). The two names are imported on first use, so ``import vlthinker`` — and the
``vlthinker`` command's ``--help`` — does not load torch or TRL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from vlthinker.train.trainer import G2RPOConfig, G2RPOTrainer

__all__ = ["G2RPOConfig", "G2RPOTrainer", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("G2RPOConfig", "G2RPOTrainer"):
        from vlthinker.train import trainer

        value = getattr(trainer, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
