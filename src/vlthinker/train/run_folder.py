"""The run folder: metrics.jsonl, and the checkpoint to resume from after a crash or SIGKILL."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vlthinker.outputs import (
    BATCHES_FILE,  # noqa: F401 (run.py reads it from here)
    CARD_FILE,
    CONFIG_FILE,
    LOG_FILES,
    METRICS_FILE,
    RESULTS_FILE,
    RUN_FILES,
    VALIDATION_ITEMS_FILE,
)
from vlthinker.outputs import TRAIN_LOCK as LOCK_FILE

# Written by HF Trainer after the model, optimizer, scheduler and RNG state: a checkpoint whose
# trainer_state.json parses was saved completely.
_STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def latest_complete_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The highest-step ``checkpoint-N`` whose saving finished; partial ones are skipped."""
    found = []
    for child in Path(run_dir).iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and _is_complete(child):
            found.append(Checkpoint(child, int(match.group(1))))
    return max(found, key=lambda c: c.step, default=None)


def _is_complete(path: Path) -> bool:
    try:
        state = json.loads((path / _STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return has_weights and "global_step" in state


def truncate_metrics(run_dir: str | Path, step: int, name: str = METRICS_FILE) -> int:
    """Drop lines of ``name`` logged after ``step`` (they will be logged again); returns how
    many. A line cut short by the kill is dropped too."""
    path = Path(run_dir) / name
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if entry.get("step", 0) > step:
            dropped += 1
        else:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept))
    return dropped


def append_metrics(run_dir: str | Path, entry: dict[str, Any]) -> None:
    with (Path(run_dir) / METRICS_FILE).open("a") as handle:
        handle.write(json.dumps(entry, allow_nan=True) + "\n")


def append_log(run_dir: str | Path, name: str, step: int, record_ids: list[str]) -> None:
    with (Path(run_dir) / name).open("a") as handle:
        handle.write(json.dumps({"step": step, "record_ids": record_ids}) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_validation_items(
    run_dir: str | Path, step: int, items: dict[str, tuple[str, float]]
) -> None:
    """One validation pass's per-item ``(task, score)``, keyed by the item's place."""
    with (Path(run_dir) / VALIDATION_ITEMS_FILE).open("a") as handle:
        handle.write(json.dumps({"step": step, "items": items}) + "\n")


def read_validation_items(run_dir: str | Path) -> dict[int, dict[str, tuple[str, float]]]:
    """Per validation step, every item's ``(task, score)``; a later line for a step wins."""
    path = Path(run_dir) / VALIDATION_ITEMS_FILE
    if not path.exists():
        return {}
    passes: dict[int, dict[str, tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            passes[int(entry["step"])] = {k: (v[0], float(v[1])) for k, v in entry["items"].items()}
    return passes


# ------------------------------------------------------------------ run-folder ownership
#: The first line of the run card vlthinker writes: a README.md without it is not ours.
CARD_MARKER = "<!-- vlthinker run card -->"
#: The first words of the results.md a run writes (its validation caption).
RESULTS_START = "Validation: "


class RunFolderError(RuntimeError):
    """The output folder cannot be used as asked (it holds a run, or another process uses it)."""


def make_writable_folder(folder: Path) -> None:
    """Create ``folder`` and prove it takes a file, before any training starts: a read-only
    folder or file system fails here with one message instead of at the first checkpoint."""
    probe = folder / ".vlthinker-write-check"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunFolderError(
            f"training.output_dir {folder} cannot be written: {error.strerror or error}"
        ) from None


_DISK_FULL = ("No space left on device", "unexpected pos", "file write failed")


def write_failure(error: BaseException, folder: Path) -> str | None:
    """A message for a write that failed for lack of disk space or permission, else None.

    torch's checkpoint writer reports a full disk as ``unexpected pos …`` or ``file write
    failed`` without naming the disk; the message says what happened and how to continue.
    """
    text = str(error)
    full = getattr(error, "errno", None) == errno.ENOSPC or any(p in text for p in _DISK_FULL)
    if full:
        return (
            f"the disk holding {folder} is full (writing failed: {text.strip()[:120]}); free "
            f"space, then continue with --resume {folder} (the last complete checkpoint is kept)"
        )
    if getattr(error, "errno", None) in (errno.EACCES, errno.EROFS, errno.EPERM):
        return f"{folder} cannot be written ({error.strerror}): {getattr(error, 'filename', '')}"
    return None


def run_contents(run_dir: str | Path) -> list[str]:
    """The names in ``run_dir`` that a training run wrote (empty: the folder holds no run).

    A run is known by what only a run writes: its step logs, ``checkpoint-N`` folders, its run
    card, or a ``config.yaml`` / ``results.md`` in a run's own form; a user's file of such a
    name is not a run's and is never counted. Beside such evidence, the run's other names
    (``plots.png``, ``tensorboard/``, ``final/``, ``results.json``) are its too.
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        return []
    names = [
        name
        for name in RUN_FILES
        if (folder / name).exists()
        and (name not in (CONFIG_FILE, RESULTS_FILE) or _in_a_runs_form(folder / name))
    ]
    names += sorted(c.name for c in folder.iterdir() if _CHECKPOINT.match(c.name) and c.is_dir())
    if is_our_card(folder / CARD_FILE):
        names.append(CARD_FILE)
    evidence = (*LOG_FILES, CONFIG_FILE, RESULTS_FILE, CARD_FILE)
    if not any(n in evidence or _CHECKPOINT.match(n) for n in names):
        return []
    return names


def _in_a_runs_form(path: Path) -> bool:
    """Whether ``path`` (a ``results.md`` or ``config.yaml``) is in the form a run writes."""
    try:
        if path.name == RESULTS_FILE:
            with path.open(encoding="utf-8", errors="replace") as handle:
                return handle.readline().startswith(RESULTS_START)
        tree = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(tree, dict) and {"model", "training", "algorithm"} <= set(tree)


def is_our_card(path: Path) -> bool:
    """Whether ``path`` is a run card vlthinker wrote (so it may be rewritten)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().strip() == CARD_MARKER
    except OSError:
        return False


def clear_run(run_dir: str | Path) -> list[str]:
    """Delete what a training run wrote in ``run_dir`` (other files stay); returns the names."""
    return _remove(Path(run_dir), run_contents(run_dir))


def reset_logs(run_dir: str | Path) -> list[str]:
    """Empty the step logs (and TensorBoard's) of a run that restarts from step 0."""
    folder = Path(run_dir)
    return _remove(folder, [n for n in (*LOG_FILES, "tensorboard") if (folder / n).exists()])


def _remove(folder: Path, names: list[str]) -> list[str]:
    """Delete the named files and folders of ``folder``; returns the names."""
    import shutil

    for name in names:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return names


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


class RunLock:
    """``train.lock`` in the run folder: the PID and host of the training process using it.

    A second live process is refused; a lock left by a process that no longer runs (killed,
    crashed) is taken over. Taken with ``O_EXCL`` so two starting processes cannot both win.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False

    def holder(self) -> int | None:
        """The PID of a live process holding the lock on this host, else None."""
        try:
            entry = json.loads(self.path.read_text())
            pid, host = int(entry["pid"]), str(entry.get("host", ""))
        except (OSError, ValueError, KeyError, TypeError):
            # Being written this instant (held), or torn by a kill long ago (stale).
            try:
                fresh = time.time() - self.path.stat().st_mtime < 5
            except OSError:
                return None
            return -1 if fresh else None
        if host and host != socket.gethostname():
            return pid  # another machine's process: its liveness cannot be checked here
        return pid if pid != os.getpid() and _pid_alive(pid) else None

    def acquire(self) -> None:
        entry = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = self.holder()
                if pid is not None:
                    who = f"PID {pid}" if pid > 0 else "starting"
                    raise RunFolderError(
                        f"{self.path.parent} is in use by another training process ({who}, "
                        f"lock file {self.path}); wait for it to end or stop it — a lock left by "
                        "a process that no longer runs is taken over"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(entry + "\n")
            self.held = True
            return
        raise RunFolderError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
