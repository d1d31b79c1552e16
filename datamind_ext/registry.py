"""One registry class for every family of named components (scorers, schedules, loaders...).

Unlike verl's mix of silent overwrites and bare asserts, duplicates raise and unknown names
list the choices, so a typo in a config is a clear one-line error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from datamind_ext.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of components of one family."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding ``obj`` under ``name``; registering the same object twice is a no-op."""

        def add(obj: T) -> T:
            known = self._items.get(name)
            if known is not None and known is not obj:
                raise ValueError(f"{self.family} {name!r} is already registered to {known!r}")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            choices = ", ".join(sorted(self._items)) or "(none)"
            raise UserError(f"unknown {self.family} {name!r}; choose one of: {choices}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
