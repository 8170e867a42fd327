"""A task's time limits: the message's, else the task's, else the node's."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

if TYPE_CHECKING:
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")

Limits = Tuple[Optional[float], Optional[float]]


def time_limits(req: Request, hard_default: Optional[float],
                soft_default: Optional[float]) -> Limits:
    """(hard, soft) seconds. A value that is not a number >= 0 is ignored with a warning
    (it must not stop the node)."""
    task, opts = req.task, req.message.options.get("timelimit") or (None, None)
    if not isinstance(opts, (list, tuple)) or len(opts) != 2:
        opts = (opts, None)  # reported below
    found: List[Any] = [opts[0], task.time_limit, opts[1], task.soft_time_limit]
    for i, value in enumerate(found):
        if value is not None and (type(value) not in (int, float)
                                  or not 0 <= value < float("inf")):
            logger.warning("Task %s[%s]: ignoring time limit %r (not a number >= 0)",
                           req.name, req.id, value)
            found[i] = None
    return (found[0] or found[1] or hard_default, found[2] or found[3] or soft_default)
