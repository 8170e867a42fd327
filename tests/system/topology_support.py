"""Fixtures for the tests that run on a Cluster or Sentinel: the record of what tasks did
stays in db 3 of the plain test Redis, and workers are told so (``SYSQ_RECORD_URL``).

A test module imports ``rec`` and ``worker_env`` from here and defines ``redis_url`` and
``backend_url`` for its topology.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator

import pytest

RECORD_DB = 3


def is_sentinel(topology: Any) -> bool:
    return hasattr(topology, "sentinels")


def urls(topology: Any) -> Dict[str, str]:
    """Broker and backend URLs: db 1 and 2 behind Sentinel, db 0 (the only one) on a
    Cluster."""
    if is_sentinel(topology):
        return {"broker": topology.url(1), "backend": topology.url(2)}
    return {"broker": topology.url(), "backend": topology.url()}


@pytest.fixture
def rec(redis_server: Any) -> Iterator[Any]:
    """db 3 of the plain test Redis, emptied: the record of what tasks did."""
    client = redis_server.client(RECORD_DB)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def worker_env(redis_url: str, backend_url: str, redis_server: Any) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(MULTIQ_BROKER_URL=redis_url, MULTIQ_RESULT_BACKEND=backend_url,
               SYSQ_RECORD_URL=redis_server.url(RECORD_DB), PYTHONUNBUFFERED="1")
    return env
