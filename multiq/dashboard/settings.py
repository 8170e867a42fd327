"""The dashboard's options, checked before anything listens: who may connect, and how."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class SettingsError(ValueError):
    """The options do not make a safe or valid dashboard (the message says why)."""


@dataclass(frozen=True)
class Credentials:
    """Who may use the dashboard: ``user:password`` pairs and/or one bearer token."""

    basic: Tuple[Tuple[str, str], ...] = ()
    token: Optional[str] = None

    @property
    def required(self) -> bool:
        return bool(self.basic or self.token)


@dataclass(frozen=True)
class DashboardSettings:
    """``multiq dashboard``'s options (see the command's help)."""

    address: str = "127.0.0.1"
    port: int = 5555
    url_prefix: str = ""
    credentials: Credentials = field(default_factory=Credentials)
    read_only: bool = False
    unauthenticated: bool = False
    history_max_tasks: int = 100_000
    history_max_age: float = 7 * 86400
    metric_prefix: str = "multiq"  # of the names /metrics serves
    feed: bool = True  # fold events into the history in this process

    @property
    def prefix(self) -> str:
        return normalize_prefix(self.url_prefix)

    def check(self) -> DashboardSettings:
        """Raise :class:`SettingsError` unless these settings may be served."""
        if not 0 < self.port < 65536:
            raise SettingsError(f"--port must be 1..65535, not {self.port}")
        if self.history_max_tasks < 1 or self.history_max_age <= 0:
            raise SettingsError("the history must keep at least one task for some time")
        if not self.credentials.required and not self.unauthenticated \
                and not is_loopback(self.address):
            raise SettingsError(
                f"Refusing to listen on {self.address} without authentication: give "
                "--basic-auth user:password or --auth-token, or --unauthenticated to serve "
                "anyone who can reach the address")
        return self


def parse_basic(values: List[str]) -> Tuple[Tuple[str, str], ...]:
    """``["user:password", ...]`` -> pairs; SettingsError for one without both parts."""
    pairs = []
    for value in values:
        user, colon, password = value.partition(":")
        if not colon or not user or not password:
            raise SettingsError("--basic-auth takes user:password (both non-empty)")
        pairs.append((user, password))
    return tuple(pairs)


def normalize_prefix(prefix: str) -> str:
    """``"p/"``, ``"/p"`` -> ``"/p"``; ``""`` or ``"/"`` -> ``""``."""
    parts = [p for p in (prefix or "").split("/") if p]
    return "/" + "/".join(parts) if parts else ""


def is_loopback(address: str) -> bool:
    """Whether ``address`` is reachable from this host only."""
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False
