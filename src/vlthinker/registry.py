"""One registry pattern for every plug-in kind: estimators, answer types, eval rules, aggregates,
benchmarks.

A registry maps a name to an object (usually a function) registered with a decorator::

    ESTIMATORS = Registry("advantage estimator")

    @ESTIMATORS.register("grpo")
    def grpo_advantages(rewards, group_ids, task_ids=None, *, eps: float = 1e-6): ...

A name looked up but not registered raises :class:`UnknownNameError` listing the known names, so a
config value is validated by looking it up. Registering a name twice is an error (two plug-ins
silently shadowing each other is the bug this prevents); ``replace=True`` says it is meant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the registered ones."""


class Registry(Generic[T]):
    """Names → plug-ins of one kind (``kind`` is used in messages: "unknown {kind} 'x'")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, *, replace: bool = False, **meta: Any) -> Callable[[T], T]:
        """Decorator registering its target as ``name``; ``meta`` is kept for :meth:`meta`."""

        def decorate(entry: T) -> T:
            self.add(name, entry, replace=replace, **meta)
            return entry

        return decorate

    def add(self, name: str, entry: T, *, replace: bool = False, **meta: Any) -> None:
        """Register ``entry`` as ``name`` (the non-decorator form)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass replace=True to override it"
            )
        self._entries[name] = entry
        self._meta[name] = dict(meta)

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``; :class:`UnknownNameError` names the known ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def meta(self, name: str) -> dict[str, Any]:
        """The keyword metadata ``name`` was registered with."""
        self.get(name)
        return self._meta[name]

    def check(self, name: str) -> str:
        """``name`` if registered, else :class:`UnknownNameError` (for validating config values)."""
        self.get(name)
        return name

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self.names())})"
