"""The ablation's arms (a small YAML) and its runs: one normal run folder per arm × seed."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from vlthinker.train.config import ConfigError, RunConfig, load_config

ARMS_FILE = "ablation_arms.yaml"
RESULTS_FILE = "results.json"  # written by `train` when a run finished
RUN_CONFIG_FILE = "config.yaml"  # written by `train` when a run starts
# Settings that change how a run is shown or where it lives, not what it computes: a resumed run
# may differ here.
COSMETIC_KEYS = ("logging.progress", "logging.report_to", "logging.plots", "training.output_dir")

RunState = Literal["done", "partial", "new"]


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """A verdict line: ``arm`` minus ``baseline``."""

    label: str
    arm: str
    baseline: str


@dataclass
class ArmsSpec:
    arms: dict[str, Arm]
    claims: list[Claim]
    budgets: dict[str, list[str]]


@dataclass(frozen=True)
class PlannedRun:
    arm: str
    seed: int
    folder: Path
    config: RunConfig


def packaged_arms_file() -> Path:
    return Path(str(resources.files("vlthinker") / "configs" / ARMS_FILE))


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"arms file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"arms file {path} is not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or set(loaded) - {"arms", "claims", "budgets"}:
        raise ConfigError(f"arms file {path}: expected a mapping with arms, claims and budgets")
    return loaded


def load_arms(extra: list[Path] | None = None) -> ArmsSpec:
    """The packaged arms, claims and budgets, then each ``extra`` file's (an arm or budget of the
    same name replaces the earlier one; claims are appended)."""
    spec = ArmsSpec(arms={}, claims=[], budgets={})
    for path in [packaged_arms_file(), *(extra or [])]:
        loaded = _read_spec(path)
        for name, overrides in (loaded.get("arms") or {}).items():
            if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
                raise ConfigError(f"arms file {path}: arm {name!r} must be a list of key=value")
            for override in overrides:
                if "=" not in override:
                    raise ConfigError(
                        f"arms file {path}: arm {name}: {override!r} is not key=value"
                    )
            spec.arms[str(name)] = Arm(str(name), tuple(overrides))
        for claim in loaded.get("claims") or []:
            if not isinstance(claim, dict) or set(claim) != {"label", "arm", "baseline"}:
                raise ConfigError(f"arms file {path}: a claim needs label, arm and baseline")
            spec.claims.append(
                Claim(str(claim["label"]), str(claim["arm"]), str(claim["baseline"]))
            )
        for name, overrides in (loaded.get("budgets") or {}).items():
            spec.budgets[str(name)] = [str(o) for o in overrides or []]
    return spec


def run_folder(out: Path, arm: str, seed: int) -> Path:
    return Path(out) / arm / f"seed{seed}"


def run_overrides(
    arm: Arm, seed: int, folder: Path, common: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """The overrides of one run, in the order they apply: the ``common`` ones (budget and the
    user's), the arm's (an arm is defined by its overrides, so they win), then the seed and the
    folder."""
    return [
        *common,
        *arm.overrides,
        f"training.seed={seed}",
        f"data.seed={seed}",
        f"training.output_dir={folder}",
    ]


def plan_runs(
    base: Path | None,
    arms: list[Arm],
    seeds: list[int],
    out: Path,
    common: list[str] | tuple[str, ...] = (),
) -> list[PlannedRun]:
    """Every arm × seed's config, seed-major so that an interrupted ablation has every arm of the
    first seeds rather than every seed of the first arms."""
    runs = []
    for seed in seeds:
        for arm in arms:
            folder = run_folder(out, arm.name, seed)
            try:
                config = load_config(base, run_overrides(arm, seed, folder, common))
            except ConfigError as error:
                raise ConfigError(f"arm {arm.name}: {error}") from None
            runs.append(PlannedRun(arm.name, seed, folder, config))
    return runs


def run_state(folder: Path) -> RunState:
    """``done`` when the run wrote its results, ``partial`` when the folder holds anything else,
    ``new`` when it is absent or empty."""
    folder = Path(folder)
    if (folder / RESULTS_FILE).exists():
        return "done"
    if folder.is_dir() and any(folder.iterdir()):
        return "partial"
    return "new"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key != "tasks":
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def config_differences(planned: RunConfig, folder: Path) -> list[str]:
    """Keys whose value in the folder's ``config.yaml`` differs from the planned run's (cosmetic
    settings aside); empty when the folder has no config yet."""
    path = Path(folder) / RUN_CONFIG_FILE
    if not path.exists():
        return []
    stored = _flatten(load_config(path).to_dict())
    wanted = _flatten(planned.to_dict())
    return [
        f"{key}: {stored.get(key)!r} there, {wanted.get(key)!r} planned"
        for key in sorted(stored.keys() | wanted.keys())
        if key not in COSMETIC_KEYS and stored.get(key) != wanted.get(key)
    ]


def check_folder(run: PlannedRun) -> None:
    """Refuse to count or resume a run made with other settings than the planned ones."""
    differences = config_differences(run.config, run.folder)
    if differences:
        raise ConfigError(
            f"{run.folder} holds a run with other settings ({'; '.join(differences[:3])}); "
            "use another --out or remove that folder"
        )


def in_use_by(folder: Path) -> int | None:
    """The PID of a live training process holding the folder's ``train.lock``, else None."""
    from vlthinker.train.run_folder import RunLock

    return RunLock(folder).holder() if Path(folder).is_dir() else None


def clear_unstarted(folder: Path) -> bool:
    """A partial folder without a ``config.yaml`` holds no run to resume: what a run wrote there
    is removed (other files stay) so the run starts afresh. Returns whether it was such a folder;
    one with a config resumes instead (from its last complete checkpoint, or from step 0 with its
    logs reset when it has none — what ``train(config, resume=folder)`` does)."""
    from vlthinker.train.run_folder import clear_run

    if run_state(folder) != "partial" or (Path(folder) / RUN_CONFIG_FILE).exists():
        return False
    clear_run(folder)
    return True
