"""One registry pattern for every plug-in kind: estimators, answer types, eval rules, aggregates,
benchmarks.

A registry maps a name to an object (usually a function) registered with a decorator::

    ESTIMATORS = Registry("advantage estimator")

    @ESTIMATORS.register("grpo")
    def grpo_advantages(rewards, group_ids, task_ids=None, *, eps: float = 1e-6): ...

A name looked up but not registered raises :class:`UnknownNameError` listing the known names, so a
config value is validated by looking it up. Registering a name twice is an error (two plug-ins
silently shadowing each other is the bug this prevents); ``replace=True`` says it is meant.

Other spellings of a name are registered with it (``register("numeric", aliases=("numerical",))``)
and looked up like it; a registry made with ``normalise=`` (a function from a spelling to its lookup
key) also finds names and aliases spelt differently, e.g. with other case or separators. The
canonical name stays the one the entry was registered under (:meth:`Registry.canonical`).

Registrations are undone with :meth:`Registry.remove`; :meth:`Registry.temporarily` registers one
entry for the length of a ``with`` block and :meth:`Registry.scoped` undoes everything a block
registered or removed (tests use them so that their plug-ins do not leak into other tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the registered ones."""


class Registry(Generic[T]):
    """Names → plug-ins of one kind (``kind`` is used in messages: "unknown {kind} 'x'").

    ``normalise`` maps a spelling to the key it is looked up by (default: the spelling itself);
    two spellings with the same key name the same entry. ``error`` is the
    :class:`UnknownNameError` subclass raised for an unknown name.
    """

    def __init__(
        self,
        kind: str,
        *,
        normalise: Callable[[str], str] | None = None,
        error: type[UnknownNameError] = UnknownNameError,
    ) -> None:
        self.kind = kind
        self._normalise = normalise
        self._error = error
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, tuple[str, ...]] = {}
        # lookup key → (canonical name, the spelling as registered: the name or one alias)
        self._index: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ registering
    def register(
        self,
        name: str,
        *,
        aliases: Iterable[str] = (),
        replace: bool = False,
        **meta: Any,
    ) -> Callable[[T], T]:
        """Decorator registering its target as ``name`` (and ``aliases``); ``meta`` is kept for
        :meth:`meta`."""

        def decorate(entry: T) -> T:
            self.add(name, entry, aliases=aliases, replace=replace, **meta)
            return entry

        return decorate

    def add(
        self,
        name: str,
        entry: T,
        *,
        aliases: Iterable[str] = (),
        replace: bool = False,
        **meta: Any,
    ) -> None:
        """Register ``entry`` as ``name`` (the non-decorator form).

        A name or alias whose lookup key is taken by another entry is refused, even with
        ``replace`` (which replaces the entry registered as ``name``, with its aliases).
        """
        others = tuple(aliases)  # an iterator would be used up by the checks
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        for alias in others:
            if not alias or not isinstance(alias, str):
                raise ValueError(f"{self.kind} {name!r}: an alias must be a non-empty string")
        spellings = (name, *others)
        if name in self._entries and not replace:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass replace=True to override it"
            )
        keys = [self._key(spelling) for spelling in spellings]
        for spelling, key in zip(spellings, keys, strict=True):
            owner = self._index.get(key)
            if owner is not None and owner[0] != name:
                raise ValueError(
                    f"{self.kind} {name!r}: {spelling!r} already names {self.kind} {owner[0]!r}"
                )
        if name in self._entries:
            self.remove(name)
        self._entries[name] = entry
        self._meta[name] = dict(meta)
        self._aliases[name] = others
        # an alias spelt like its own name (after normalising) wins, so that options keyed by
        # the alias (e.g. an answer type's alias_defaults) apply to that spelling
        for spelling, key in zip(spellings, keys, strict=True):
            self._index[key] = (name, spelling)

    def remove(self, name: str) -> T:
        """Unregister ``name`` (its canonical name or an alias) with its aliases and metadata;
        returns the entry. An unknown name raises :class:`UnknownNameError`."""
        canonical = self.canonical(name)
        entry = self._entries.pop(canonical)
        del self._meta[canonical]
        del self._aliases[canonical]
        self._index = {key: found for key, found in self._index.items() if found[0] != canonical}
        return entry

    @contextmanager
    def temporarily(
        self,
        name: str,
        entry: T,
        *,
        aliases: Iterable[str] = (),
        replace: bool = False,
        **meta: Any,
    ) -> Iterator[T]:
        """Register ``entry`` as ``name`` inside a ``with`` block; at its end the registry is as it
        was before (an entry this one replaced is back)."""
        with self.scoped():
            self.add(name, entry, aliases=aliases, replace=replace, **meta)
            yield entry

    @contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """A ``with`` block whose registrations and removals are undone at its end, however it
        ends; yields the registry. For tests and one-off runs that add plug-ins through
        decorators or helper functions (such as ``register(Benchmark(...))``)."""
        saved = (dict(self._entries), dict(self._meta), dict(self._aliases), dict(self._index))
        try:
            yield self
        finally:
            # restored in place: modules holding the registry keep seeing the same object
            for current, before in zip(
                (self._entries, self._meta, self._aliases, self._index), saved, strict=True
            ):
                current.clear()
                current.update(before)

    # ------------------------------------------------------------------ looking up
    def _key(self, spelling: str) -> str:
        return self._normalise(spelling) if self._normalise is not None else spelling

    def resolve(self, name: str) -> tuple[str, str]:
        """``(canonical name, spelling as registered)`` for ``name``: its exact canonical name,
        else the name or alias with the same lookup key (the spelling tells which alias matched).
        An unknown name raises :class:`UnknownNameError` listing the known names and aliases."""
        if isinstance(name, str):
            if name in self._entries:
                return name, name
            found = self._index.get(self._key(name))
            if found is not None:
                return found
        aliases = self.aliases()
        listing = f"; aliases: {', '.join(aliases)}" if aliases else ""
        raise self._error(
            f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}{listing}"
        )

    def canonical(self, name: str) -> str:
        """The name the entry that ``name`` (a name or an alias) stands for is registered as."""
        return self.resolve(name)[0]

    def get(self, name: str) -> T:
        """The plug-in registered as ``name`` (or with ``name`` as an alias);
        :class:`UnknownNameError` names the known ones."""
        return self._entries[self.canonical(name)]

    def meta(self, name: str) -> dict[str, Any]:
        """The keyword metadata ``name``'s entry was registered with."""
        return self._meta[self.canonical(name)]

    def aliases(self, name: str | None = None) -> tuple[str, ...]:
        """The aliases of ``name``'s entry as registered, or (no name) every alias, sorted."""
        if name is not None:
            return self._aliases[self.canonical(name)]
        return tuple(sorted({alias for names in self._aliases.values() for alias in names}))

    def check(self, name: str) -> str:
        """``name`` if registered, else :class:`UnknownNameError` (for validating config values)."""
        self.resolve(name)
        return name

    def names(self) -> tuple[str, ...]:
        """The canonical names, sorted (aliases are not listed: see :meth:`aliases`)."""
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        """Whether :meth:`get` finds ``name`` (a canonical name or an alias)."""
        if not isinstance(name, str):
            return False
        return name in self._entries or self._key(name) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self.names())})"
