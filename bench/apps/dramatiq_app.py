"""Dramatiq broker with the ``Results`` middleware; actors store their results."""
from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from bench.apps.common import BACKEND_URL, BROKER_URL, count

result_backend = RedisBackend(url=BACKEND_URL)
broker = RedisBroker(url=BROKER_URL)
broker.add_middleware(Results(backend=result_backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def noop(i: Any) -> Any:
    """Return ``i``."""
    return i


@dramatiq.actor(store_results=True)
def noop_count(i: Any) -> Any:
    """Count the completion, return ``i``."""
    count()
    return i
