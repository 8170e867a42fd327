"""``from multiq.utils.log import get_task_logger``, as from ``celery.utils.log``."""
from __future__ import annotations

import logging

from multiq.log import get_task_logger

__all__ = ["get_logger", "get_task_logger"]


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``."""
    return logging.getLogger(name)
