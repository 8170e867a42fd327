"""multiq: a distributed task queue with a Redis broker and a built-in process supervisor."""
from __future__ import annotations

__version__ = "0.1.0"

from multiq.app import MultiQ, shared_task  # noqa: E402
from multiq.canvas import (  # noqa: E402
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
from multiq.task import Task  # noqa: E402

__all__ = ["MultiQ", "Signature", "Task", "chain", "chord", "chunks", "group",
           "maybe_signature", "shared_task", "signature", "subtask", "xmap", "xstarmap",
           "__version__"]
