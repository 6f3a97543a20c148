"""Bounds on values that come from outside: a checkpoint's ``config.json``, a dataset, a command-line option.

Each spec checks one value (type and range) and says in one line what it accepts::

    Int(8, 4096).check(-1)      # ValueError: must be an integer from 8 to 4096 (got -1)
    Int(8, 4096).parse("256")   # 256 (the text of a command-line option)

:func:`check_object` checks a JSON object against a table of specs: unknown keys are an error, each error names
its key.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .strict_json import depth


def shown(value) -> str:
    """A value as the user wrote it (JSON), cut to 40 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Spec:
    """One value's type and range."""

    def check(self, value):
        """Return ``value`` (normalised) or raise ValueError saying what is accepted."""
        raise NotImplementedError

    convert = None  # how an option's text becomes a value of this kind (int, float), if not kept as text

    def parse(self, text: str):
        """The value of a command-line option's text."""
        value = text
        if self.convert is not None:
            try:
                value = type(self).convert(text)
            except ValueError:
                pass
        return self.check(value)

    def _fail(self, value, accepted: str):
        raise ValueError(f"must be {accepted} (got {shown(value)})")


@dataclass(frozen=True)
class Int(Spec):
    lo: int
    hi: int
    convert = int

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            self._fail(value, f"an integer from {self.lo} to {self.hi}")
        return value


@dataclass(frozen=True)
class Float(Spec):
    lo: float
    hi: float
    lo_open: bool = False  # lo itself is refused (a learning rate of 0)
    convert = float

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
                self.lo < value <= self.hi if self.lo_open else self.lo <= value <= self.hi):
            self._fail(value, f"a number {'above' if self.lo_open else 'from'} {self.lo:g} "
                              f"{'and up to' if self.lo_open else 'to'} {self.hi:g}")
        return float(value)


@dataclass(frozen=True)
class Choice(Spec):
    options: tuple[str, ...]

    def check(self, value):
        if not isinstance(value, str) or value not in self.options:
            self._fail(value, "one of " + ", ".join(self.options))
        return value


@dataclass(frozen=True)
class Flag(Spec):
    def check(self, value):
        if not isinstance(value, bool):
            self._fail(value, "true or false")
        return value


@dataclass(frozen=True)
class Text(Spec):
    max_chars: int = 4096
    empty: bool = False

    def check(self, value):
        if not isinstance(value, str) or len(value) > self.max_chars or not (self.empty or value.strip()):
            self._fail(value, f"{'a' if self.empty else 'a non-empty'} text of at most {self.max_chars} characters")
        return value


@dataclass(frozen=True)
class JSONObject(Spec):
    max_depth: int = 8

    def check(self, value):
        if not isinstance(value, dict) or depth(value) > self.max_depth:
            self._fail(value, f"an object nested at most {self.max_depth} levels deep")
        return value


def check_object(data, specs: dict[str, Spec], where: str) -> dict:
    """Check the JSON object ``data`` against ``specs`` (key -> spec); keys left out are allowed (they take
    their defaults), unknown keys are not. ValueError: ``where.key: must be ...``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: must be an object (got {shown(data)})")
    unknown = sorted(set(data) - set(specs))
    if unknown:
        raise ValueError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    out = {}
    for key, value in data.items():
        try:
            out[key] = specs[key].check(value)
        except ValueError as exc:
            raise ValueError(f"{where}.{key}: {exc}") from None
    return out
