"""User plug-ins: modules imported before a config is checked, so what they register (an
estimator, an answer type, a benchmark — docs/extending.md) is known to the run.

A config names them in its top-level ``plugins`` list, either as an importable module
(``my_project.estimators``) or as a ``.py`` file (relative paths are read from the config file's
folder). Being part of the config, they travel with it: a resumed run and every ablation arm
import them again.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


class PluginError(ImportError):
    """A plug-in module could not be imported; the message names it and the cause."""


def plugin_paths(names: Sequence[str], base: Path | None) -> list[str]:
    """``names`` with every ``.py`` file made absolute (relative ones are read from ``base``)."""
    resolved = []
    for name in names:
        if name.endswith(".py"):
            path = Path(name)
            name = str(
                (base / path if base is not None and not path.is_absolute() else path).resolve()
            )
        resolved.append(name)
    return resolved


def import_plugins(names: Sequence[str], base: Path | None = None) -> list[ModuleType]:
    """Import every plug-in of ``names`` once (a module already imported is not re-run)."""
    return [_import_one(name) for name in plugin_paths(names, base)]


def _import_one(name: str) -> ModuleType:
    if not name.endswith(".py"):
        try:
            return importlib.import_module(name)
        except Exception as error:  # the plug-in's own failure, whatever it is, names it
            raise PluginError(f"plugin {name!r} could not be imported: {error}") from error
    path = Path(name)
    module_name = f"vlthinker_plugin_{abs(hash(str(path))):x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if not path.is_file():
        raise PluginError(f"plugin {name!r}: {path} is not a file")
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise PluginError(f"plugin {name!r} ({path}) failed while importing: {error}") from error
    return module
