"""Strict JSON in and out: what this program reads from users' files and what it writes.

Reading refuses what Python's ``json`` lets through: ``NaN``/``Infinity`` tokens, numbers that overflow to
infinity, nesting deeper than a file of that kind can need (before Python's recursion limit is reached).
Writing never emits a bare ``NaN``: non-finite numbers become ``null``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .files import read_bytes

MAX_DEPTH = 32  # containers inside containers: checkpoint configs and datasets need 5


def _reject_constant(token: str):
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def depth(value) -> int:
    """How deeply lists and objects nest in ``value`` (0 for a number or text)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, d + 1)
            stack.extend((x, d + 1) for x in item)
    return deepest


def loads(data: bytes | str, max_depth: int = MAX_DEPTH):
    """Parse strict JSON. Raises ValueError with a one-line reason."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"nested too deeply (more than {max_depth} levels)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:  # a rejected constant or number, an integer of thousands of digits
        raise ValueError(f"not valid JSON ({str(exc).splitlines()[0]})") from None
    if depth(value) > max_depth:
        raise ValueError(f"nested too deeply (more than {max_depth} levels)")
    return value


def load_file(path: str | Path, limit: int, max_depth: int = MAX_DEPTH):
    """Read and parse a JSON file of at most ``limit`` bytes (a regular file only: :mod:`.files`).
    Raises OSError (missing, not a regular file, too large) or ValueError (not strict JSON)."""
    return loads(read_bytes(path, limit), max_depth)


def clean(value):
    """``value`` with non-finite floats as None, numpy scalars and arrays as Python numbers and lists."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value, indent: int | None = None) -> str:
    """JSON text of ``value`` with non-finite numbers written as ``null`` (never a ``NaN`` token)."""
    return json.dumps(clean(value), indent=indent, allow_nan=False)
