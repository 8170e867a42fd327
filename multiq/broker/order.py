"""The order a node reads its queues in, fetch after fetch (``queue_order_strategy``).

- ``round_robin`` (the default): each fetch starts from the next queue in turn, so a
  busy queue cannot starve the others; a message waits at most about one fetch per other
  busy queue.
- ``priority``: the queues in the order given (``-Q a,b``): ``b`` only when ``a`` is empty.
- ``sorted``: as ``priority``, by queue name.

Priority bands are always strict within a queue (band 9 first). Rotating is a local index:
it costs no Redis call.
"""
from __future__ import annotations

from typing import Any, List, Sequence

from multiq.exceptions import ImproperlyConfigured

ROUND_ROBIN = "round_robin"
PRIORITY = "priority"
SORTED = "sorted"
STRATEGIES = (ROUND_ROBIN, PRIORITY, SORTED)


def strategy_of(value: Any) -> str:
    """The strategy named by ``value`` (None: the default); anything else is refused."""
    if value is None:
        return ROUND_ROBIN
    if value not in STRATEGIES:
        raise ImproperlyConfigured(
            f"broker_transport_options['queue_order_strategy'] is {value!r}; "
            f"use one of {', '.join(map(repr, STRATEGIES))}")
    return str(value)


class QueueOrder:
    """Hands out the queue order of each fetch."""

    def __init__(self, queues: Sequence[str], strategy: str = ROUND_ROBIN) -> None:
        self.strategy = strategy_of(strategy)
        self.reset(queues)

    def reset(self, queues: Sequence[str]) -> None:
        """Start over with another set of queues (a consumer added or cancelled)."""
        base = sorted(queues) if self.strategy == SORTED else list(queues)
        if self.strategy == ROUND_ROBIN and len(base) > 1:
            self._turns = [base[i:] + base[:i] for i in range(len(base))]
        else:
            self._turns = [base]
        self._turn = 0

    def next(self) -> List[str]:
        """The order for the next fetch (do not change the list: it is reused)."""
        turns = self._turns
        if len(turns) == 1:
            return turns[0]
        i = self._turn % len(turns)  # (a reset from another thread may be under way)
        self._turn = i + 1
        return turns[i]
