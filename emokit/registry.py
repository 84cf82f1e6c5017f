"""A tiny name -> object registry (in the spirit of timm's ``@register``).

Ops, cells' search scopes, baselines and corpus loaders are all looked up by
name; an unknown name fails with the list of the known ones.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to objects (usually constructors or loader functions).

    Parameters
    ----------
    kind : str
        What the registry holds ("op", "baseline", "corpus" ...); used in
        error messages.
    plural : str, optional
        The plural of ``kind`` where adding "s" is wrong ("corpora").
    """

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` (or the function's own name)."""

        def decorate(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.plural}: {known}") from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)
