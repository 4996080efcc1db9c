"""The G²RPO trainer on TRL: config, reward components, trainer, callbacks and the run."""

from vlthinker.train.config import RunConfig, load_config
from vlthinker.train.trainer import G2RPOTrainer, MethodSettings, batch_advantages

__all__ = ["G2RPOTrainer", "MethodSettings", "RunConfig", "batch_advantages", "load_config"]
