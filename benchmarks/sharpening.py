"""How much of a run's gain is sharpening? A run that trained the output norm's gain
(``model.lora_modules_to_save: [language_model.norm]``, the demo) against two counterfactuals.

    python benchmarks/sharpening.py [RUN_DIR]          # default: runs/demo

The gain multiplies every logit, so scaling it by r samples at temperature 1/r. With r the mean
ratio of the trained gain to the start model's, the script validates, on the run's own items,
seed and samples:

- **start model at the matched temperature**: the start model with its gain × r, i.e. what a
  learned temperature alone would give;
- **trained adapter, start gain**: the trained model with the start gain put back, i.e. what
  everything but the gain learned.

and prints, per task, the paired changes (start pass → each counterfactual, and each
counterfactual → the trained model's last pass) with two-standard-error bands. It costs two
validation passes of the run's size.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file

from vlthinker.models import load_policy, resolve_model_path
from vlthinker.train.callbacks import ValidationCallback
from vlthinker.train.config import RunConfig, load_config, trainer_config
from vlthinker.train.report import mean_change_band, paired_change, task_items
from vlthinker.train.run import load_data, prompt_config_for
from vlthinker.train.run_folder import read_validation_items

GAIN = "model.language_model.norm.weight"


def output_gain(folder: Path) -> torch.Tensor:
    """The output norm's gain in a checkpoint folder (every ``*.safetensors`` shard searched)."""
    for shard in sorted(folder.glob("*.safetensors")):
        weights = load_file(shard)
        if GAIN in weights:
            return weights[GAIN]
    raise SystemExit(f"{folder}: no {GAIN} in its safetensors files")


def validate(
    run: Path, config: RunConfig, records: list, name: str, model_path: Path, gain: torch.Tensor
) -> dict:
    """One validation pass of ``run``'s config over its validation ``records`` with the model's
    output gain replaced; returns its per-item scores (also written under
    ``run/sharpening/<name>``)."""
    model, processor = load_policy(model_path, dtype=config.model.dtype)
    with torch.no_grad():
        model.model.language_model.norm.weight.copy_(gain)
    out = run / "sharpening" / name
    shutil.rmtree(out, ignore_errors=True)  # a pass already logged there would be skipped
    out.mkdir(parents=True)
    callback = ValidationCallback(
        processor=processor,
        records=records,
        prompt_config=prompt_config_for(config),
        args=trainer_config(config, out),
    )
    callback._validate(model, 0, SimpleNamespace(is_world_process_zero=True))
    return read_validation_items(out)[0]


def print_changes(title: str, before: dict, after: dict, tasks: list[str]) -> None:
    print(f"\n{title}")
    print("| task | Δ accuracy | ± 2 s.e. (paired) |\n|---|---:|---:|")
    changes, ses = [], []
    for task in tasks:
        mean, se, _ = paired_change(task_items(before, task), task_items(after, task))
        changes.append(mean)
        ses.append(se)
        print(f"| {task} | {mean:+.3f} | ±{2 * se:.3f} |")
    print(f"| **mean** | {sum(changes) / len(tasks):+.3f} | ±{mean_change_band(ses):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=Path("runs/demo"))
    args = parser.parse_args()
    run: Path = args.run
    config = load_config(run / "config.yaml", [])
    start_path = resolve_model_path(config.model.path)
    start_gain, trained_gain = output_gain(start_path), output_gain(run / "final")
    ratio = (trained_gain / start_gain).mean().item()
    print(f"{run}: trained / start output gain, mean {ratio:.3f} (temperature {1 / ratio:.2f})")
    passes = read_validation_items(run)
    first, last = passes[min(passes)], passes[max(passes)]
    tasks = list(config.data.tasks)
    _, records = load_data(config)
    matched = validate(
        run, config, records, "start_matched_temperature", start_path, start_gain * ratio
    )
    adapter = validate(run, config, records, "trained_start_gain", run / "final", start_gain)
    print_changes("start model at the matched temperature − start model", first, matched, tasks)
    print_changes("trained model − start model at the matched temperature", matched, last, tasks)
    print_changes("trained adapter with the start gain − start model", first, adapter, tasks)


if __name__ == "__main__":
    main()
