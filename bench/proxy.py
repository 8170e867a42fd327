"""A loopback TCP proxy that counts request bursts: round trips a client makes to Redis.

A burst is client->server data after the server has answered (or the first data of a
connection): one command, or one pipelined write however many segments it takes, is one
burst. Pushed data (pub/sub messages) never starts one. Every burst is stamped with
``time.time()``, so a window of the run can be counted afterwards. Connections are told
apart by the database their client selects when it connects (``db0`` when it selects
none): one port serves them all, so a client still sees one server behind several URLs.
"""
from __future__ import annotations

import re
import selectors
import socket
import threading
import time
from typing import Dict, List, Optional, Tuple

_SELECT = re.compile(rb"\*2\r\n\$6\r\nSELECT\r\n\$\d+\r\n(\d+)\r\n", re.IGNORECASE)
_SNIFF = 10  # bursts at the start of a connection (HELLO, CLIENT SETINFO, AUTH, SELECT...)
# in which its SELECT is looked for


class _Pipe:
    """One proxied connection: the client side, the server side, its burst stamps."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.label = "db0"
        self.labelled = False
        self.stamps: List[float] = []
        self.answered = True  # the server spoke last (or nobody yet)


class CountingProxy:
    """Listens on a free loopback port (``.port``), forwarding every connection to
    ``target``."""

    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self._sel = selectors.DefaultSelector()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self.port = int(self._listener.getsockname()[1])
        self.pipes: List[_Pipe] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="counting-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._sel.close()

    def bursts(self, since: float, until: float) -> Dict[str, int]:
        """Bursts stamped in ``[since, until]``, summed per label (``db<n>``)."""
        out: Dict[str, int] = {}
        with self._lock:
            for pipe in self.pipes:
                hits = sum(1 for t in pipe.stamps if since <= t <= until)
                out[pipe.label] = out.get(pipe.label, 0) + hits
        return out

    def connections(self) -> int:
        return len(self.pipes)

    def _loop(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._forward(key.fileobj, *key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        server = socket.create_connection(self.target)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        pipe = _Pipe(client, server)
        with self._lock:
            self.pipes.append(pipe)
        self._sel.register(client, selectors.EVENT_READ, (pipe, True))
        self._sel.register(server, selectors.EVENT_READ, (pipe, False))

    def _forward(self, sock: socket.socket, pipe: _Pipe, from_client: bool) -> None:
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(pipe)
            return
        if from_client and pipe.answered:
            with self._lock:
                pipe.stamps.append(time.time())
        if from_client and not pipe.labelled and len(pipe.stamps) <= _SNIFF:
            found = _SELECT.search(data)
            if found:
                pipe.label, pipe.labelled = f"db{int(found.group(1))}", True
        pipe.answered = not from_client
        peer = pipe.server if from_client else pipe.client
        try:
            peer.settimeout(5.0)  # loopback, small writes: does not wait in practice
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close(pipe)

    def _close(self, pipe: _Pipe) -> None:
        for sock in (pipe.client, pipe.server):
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
