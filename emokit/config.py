"""One rule for every settings dataclass: plain dicts in and out.

Notebook parameters, grid YAML files and run folders all hold settings as
plain dicts (``features={}``, ``space={}``, ``search={}``, ``net={}``,
``train={}``). Each is turned into its dataclass by :meth:`Config.from_dict`,
which refuses unknown keys and lists the known ones, so a typo fails before
anything runs instead of being ignored.
"""
from __future__ import annotations

import dataclasses
import typing


class UnknownSettingError(KeyError):
    """A settings dict holds a key its dataclass does not have."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


class Config:
    """Mixin for frozen dataclasses of settings."""

    def to_dict(self) -> dict:
        """Fields as plain JSON-able values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict | None):
        """The dataclass from a dict of its fields (missing ones: defaults).

        Raises
        ------
        UnknownSettingError
            naming the unknown keys and listing the known ones.
        """
        data = dict(data or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UnknownSettingError(f"unknown {cls.__name__} settings {unknown}; known: {', '.join(known)}")
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if isinstance(value, list) and "tuple" in str(hints.get(key, "")):
                data[key] = tuple(value)
        return cls(**data)

    def replace(self, **changes):
        """A copy with some fields changed (unknown names refused)."""
        return type(self).from_dict({**self.to_dict(), **changes})
