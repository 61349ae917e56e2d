"""A small name -> object registry, the single way pyrovae resolves names.

Families, likelihoods, estimators, datasets, optimizers and activations each
own one :class:`Registry`. Looking up an unknown name raises
:class:`~pyrovae.errors.PyroVAEError` with the nearest registered name, so no
module needs its own ``if/elif`` chain over strings.
"""

from __future__ import annotations

from typing import Dict, Generic, Iterator, Tuple, TypeVar

from .errors import PyroVAEError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping from names to objects of one ``kind``.

    :param kind: what the entries are ("posterior family", "estimator", ...),
        used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            return lambda o: self.register(name, o, overwrite=overwrite)
        if name in self._entries and not overwrite:
            raise PyroVAEError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def get(self, name: str, role: str | None = None) -> T:
        """The entry ``name``; an unknown name raises an error that calls it a ``role`` (default: kind)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise unknown_name(role or self.kind, name, self._entries) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> Tuple[str, ...]:
        """All registered names, in registration order."""
        return tuple(self._entries)

    def items(self) -> Tuple[Tuple[str, T], ...]:
        """``(name, object)`` pairs, in registration order."""
        return tuple(self._entries.items())

    def check(self, name: str) -> str:
        """Return ``name`` if registered, else raise the suggesting error."""
        self[name]
        return name
