"""A dependency-free client for systemd's notification protocol (``sd_notify``).

A ``Type=notify`` unit gets ``NOTIFY_SOCKET`` in its environment: the address
of a Unix datagram socket, either a filesystem path or, when it starts with
``@``, a Linux abstract socket. Each message is one datagram of
``KEY=VALUE`` lines, such as ``READY=1``. When ``WatchdogSec=`` is set, systemd
also exports ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the process meant to
send ``WATCHDOG=1``).

Without ``NOTIFY_SOCKET`` every method does nothing, so callers never need to
check whether they run under systemd. Sending never raises: a failure is
logged at debug level and reported by the return value.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import MutableMapping, Optional

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(value: Optional[str]) -> Optional[str]:
    """Turn ``NOTIFY_SOCKET`` into an ``AF_UNIX`` address, or None if unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # Other forms (vsock:..., relative paths) are not supported.
    logger.debug("ignoring unsupported NOTIFY_SOCKET=%r", value)
    return None


def _positive_int(value: Optional[str]) -> Optional[int]:
    try:
        number = int(value) if value else 0
    except ValueError:
        return None
    return number if number > 0 else None


class Notifier:
    """Sends ``READY=1``, ``STOPPING=1``, ``STATUS=...`` and ``WATCHDOG=1`` to systemd."""

    def __init__(
        self,
        notify_socket: Optional[str] = None,
        watchdog_usec: Optional[int] = None,
        watchdog_pid: Optional[int] = None,
    ) -> None:
        """Use ``notify_socket`` as ``NOTIFY_SOCKET`` would give it (path or ``@name``)."""
        self.notify_socket = notify_socket
        self.address = _socket_address(notify_socket)
        self.watchdog_usec = watchdog_usec
        self.watchdog_pid = watchdog_pid

    @classmethod
    def from_environ(
        cls,
        environ: Optional[MutableMapping[str, str]] = None,
        *,
        unset: bool = False,
    ) -> Notifier:
        """Build from ``environ`` (default ``os.environ``).

        With ``unset`` the variables are removed from ``environ`` afterwards,
        so that child processes (pool workers) do not inherit them.
        """
        env: MutableMapping[str, str] = os.environ if environ is None else environ
        notifier = cls(
            env.get("NOTIFY_SOCKET") or None,
            _positive_int(env.get("WATCHDOG_USEC")),
            _positive_int(env.get("WATCHDOG_PID")),
        )
        if unset:
            for name in ENV_VARS:
                env.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self.address is not None

    @property
    def watchdog_interval(self) -> Optional[float]:
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``).

        None when no watchdog is configured, or when ``WATCHDOG_PID`` names
        another process (a forked child must not ping for its parent).
        """
        if not self.enabled or not self.watchdog_usec:
            return None
        if self.watchdog_pid is not None and self.watchdog_pid != os.getpid():
            return None
        return self.watchdog_usec / 2_000_000

    def ready(self, status: Optional[str] = None) -> bool:
        """Startup is complete: the node is consuming."""
        return self.send("READY=1", *self._status_field(status))

    def stopping(self, status: Optional[str] = None) -> bool:
        """A shutdown has begun."""
        return self.send("STOPPING=1", *self._status_field(status))

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return self.send(*self._status_field(text))

    def watchdog(self) -> bool:
        """Tell the watchdog the process is alive."""
        return self.send("WATCHDOG=1")

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields as one datagram; True if it was sent."""
        if self.address is None or not fields:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(data, self.address)
        except OSError as exc:
            logger.debug("sd_notify to %s failed: %s", self.notify_socket, exc)
            return False
        return True

    @staticmethod
    def _status_field(text: Optional[str]) -> tuple[str, ...]:
        if text is None:
            return ()
        return ("STATUS=" + " ".join(text.splitlines()),)

    def __repr__(self) -> str:
        return f"<Notifier socket={self.notify_socket!r} watchdog_usec={self.watchdog_usec}>"
