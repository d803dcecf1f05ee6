"""A small name -> factory registry, used for teachers, baselines, attacks, tasks and stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from lifeveil.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. Duplicate names are refused; unknown names list the choices."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, factory: Callable[..., T], help: str = "") -> None:
        """Register ``factory`` under ``name``; raises ValueError if the name is taken."""
        if name in self._factories:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._factories[name] = factory
        self._help[name] = help or (factory.__doc__ or "").strip().split("\n")[0]

    def create(self, name: str, **kwargs: object) -> T:
        """Build the object registered under ``name``."""
        return self.get(name)(**kwargs)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; UnknownNameError lists the known names."""
        if name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {known}")
        return self._factories[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def in_order(self) -> list[tuple[str, Callable[..., T]]]:
        """(name, factory) pairs in registration order (the order an evaluator runs them)."""
        return list(self._factories.items())

    def describe(self) -> dict[str, str]:
        """Name -> one-line help."""
        return {n: self._help[n] for n in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._factories
