"""Checks of remote-control arguments, made before a command changes anything.

Commands come from the network (``multiq control``, ``app.control``, or anything that can
PUBLISH), so each value is checked for type and range; the CLI sends numbers as strings,
which are accepted where a number is expected.
"""
from __future__ import annotations

import math
import signal
from typing import Any, List, Optional

from multiq.exceptions import MultiQError


class BadArgument(MultiQError, ValueError):
    """A remote-control argument of the wrong type or out of range."""


def seconds(value: Any, name: str) -> Optional[float]:
    """None, or a finite number of seconds >= 0 (a numeric string is fine)."""
    if value is None:
        return None
    number = _number(value, name)
    if not 0 <= number < math.inf:
        raise BadArgument(f"{name} must be a number of seconds >= 0, not {value!r}")
    return number


def count(value: Any, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum`` (a string of digits is fine)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if type(value) is not int or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise BadArgument(f"{name} must be {what}, not {value!r}")
    return value


def text(value: Any, name: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise BadArgument(f"{name} must be a non-empty string, not {value!r}")
    return value


def texts(value: Any, name: str) -> List[str]:
    """A list of strings (None is an empty list)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise BadArgument(f"{name} must be a list of strings, not {value!r}")
    return list(value)


def task_ids(value: Any) -> List[str]:
    """One task id or a list of them."""
    if isinstance(value, str) and value:
        return [value]
    ids = texts(value, "task_id")
    if not ids:
        raise BadArgument("task_id must name at least one task")
    return ids


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadArgument(f"{name} must be true or false, not {value!r}")
    return value


def signal_number(value: Any) -> int:
    """A known signal: ``"SIGTERM"``, ``"TERM"``, ``15`` or ``"15"`` -> 15."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(signal.Signals(int(value)))
        if isinstance(value, str):
            name = value.upper()
            return int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except (KeyError, ValueError):
        pass
    raise BadArgument(f"unknown signal {value!r}")


def rate(value: Any) -> Any:
    """A rate limit: None, ``"N/s"``, ``"N/m"``, ``"N/h"`` or a number, none below 0."""
    from multiq.worker.ratelimit import parse_rate

    if value is not None and (isinstance(value, bool)
                              or not isinstance(value, (str, int, float))):
        raise BadArgument(f"rate_limit must be a string like '10/s' or a number, "
                          f"not {value!r}")
    try:
        per_second = parse_rate(value)
    except ValueError as exc:
        raise BadArgument(str(exc)) from None
    if not 0 <= per_second < math.inf:
        raise BadArgument(f"Invalid rate limit {value!r}: must be finite and >= 0")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadArgument(f"{name} must be a number, not {value!r}")
    try:
        return float(value)
    except ValueError:
        raise BadArgument(f"{name} must be a number, not {value!r}") from None
