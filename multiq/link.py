"""A connection written without waiting: replies are read later, in bulk.

Redis answers a connection's commands in order, so a writer can send and go on, and read
the replies when it must know they landed: :meth:`Link.confirm`. Worker threads use it for
start markers (nobody waits for them), and a prefork child for its tasks' outcomes (the
child goes on to its next task while Redis applies the last one).

With ``resend``, writes whose replies were not read when the connection failed are sent
again on a fresh connection until Redis takes them (they are idempotent, or at worst
duplicate a requeue: at least once); without it they are given up.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Deque, List, Sequence, Tuple

import redis

from multiq.redisconn import REDIS_ERRORS, UNAVAILABLE
from multiq.sender import Command, Sender

logger = logging.getLogger("multiq.worker")

UNREAD_LIMIT = 256  # writes left unconfirmed before a writer reads their replies itself


class Link:
    """One connection out of a sender's pool, written by any thread, read in order."""

    def __init__(self, sender: Sender, resend: bool = False) -> None:
        self.sender = sender
        self.resend = resend
        self._lock = threading.Lock()
        self._conn: Any = None
        self._unread: Deque[Tuple[int, Sequence[Command]]] = deque()  # (number, commands)
        self.posted = 0  # writes so far
        self.confirmed = 0  # writes whose replies have all been read

    def post(self, commands: Sequence[Command]) -> int:
        """Send ``commands`` (one write) and return its number, without reading replies.

        Raises a connection error only when the write could not be sent and is not kept
        for a resend."""
        with self._lock:
            self.posted += 1
            number = self.posted
            self._unread.append((number, commands))
            try:
                self._send(commands)
            except REDIS_ERRORS:
                self._lost()
                if not self.resend:
                    raise
                self._reconnect_and_resend()
            if len(self._unread) > UNREAD_LIMIT:
                self._read_to(number - UNREAD_LIMIT // 2)
            return number

    def confirm(self, number: int = 0) -> List[Exception]:
        """Read replies until write ``number`` (every write when 0) is answered; returns the
        error replies met on the way."""
        if number and number <= self.confirmed:
            return []
        with self._lock:
            return self._read_to(number or self.posted)

    def _send(self, commands: Sequence[Command]) -> None:
        if self._conn is None:
            self._conn = self.sender.pool.get_connection()
        self._conn.send_packed_command(self.sender.pack(self._conn, commands))

    def _read_to(self, number: int) -> List[Exception]:
        errors: List[Exception] = []
        while self._unread and self._unread[0][0] <= number:
            head, commands = self._unread[0]
            try:
                for _ in commands:
                    try:
                        reply = self._conn.read_response()
                    except redis.ResponseError as exc:
                        if self.resend and isinstance(exc, UNAVAILABLE):
                            raise  # READONLY after a failover: write it all again
                        errors.append(exc)
                        continue
                    if isinstance(reply, list):
                        errors += [r for r in reply if isinstance(r, redis.ResponseError)]
            except REDIS_ERRORS:
                self._lost()
                if not self.resend:
                    self._unread.clear()
                    self.confirmed = self.posted
                    return errors
                self._reconnect_and_resend()
                continue  # read the resent writes' replies from the start
            self._unread.popleft()
            self.confirmed = head
        return errors

    def _lost(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
            self.sender.pool.release(conn)

    def _reconnect_and_resend(self) -> None:
        """Send every unanswered write again, waiting out an outage with backoff."""
        delay = 0.1
        while True:
            try:
                for _, commands in self._unread:
                    self._send(commands)
                return
            except UNAVAILABLE as exc:
                self._lost()
                logger.warning("Redis unavailable (%s); writing %d batches again in %.1fs",
                               exc, len(self._unread), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        """Read what is left, then give the connection back."""
        with self._lock:
            if self._conn is not None and self._unread:
                self._read_to(self.posted)
            conn, self._conn = self._conn, None
            if conn is not None:
                self.sender.pool.release(conn)
