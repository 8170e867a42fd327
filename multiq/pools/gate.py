"""Which of the jobs queued in a prefork child it may still start.

A child is sent its next job while it runs the current one, so it never waits for the
parent between tasks. The parent can take queued jobs back (another child fell idle, the
node stops, the child shrinks away) without asking the busy child: both share a
:class:`Gate`, a page of memory and a semaphore made before the fork. The child numbers
every start in it; the parent moves the first number it still accepts past what it has
sent. Under the semaphore either the child started a job first, and keeps it, or the
parent took it back first, and the child skips it: never both, never neither.
"""
from __future__ import annotations

import _multiprocessing
import itertools
import mmap
import os
import struct
from typing import Optional

_SEMAPHORE = 1  # _multiprocessing.SemLock kind
_FIELDS = struct.Struct("qq")  # the last job number started, the first one still valid
_names = itertools.count()


class Gate:
    """Shared by one child and the parent; jobs are numbered from 1 in the order sent."""

    def __init__(self) -> None:
        name = f"/multiq-gate-{os.getpid()}-{next(_names)}"
        self._lock = _multiprocessing.SemLock(_SEMAPHORE, 1, 1, name, True)  # unlinked
        self._mem = mmap.mmap(-1, _FIELDS.size)
        _FIELDS.pack_into(self._mem, 0, 0, 0)

    def enter(self, number: int) -> bool:
        """(Child.) Start job ``number`` unless the parent took it back."""
        with self._lock:
            _, valid = _FIELDS.unpack_from(self._mem)
            if number < valid:
                return False
            _FIELDS.pack_into(self._mem, 0, number, valid)
            return True

    def withdraw(self, next_number: int, timeout: float = 1.0) -> Optional[int]:
        """(Parent.) Take back every job sent before ``next_number`` that has not started;
        returns the number of the last job started, or None when the semaphore stayed
        taken for ``timeout`` (a child stopped, or killed, in those few instructions)."""
        if not self._lock.acquire(True, timeout):
            return None
        try:
            started, _ = _FIELDS.unpack_from(self._mem)
            _FIELDS.pack_into(self._mem, 0, started, next_number)
            return int(started)
        finally:
            self._lock.release()

    @property
    def started(self) -> int:
        """The number of the last job the child started (0: none)."""
        return int(_FIELDS.unpack_from(self._mem)[0])

    def close(self) -> None:
        self._mem.close()
