"""A connection written without waiting: replies are read later, in bulk.

Redis answers a connection's commands in order, so a writer can send and go on, and read
the replies when it must know they landed: :meth:`Link.confirm`. Worker threads use it for
start markers, which nobody waits for. Writes whose replies were not read when the
connection failed are given up (a marker that is missing only means its task may run
again should the node die: at least once).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Deque, List, Sequence, Tuple

import redis

from multiq.redisconn import REDIS_ERRORS
from multiq.sender import Command, Sender

UNREAD_LIMIT = 256  # writes left unconfirmed before a writer reads their replies itself


class Link:
    """One connection out of a sender's pool, written by any thread, read in order."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._lock = threading.Lock()
        self._conn: Any = None
        self._unread: Deque[Tuple[int, int]] = deque()  # (write number, its replies)
        self.posted = 0  # writes so far
        self.confirmed = 0  # writes whose replies have all been read (or given up)

    def post(self, commands: Sequence[Command]) -> int:
        """Send ``commands`` (one write) and return its number, without reading replies;
        raises the connection's error when it could not be sent."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self.sender.pool.get_connection()
                self._conn.send_packed_command(self.sender.pack(self._conn, commands))
            except REDIS_ERRORS:
                self._lost()
                raise
            self.posted += 1
            self._unread.append((self.posted, len(commands)))
            if len(self._unread) > UNREAD_LIMIT:
                self._read_to(self.posted - UNREAD_LIMIT // 2)
            return self.posted

    def confirm(self, number: int = 0) -> List[Exception]:
        """Read replies until write ``number`` (every write when 0) is answered; returns the
        error replies met on the way."""
        if number and number <= self.confirmed:
            return []
        with self._lock:
            return self._read_to(number or self.posted)

    def _read_to(self, number: int) -> List[Exception]:
        errors: List[Exception] = []
        if self._conn is None:  # nothing unread can still arrive
            self._lost()
            return errors
        while self._unread and self._unread[0][0] <= number:
            head, replies = self._unread[0]
            try:
                for _ in range(replies):
                    try:
                        reply = self._conn.read_response()
                    except redis.ResponseError as exc:
                        errors.append(exc)
                        continue
                    if isinstance(reply, list):
                        errors += [r for r in reply if isinstance(r, redis.ResponseError)]
            except REDIS_ERRORS:
                self._lost()  # what it carried was applied, or never will be
                return errors
            self._unread.popleft()
            self.confirmed = head
        return errors

    def _lost(self) -> None:
        conn, self._conn = self._conn, None
        self._unread.clear()
        self.confirmed = self.posted
        if conn is not None:
            conn.disconnect()
            self.sender.pool.release(conn)

    def close(self) -> None:
        """Read what is left, then give the connection back."""
        with self._lock:
            if self._conn is not None and self._unread:
                self._read_to(self.posted)
            conn, self._conn = self._conn, None
            if conn is not None:
                self.sender.pool.release(conn)
