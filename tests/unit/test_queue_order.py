"""The order a node reads its queues in (``queue_order_strategy``), and the cluster's slot
waiters reading their queues in the order of each wait."""
from __future__ import annotations

import threading
from typing import List, Sequence, Tuple

import pytest

from multiq.broker.order import QueueOrder
from multiq.broker.redis import RedisBroker
from multiq.broker.waiters import SlotWaiters
from multiq.exceptions import ImproperlyConfigured, MultiQError


@pytest.mark.timeout(10)
def test_round_robin_starts_each_fetch_from_the_next_queue() -> None:
    order = QueueOrder(["a", "b", "c"])
    assert [order.next() for _ in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


@pytest.mark.timeout(10)
def test_priority_and_sorted_keep_one_strict_order() -> None:
    strict = QueueOrder(["b", "c", "a"], "priority")
    assert [strict.next() for _ in range(3)] == [["b", "c", "a"]] * 3
    by_name = QueueOrder(["b", "c", "a"], "sorted")
    assert [by_name.next() for _ in range(3)] == [["a", "b", "c"]] * 3


@pytest.mark.timeout(10)
def test_a_change_of_queues_starts_the_rotation_over() -> None:
    order = QueueOrder(["a"])
    assert [order.next() for _ in range(2)] == [["a"], ["a"]]
    order.reset(["a", "b"])
    order.next()
    order.reset(["x", "a", "b"])
    assert [order.next() for _ in range(3)] == [
        ["x", "a", "b"], ["a", "b", "x"], ["b", "x", "a"]]


@pytest.mark.timeout(10)
def test_an_unknown_strategy_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        RedisBroker("redis://127.0.0.1:1/0", {"queue_order_strategy": "fair"})
    message = str(info.value)
    assert "'fair'" in message and "queue_order_strategy" in message
    assert all(f"'{name}'" in message for name in ("round_robin", "priority", "sorted"))
    assert isinstance(info.value, MultiQError)
    assert RedisBroker("redis://127.0.0.1:1/0", {}).queue_order == "round_robin"


def _until_read(waiters: SlotWaiters, group: List[str]) -> list:
    """Wait until the read of ``group`` comes back (a read armed before may come first)."""
    got: list = []
    while tuple(group) not in got:
        got += waiters.wait([group], 4, 1000)
    return got


@pytest.mark.timeout(10)
def test_slot_waiters_read_in_the_order_of_each_wait_without_new_threads() -> None:
    reads: List[Tuple[str, ...]] = []

    def read(queues: Sequence[str], count: int, block_ms: int) -> list:
        reads.append(tuple(queues))
        return [tuple(queues)]

    waiters = SlotWaiters(read)
    _until_read(waiters, ["a", "b"])
    threads = threading.active_count()
    _until_read(waiters, ["b", "a"])
    _until_read(waiters, ["a", "b"])
    assert threading.active_count() == threads  # the thread of {a, b} serves every order
    assert reads == [("a", "b"), ("b", "a"), ("a", "b")]
    waiters.close()
