"""Greedy validation of an ablation run's start and end models: what was learned beyond
sharpening the sampler.

A run validates its sampling policy (the demo: temperature 1). Training the output norm's gain can
raise sampled accuracy by sharpening alone, which greedy decoding does not see; so after training
the ablation answers every validation item of a run once, greedily, with the start model and with
the run's final model, and pairs the two by item. Each pass is a normal validation pass
(:class:`~vlthinker.train.callbacks.ValidationCallback`) written under ``<run>/greedy/<start|end>``;
a pass already there is reused.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

GREEDY_DIR = "greedy"
PASSES = ("start", "end")
STAMP_FILE = "final_model_stamp"


def greedy_folder(run: Path, which: str) -> Path:
    return Path(run) / GREEDY_DIR / which


def final_stamp(run: Path) -> str:
    """Which training of ``run`` the end pass scored: its ``results.json``'s modification time (a
    run resumed or trained again writes it anew, and its cached end pass no longer counts)."""
    results = Path(run) / "results.json"
    return str(results.stat().st_mtime_ns) if results.exists() else ""


def greedy_items(run: Path) -> dict[str, dict[str, tuple[str, float]]] | None:
    """The start and end greedy passes' per-item ``(task, score)`` of ``run``; None until both
    exist for the run's current final model."""
    from vlthinker.train.run_folder import read_validation_items

    stamp = greedy_folder(run, "end") / STAMP_FILE
    if not stamp.exists() or stamp.read_text() != final_stamp(run):
        return None
    found = {}
    for which in PASSES:
        passes = read_validation_items(greedy_folder(run, which))
        if not passes:
            return None
        found[which] = passes[min(passes)]
    return found


def validate_greedily(run: Path) -> None:
    """Write the missing greedy passes of ``run`` (its ``config.yaml`` and ``final`` model)."""
    import torch

    from vlthinker.models import load_policy, resolve_model_path
    from vlthinker.train.callbacks import ValidationCallback
    from vlthinker.train.config import load_config, trainer_config
    from vlthinker.train.run import load_data, prompt_config_for
    from vlthinker.train.run_folder import read_validation_items

    run = Path(run)
    config = load_config(run / "config.yaml", [])
    _, records = load_data(config)
    models = {"start": resolve_model_path(config.model.path), "end": run / "final"}
    stamp = greedy_folder(run, "end") / STAMP_FILE
    if stamp.exists() and stamp.read_text() != final_stamp(run):
        shutil.rmtree(greedy_folder(run, "end"))  # scored an earlier final model
    for which in PASSES:
        out = greedy_folder(run, which)
        if read_validation_items(out):
            continue
        out.mkdir(parents=True, exist_ok=True)
        model, processor = load_policy(models[which], dtype=config.model.dtype)
        args = trainer_config(config, out)
        args.validation_temperature = 0.0
        args.validation_samples = 1
        args.report_to = []
        args.disable_tqdm = True
        callback = ValidationCallback(
            processor=processor, records=records, prompt_config=prompt_config_for(config), args=args
        )
        with torch.no_grad():
            callback._validate(model, 0, SimpleNamespace(is_world_process_zero=True))
    stamp.write_text(final_stamp(run))


def _validate_with_threads(run: str, threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    validate_greedily(Path(run))
    return run


def validate_all(runs: list[Path], parallel: int = 1, say=print) -> None:
    """:func:`validate_greedily` for every run still missing a pass, ``parallel`` at a time."""
    missing = [run for run in runs if greedy_items(run) is None]
    if not missing:
        return
    say(f"greedy validation of {len(missing)} run(s) (start and final model)")
    if parallel <= 1:
        for run in missing:
            validate_greedily(run)
        return
    threads = max(1, (os.cpu_count() or 1) // parallel)
    with ProcessPoolExecutor(max_workers=parallel) as pool:
        for done in pool.map(
            _validate_with_threads, [str(r) for r in missing], [threads] * len(missing)
        ):
            say(f"  greedy: {done}")
