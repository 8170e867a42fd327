"""The prefork pool's pipe: lists of records, pickled, in length-prefixed frames.

Each end of a socket pair sends a frame with one write, and reads everything waiting with
one read, however many frames that holds: a busy child's jobs, or several children's
records, cost a system call each, not two (header, then body) per message.
"""
from __future__ import annotations

import pickle
import select
import socket
from typing import Any, List

HEADER = 4  # bytes of big-endian frame length
READ_SIZE = 1 << 16


class Channel:
    """One end of a parent/child socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False
        self._buffer = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, items: List[Any]) -> None:
        """Send ``items`` as one frame; pickling errors are raised before anything is sent."""
        data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(len(data).to_bytes(HEADER, "big") + data)

    def receive(self) -> List[Any]:
        """The items of every complete frame received; waits for one when there is none.

        Raises EOFError once the other end has closed."""
        while True:
            items = self._frames()
            if items:
                return items
            chunk = self.sock.recv(READ_SIZE)
            if not chunk:
                raise EOFError("the other end of the pool channel closed")
            self._buffer += chunk

    def poll(self, timeout: float = 0) -> bool:
        """Whether :meth:`receive` would return without waiting (or raise EOFError), within
        ``timeout`` seconds."""
        if self._complete():
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def _complete(self) -> bool:
        buf = self._buffer
        return len(buf) >= HEADER and len(buf) >= HEADER + int.from_bytes(buf[:HEADER], "big")

    def _frames(self) -> List[Any]:
        items: List[Any] = []
        buf, start = self._buffer, 0
        while len(buf) - start >= HEADER:
            end = start + HEADER + int.from_bytes(buf[start:start + HEADER], "big")
            if end > len(buf):
                break
            with memoryview(buf) as view:
                items += pickle.loads(view[start + HEADER:end])
            start = end
        if start:
            del buf[:start]
        return items

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
