"""Fixtures shared by the system tests."""
from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def rec(redis_server: Any, redis_url: str) -> Iterator[Any]:
    """A client for db 3, where the test apps record what their tasks did."""
    client = redis_server.client(3)
    yield client
    client.close()
