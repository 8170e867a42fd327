"""Logging set-up for worker and beat processes."""
from __future__ import annotations

import logging
import sys
from typing import Optional, Union

DEFAULT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


def level_of(level: Union[str, int, None]) -> int:
    if level is None:
        return logging.WARNING
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"Unknown log level {level!r}")
    return value


def setup(level: Union[str, int, None] = "WARNING", logfile: Optional[str] = None,
          fmt: Optional[str] = None, colorize: bool = False) -> None:
    """Send multiq's and the tasks' logs to ``logfile`` (or stderr) at ``level``."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt or DEFAULT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level_of(level))
