"""Remote-control commands of your own, as with Celery's ``celery.worker.control``::

    from multiq.worker.control import control_command, inspect_command

    @control_command(args=[("n", int)], signature="[N=1]")
    def add_tokens(node, n=1):  # the first line of a docstring is its help
        ...
        return {"ok": f"{n} tokens added"}

    @inspect_command()
    def tokens(node):
        return {"tokens": ...}

Each addressed node calls the handler with what it is (:class:`multiq.control.node.Node`:
its ``app``, ``hostname``, pool and queues) and the command's arguments, and its return
value is that node's reply. The module defining them must be imported by the worker (the
app's module, or ``imports``) and by whoever sends them from the command line
(``multiq -A proj control add_tokens 3``, ``multiq -A proj inspect tokens``); from code,
``app.control.broadcast("add_tokens", {"n": 3}, reply=True)``.
"""
from __future__ import annotations

from typing import Any, Callable

from multiq.control.commands import register

__all__ = ["control_command", "inspect_command"]


def control_command(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command that changes a node (``multiq control NAME``). Options: ``name``,
    ``alias``, ``args`` (``[(name, type), ...]`` for the command line), ``variadic``,
    ``signature``, ``help``."""
    return register("control", **options)


def inspect_command(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command that reads a node (``multiq inspect NAME``); options as
    :func:`control_command`'s."""
    return register("inspect", **options)
