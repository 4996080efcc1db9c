"""An evaluation's output folder: its file names, the settings its predictions were made with,
and the lock that keeps a second live process out.

The predictions file is keyed by the model and the generation settings (``eval_settings.json``):
a run with another model, temperature, top-p, token budget or prompt wording is refused instead
of mixing its predictions with the old ones; ``eval.lock`` (holding the PID) keeps a second live
process out of the folder (a lock left by a process that no longer runs is taken over).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vlthinker import outputs
from vlthinker.outputs import PREDICTIONS_FILE

log = logging.getLogger(__name__)

RESULTS_JSON = outputs.RESULTS_JSON
RESULTS_MD = outputs.RESULTS_FILE
SETTINGS_FILE = outputs.EVAL_SETTINGS_FILE
LOCK_FILE = outputs.EVAL_LOCK


def _model_identity(model_path: str | Path | None) -> tuple[str | None, str | None]:
    """The model as given (an absolute path for a local folder) and a fingerprint of its weight
    files (names, sizes, modification times), so a checkpoint rewritten in place differs."""
    if model_path is None:
        return None, None
    path = Path(str(model_path)).expanduser()
    if not path.exists():
        return str(model_path), None
    files = [path] if path.is_file() else sorted(path.iterdir())
    weights = [
        f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
        for f in files
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".pt", ".gguf")
    ]
    import hashlib

    digest = hashlib.sha256("\n".join(weights).encode()).hexdigest()[:16] if weights else None
    return str(path.resolve()), digest


def generation_key(
    model_path: str | Path | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    prompt_config: Any,
) -> dict[str, Any]:
    """What decides a prediction: the model and the generation and prompt settings."""
    model, weights = _model_identity(model_path)
    prompt = dataclasses.asdict(prompt_config) if dataclasses.is_dataclass(prompt_config) else {}
    return {
        "model": model,
        "weights": weights,
        "max_new_tokens": int(max_new_tokens),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "prompt": json.loads(json.dumps(prompt, default=str)),
    }


_KEY_LABELS = {
    "model": "--model",
    "weights": "the model's weight files",
    "max_new_tokens": "--max-new-tokens",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "prompt": "the prompt settings (--think-tag)",
}


def check_generation_key(out: Path, key: dict[str, Any]) -> dict[str, Any]:
    """The key of this run after comparing it with the one the predictions were made with.

    Raises ``ValueError`` naming each setting that differs when ``out`` holds predictions made
    otherwise. Without ``--model`` (re-rendering the table of a finished run) the stored model
    is kept. A folder from before the key existed is checked against its results.json.
    """
    predictions = out / PREDICTIONS_FILE
    has_predictions = predictions.exists() and predictions.stat().st_size > 0
    stored = read_json(out / SETTINGS_FILE)
    if not stored and has_predictions:
        previous = read_json(out / RESULTS_JSON)
        settings = previous.get("settings") or {}
        stored = {
            name: settings[name]
            for name in ("max_new_tokens", "temperature", "top_p")
            if name in settings
        }
        if previous.get("model") is not None:
            stored["model"] = previous["model"]
        if not stored:
            log.warning(
                "%s holds predictions with no record of the model and settings that made them; "
                "they are taken to match this run",
                predictions,
            )
    if not has_predictions:
        return key
    if key["model"] is None:
        key = {**key, "model": stored.get("model"), "weights": stored.get("weights")}
    elif stored.get("model") is not None and not Path(str(stored["model"])).is_absolute():
        # a key from results.json holds the model as it was typed
        key_model = str(key["model"])
        if Path(str(stored["model"])).expanduser().resolve() == Path(key_model):
            stored = {**stored, "model": key_model}
    differences = [
        f"{_KEY_LABELS[name]}: {stored[name]!r} there, {key[name]!r} now"
        for name in _KEY_LABELS
        if stored.get(name) is not None and stored[name] != key.get(name)
    ]
    if differences:
        raise ValueError(
            f"{predictions} holds predictions made with other settings ("
            + "; ".join(differences)
            + f"). Give another --out, or delete {out} to start over."
        )
    return key


def write_json(path: Path, data: Any) -> None:
    """Write a small JSON file atomically (a crash leaves the old file or the new one)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


# ---------------------------------------------------------------- one process per folder


class FolderLockedError(ValueError):
    """Another live process holds the folder's lock."""


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def folder_lock(
    folder: Path, name: str = LOCK_FILE, what: str = "vlthinker eval"
) -> Iterator[None]:
    """Hold ``folder/name`` (it holds this process's PID and host) for the ``with`` block.

    A lock held by a live process raises :class:`FolderLockedError`; one left by a process
    that no longer runs (on this host) is taken over with a warning.
    """
    path = folder / name
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_json(path)
            pid = holder.get("pid")
            host = holder.get("host")
            if not isinstance(pid, int):
                # being written this instant, or torn: stale once it is a few seconds old
                try:
                    age = time.time() - path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age < 5:
                    raise FolderLockedError(
                        f"{folder} is in use by another {what} (lock file {path})"
                    ) from None
            elif host != mine["host"]:
                raise FolderLockedError(
                    f"{folder} is in use by {what} pid {pid} on host {host} (lock file {path}); "
                    "if that process is gone, delete the lock file"
                ) from None
            elif _process_alive(pid) and pid != os.getpid():
                raise FolderLockedError(
                    f"{folder} is in use by another {what} (pid {pid}); wait for it to finish "
                    "or give another --out"
                ) from None
            log.warning("%s: taking over a stale lock of pid %s, which no longer runs", path, pid)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(mine) + "\n")
        break
    else:
        raise FolderLockedError(f"{folder}: could not take the lock file {path}")
    try:
        yield
    finally:
        if read_json(path).get("pid") == mine["pid"]:
            path.unlink(missing_ok=True)


def read_json(path: Path) -> dict[str, Any]:
    """A small JSON object written earlier (results.json, the settings, the lock); {} if
    missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = [
    "LOCK_FILE",
    "RESULTS_JSON",
    "RESULTS_MD",
    "SETTINGS_FILE",
    "FolderLockedError",
    "check_generation_key",
    "folder_lock",
    "generation_key",
    "read_json",
    "write_json",
]
