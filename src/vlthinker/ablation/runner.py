"""Training the ablation's runs: in this process one after another, or as subprocesses.

A finished run (its ``results.json`` exists) is skipped; an unfinished one is resumed with
``train(config, resume=folder)`` — what ``vlthinker train --resume`` does: from its last complete
checkpoint, or from step 0 when it stopped before the first; a folder another live process is
training in is refused.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from vlthinker.ablation.plan import (
    PlannedRun,
    check_folder,
    clear_unstarted,
    in_use_by,
    run_state,
)
from vlthinker.train.config import ConfigError, dump_config

PLAN_SUFFIX = ".yaml"  # OUT/<arm>/seed<k>.yaml: the planned config a subprocess starts from
LOG_SUFFIX = ".log"  # OUT/<arm>/seed<k>.log: a subprocess's output


@dataclass
class Outcome:
    run: PlannedRun
    status: str  # "skipped" (already done), "trained", "resumed" or "failed"
    seconds: float = 0.0
    message: str = ""


def prepare(run: PlannedRun) -> str:
    """Check the folder against the plan and say what is to be done: ``done``, ``resume`` or
    ``new`` (:func:`~vlthinker.ablation.plan.clear_unstarted`)."""
    pid = in_use_by(run.folder)
    if pid is not None:
        raise ConfigError(f"{run.folder} is in use by another training process (PID {pid})")
    check_folder(run)
    state = run_state(run.folder)
    if state == "done":
        return "done"
    if state == "partial" and not clear_unstarted(run.folder):
        return "resume"
    return "new"


def train_in_process(run: PlannedRun, action: str) -> None:
    from vlthinker.train.run import train

    train(run.config, resume=run.folder if action == "resume" else None)


def run_sequentially(
    runs: list[PlannedRun],
    trainer: Callable[[PlannedRun, str], None] = train_in_process,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """Each run in this process, one after another; a failure stops the ablation (rerunning the
    command resumes it)."""
    outcomes = []
    for number, run in enumerate(runs, 1):
        action = prepare(run)
        label = f"[{number}/{len(runs)}] {run.arm} seed {run.seed}"
        if action == "done":
            say(f"{label}: finished before, skipped")
            outcomes.append(Outcome(run, "skipped"))
            continue
        say(f"{label}: {'resuming' if action == 'resume' else 'training'} in {run.folder}")
        start = time.monotonic()
        trainer(run, action)
        seconds = time.monotonic() - start
        say(f"{label}: done in {seconds / 60:.1f} min")
        outcomes.append(Outcome(run, "resumed" if action == "resume" else "trained", seconds))
    return outcomes


def subprocess_command(run: PlannedRun, action: str, launcher: str | None = None) -> list[str]:
    """``vlthinker train`` for one run: from its planned config, or ``--resume`` its folder.
    ``launcher`` (e.g. ``accelerate launch --num_processes 8``) replaces ``python``."""
    prefix = shlex.split(launcher) if launcher else [sys.executable]
    if action == "resume":
        return [*prefix, "-m", "vlthinker.cli", "train", "--resume", str(run.folder)]
    plan = run.folder.with_suffix(PLAN_SUFFIX)
    plan.parent.mkdir(parents=True, exist_ok=True)
    dump_config(run.config, plan)
    return [*prefix, "-m", "vlthinker.cli", "train", "--config", str(plan)]


def device_slots(parallel: int, gpus: int) -> list[str | None]:
    """One slot per concurrent run: a GPU index each where there are GPUs (at most one run per
    GPU), else ``parallel`` CPU slots (``None``)."""
    if gpus > 0:
        return [str(i) for i in range(min(parallel, gpus))]
    return [None] * max(parallel, 1)


def run_in_subprocesses(
    runs: list[PlannedRun],
    parallel: int,
    gpus: int,
    launcher: str | None = None,
    say: Callable[[str], None] = print,
    poll_seconds: float = 1.0,
) -> list[Outcome]:
    """Up to ``parallel`` runs at once, each a ``vlthinker train`` subprocess logging to
    ``OUT/<arm>/seed<k>.log``; with GPUs each gets its own (``CUDA_VISIBLE_DEVICES``), on CPU each
    gets an equal share of the cores (``OMP_NUM_THREADS``) unless that is set already. A failed
    run is reported and the others go on."""
    slots = device_slots(parallel, gpus)
    free = list(slots)
    threads = max(1, (os.cpu_count() or 1) // len(slots))
    waiting = list(enumerate(runs, 1))
    active: list[tuple[subprocess.Popen, PlannedRun, str, str | None, float, int]] = []
    outcomes: list[Outcome] = []
    while waiting or active:
        while waiting and free:
            number, run = waiting.pop(0)
            label = f"[{number}/{len(runs)}] {run.arm} seed {run.seed}"
            action = prepare(run)
            if action == "done":
                say(f"{label}: finished before, skipped")
                outcomes.append(Outcome(run, "skipped"))
                continue
            slot = free.pop(0)
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            if slot is not None:
                env["CUDA_VISIBLE_DEVICES"] = slot
            else:
                env.setdefault("OMP_NUM_THREADS", str(threads))
            log = run.folder.with_suffix(LOG_SUFFIX)
            log.parent.mkdir(parents=True, exist_ok=True)
            command = subprocess_command(run, action, launcher)
            with log.open("a") as handle:
                process = subprocess.Popen(command, env=env, stdout=handle, stderr=handle)
            device = f" on GPU {slot}" if slot is not None else ""
            say(f"{label}: {'resuming' if action == 'resume' else 'training'}{device} → {log}")
            active.append((process, run, action, slot, time.monotonic(), number))
        time.sleep(poll_seconds if active else 0)
        for entry in list(active):
            process, run, action, slot, start, number = entry
            if process.poll() is None:
                continue
            active.remove(entry)
            free.append(slot)
            seconds = time.monotonic() - start
            label = f"[{number}/{len(runs)}] {run.arm} seed {run.seed}"
            if process.returncode == 0:
                say(f"{label}: done in {seconds / 60:.1f} min")
                status = "resumed" if action == "resume" else "trained"
                outcomes.append(Outcome(run, status, seconds))
            else:
                log = run.folder.with_suffix(LOG_SUFFIX)
                say(f"{label}: FAILED (exit {process.returncode}); see {log}")
                outcomes.append(
                    Outcome(run, "failed", seconds, f"exit {process.returncode}, log {log}")
                )
    return outcomes
