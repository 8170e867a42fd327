"""Logging set-up for worker and beat processes."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from typing import Iterator, List, Optional, Union

DEFAULT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
FILE_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s %(node)s] %(message)s"
#: what a task logger's records show before their message (see :func:`get_task_logger`)
TASK_PREFIX = "%(task_name)s[%(task_id)s]: "
RESERVED = ("multiq", "multiq.task", "multiq.worker")


class _TaskFilter(logging.Filter):
    """Adds ``task_id`` and ``task_name`` (``???`` outside a task) to a task logger's
    records: those of the task running in this thread or asyncio task."""

    def filter(self, record: logging.LogRecord) -> bool:
        from multiq import _state

        stack = _state.task_stack()
        request = stack[-1] if stack else None
        record.task_id = getattr(request, "id", None) or "???"
        record.task_name = getattr(request, "task", None) or "???"
        return True


_TASK_FILTER = _TaskFilter()


def get_task_logger(name: str) -> logging.Logger:
    """The logger ``name`` (``__name__``, say) for use in tasks: its records carry the
    running task's ``task_id`` and ``task_name``, and a node's log shows them before the
    message (``proj.add[<id>]: ...``), as Celery's task loggers do."""
    if name in RESERVED:
        raise RuntimeError(f"Logger name {name!r} is reserved!")
    logger = logging.getLogger(name)
    if _TASK_FILTER not in logger.filters:
        logger.addFilter(_TASK_FILTER)
    return logger


class _Formatter(logging.Formatter):
    """``fmt``, with :data:`TASK_PREFIX` before the message of a task logger's records."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._task = logging.Formatter(fmt.replace("%(message)s", TASK_PREFIX + "%(message)s"))

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "task_id"):
            return self._task.format(record)
        return super().format(record)


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
        stream = sys.stderr
        if isinstance(stream, StreamToLog):  # stderr redirected to the log: not back into it
            stream = sys.__stderr__
        handler = logging.StreamHandler(stream)
    if fmt is None:
        fmt = FILE_FORMAT if logfile and node else DEFAULT_FORMAT
    if node:
        handler.addFilter(_NodeFilter(node))
    handler.setFormatter(_Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level_of(level))


class StreamToLog(io.TextIOBase):
    """A text stream that logs each line written to it (what a task prints goes to the log).

    Lines are gathered per thread, so two threads printing at once do not mix their lines.
    """

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__()
        self.logger, self.level = logger, level
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        local = self._local
        if getattr(local, "busy", False):  # logging itself wrote here: drop it, no loop
            return len(text)
        *lines, local.pending = (getattr(local, "pending", "") + text).split("\n")
        self._log(lines)
        return len(text)

    def flush(self) -> None:
        local = self._local
        if getattr(local, "pending", "") and not getattr(local, "busy", False):
            line, local.pending = local.pending, ""
            self._log([line])

    def _log(self, lines: List[str]) -> None:
        self._local.busy = True
        try:
            for line in lines:
                if line.strip():
                    self.logger.log(self.level, line.rstrip())
        finally:
            self._local.busy = False


@contextlib.contextmanager
def stdouts_to_log(level: Union[str, int, None] = "WARNING") -> Iterator[None]:
    """Send ``sys.stdout`` and ``sys.stderr`` to the ``multiq.redirected`` logger at
    ``level`` for the duration (``worker_redirect_stdouts``); restored afterwards."""
    logger = logging.getLogger("multiq.redirected")
    saved = sys.stdout, sys.stderr
    sys.stdout = StreamToLog(logger, level_of(level))
    sys.stderr = StreamToLog(logger, level_of(level))
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved
