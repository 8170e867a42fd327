"""multiq: a distributed task queue with a Redis broker and a built-in process supervisor.

The public names are imported on first use (PEP 562), so that importing a part of
multiq loads only that part: the program's entry points must be able to patch the
standard library for a green pool before anything else is imported (:mod:`multiq.patching`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from multiq.app import MultiQ, shared_task
    from multiq.canvas import (
        Signature,
        chain,
        chord,
        chunks,
        group,
        maybe_signature,
        signature,
        subtask,
        xmap,
        xstarmap,
    )
    from multiq.task import Task

#: public name -> the module that defines it
_PUBLIC = {
    "MultiQ": "multiq.app", "shared_task": "multiq.app", "Task": "multiq.task",
    **{name: "multiq.canvas" for name in (
        "Signature", "chain", "chord", "chunks", "group", "maybe_signature", "signature",
        "subtask", "xmap", "xstarmap")},
}

__all__ = ["MultiQ", "Signature", "Task", "chain", "chord", "chunks", "group",
           "maybe_signature", "shared_task", "signature", "subtask", "xmap", "xstarmap",
           "__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'multiq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted({*globals(), *_PUBLIC})
