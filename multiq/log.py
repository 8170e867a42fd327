"""Logging set-up for worker and beat processes."""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional, Union

DEFAULT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
FILE_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s %(node)s] %(message)s"


class _NodeFilter(logging.Filter):
    """Adds ``%(node)s`` (the node name) to every record."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


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
          fmt: Optional[str] = None, node: Optional[str] = None) -> None:
    """Send multiq's and the tasks' logs to ``logfile`` (or stderr) at ``level``."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handler = logging.FileHandler(logfile, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    if fmt is None:
        fmt = FILE_FORMAT if logfile and node else DEFAULT_FORMAT
    if node:
        handler.addFilter(_NodeFilter(node))
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level_of(level))
