"""Where the system-test apps record what their tasks did: db 3 of the broker's server, or
``SYSQ_RECORD_URL`` when the broker is a Cluster or Sentinel (whose failures must not touch
the record)."""
from __future__ import annotations

import os
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import redis

RECORD_DB = 3

_clients: Dict[Tuple[int, str], redis.Redis] = {}


def record_url(broker_url: str) -> str:
    """The broker URL with its database replaced by ``RECORD_DB``."""
    parts = urlsplit(broker_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{RECORD_DB}", parts.query, ""))


def recorder(broker_url: Optional[str] = None) -> redis.Redis:
    """A client for db 3, made anew in each process (never shared across fork)."""
    url = os.environ.get("SYSQ_RECORD_URL") or \
        record_url(broker_url or os.environ["MULTIQ_BROKER_URL"])
    key = (os.getpid(), url)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(url)
    return _clients[key]
