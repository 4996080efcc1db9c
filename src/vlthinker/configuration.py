"""The configuration loader every command shares: YAML files of dataclass-backed sections with
``key.sub=value`` overrides.

Every value is checked against its field's type when loaded; a wrong key or value fails with a
message naming the full key (``algorithm.clip_high``), never silently, and a key given twice in one
file is refused. :func:`load_sections` reads such a file into any sectioned dataclass (the training
run's :class:`~vlthinker.train.config.RunConfig`, ``vlthinker sft``'s and ``vlthinker eval``'s
settings); a top-level ``plugins`` list is imported first (:mod:`vlthinker.plugins`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from vlthinker.plugins import PluginError, import_plugins, plugin_paths

SectionsT = TypeVar("SectionsT")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked (and, for int → float, widened) against ``annotation``."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        if len(errors) == 1:  # an optional value: the one type's own message
            raise ConfigError(f"{errors[0]} (or null)")
        raise ConfigError(f"{key}: {value!r} is not a valid {_type_name(annotation)}")
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        key_type, value_type = typing.get_args(annotation)
        return {
            coerce(k, key_type, key): coerce(v, value_type, f"{key}.{k}") for k, v in value.items()
        }
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, key)
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(annotation)}")


def build_dataclass(cls: type, values: Any, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a mapping, checking every key and value."""
    where = prefix or "the config"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"unknown config key {name!r}; valid keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {
        name: coerce(value, hints[name], f"{prefix}.{name}" if prefix else name)
        for name, value in values.items()
    }
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"algorithm.clip_high=0.28"`` → ``("algorithm.clip_high", 0.28)`` (values read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has no key")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {key}: cannot read value {raw!r}: {error}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: plain YAML
    keeps the last value silently, so a pasted-in line could override a setting unseen."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


#: A command-line override: ``"key.sub=value"`` text (the value read as YAML), or a
#: ``("key.sub", value)`` pair whose value is already read (a command-line flag's).
Override = str | tuple[str, Any]


def read_tree(
    path: str | Path | None, overrides: Sequence[Override] | None = None
) -> dict[str, Any]:
    """The YAML file's mapping of sections (empty without a file), a key given twice refused,
    with every override set on it, in order (a later one wins)."""
    tree = _read_file(path)
    for override in overrides or []:
        key, value = parse_override(override) if isinstance(override, str) else override
        _set_path(tree, key, value)
    return tree


def _read_file(path: str | Path | None) -> dict[str, Any]:
    """The YAML file's mapping of sections (empty without a file), a key given twice refused."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
        tree = loaded or {}
    return tree


def load_sections(
    cls: type[SectionsT],
    path: str | Path | None = None,
    overrides: Sequence[Override] | None = None,
) -> SectionsT:
    """Dataclass ``cls`` (whose fields are dataclass sections) from a YAML file, or its defaults,
    plus overrides (:data:`Override`): every key and value type-checked, errors naming the key
    (prefixed with the file when one was read), a key given twice in the file refused. Range
    checks are the caller's."""
    has_plugins = "plugins" in {f.name for f in dataclasses.fields(cls)}
    tree = _read_file(path)
    source = f"{path}: " if path is not None else ""
    if has_plugins and "plugins" in tree:
        # File plug-ins are kept as absolute paths, so a run's saved config.yaml (read from the
        # run folder on resume) still finds them: a file's from its folder, ...
        try:
            plugins = coerce(tree["plugins"], list[str], "plugins")
        except ConfigError as error:
            raise ConfigError(f"{source}{error}") from None
        tree["plugins"] = plugin_paths(plugins, Path(path).parent if path else None)
    for override in overrides or []:
        key, value = parse_override(override) if isinstance(override, str) else override
        if has_plugins and key == "plugins":
            # ... a command line's from the current folder.
            value = plugin_paths(coerce(value, list[str], "plugins"), None)
        _set_path(tree, key, value)
    try:
        if has_plugins:
            import_plugins(coerce(tree.get("plugins", []), list[str], "plugins"))
        return build_dataclass(cls, tree)
    except (ConfigError, PluginError) as error:
        wrapped = ConfigError(f"{source}{error}")
        # the key the error is about, for a caller that names where it was set
        wrapped.key = "plugins" if isinstance(error, PluginError) else getattr(error, "key", None)  # type: ignore[attr-defined]
        raise wrapped from None


def flat_sections(settings: type, keys: Mapping[str, str], prefix: str) -> type:
    """A config-file form of the flat dataclass ``settings`` (a command's options): one section
    dataclass per ``section`` of ``keys`` (``{field: "section.key"}``), each field at its place
    with its type and default, so the defaults are stated once (on ``settings``)."""
    hints = typing.get_type_hints(settings)
    sections: dict[str, list[tuple[str, Any, Any]]] = {}
    for setting in dataclasses.fields(settings):
        section, key = keys[setting.name].split(".")
        default = (
            field(default_factory=setting.default_factory)
            if setting.default is dataclasses.MISSING
            else field(default=setting.default)
        )
        sections.setdefault(section, []).append((key, hints[setting.name], default))
    classes = {
        name: dataclasses.make_dataclass(f"{prefix}{name.title()}Section", specs)
        for name, specs in sections.items()
    }
    return dataclasses.make_dataclass(
        f"{prefix}Sections",
        [(name, cls, field(default_factory=cls)) for name, cls in classes.items()],
    )


def flat_settings(settings: type[SectionsT], keys: Mapping[str, str], sections: Any) -> SectionsT:
    """The flat ``settings`` read back from a :func:`flat_sections` instance."""
    values = {}
    for name, key in keys.items():
        section, sub = key.split(".")
        values[name] = getattr(getattr(sections, section), sub)
    return settings(**values)
