"""The asyncio send path (``multiq.broker.wire.AsyncSender``) against the session's Redis:
replies in order, error replies, more coroutines than connections, cancellation."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from multiq.broker.wire import AsyncSender

pytestmark = pytest.mark.timeout(20)


def _run(redis_url: str, body: Any) -> Any:
    async def main() -> Any:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def test_commands_go_in_one_write_and_every_reply_comes_back_in_order(redis_url: str) -> None:
    async def body(client: Any) -> Any:
        sender = AsyncSender(client)
        replies = await sender.execute([("SET", "a", "1"), ("INCR", "a"), ("GET", "a")])
        await sender.close()
        return replies
    assert _run(redis_url, body) == [b"OK", 2, b"2"]  # raw replies, no callbacks


def test_an_error_reply_is_raised_after_every_reply_is_read(redis_url: str) -> None:
    async def body(client: Any) -> Any:
        sender = AsyncSender(client)
        with pytest.raises(redis.ResponseError):
            await sender.execute([("SET", "a", "x"), ("INCR", "a"), ("SET", "b", "2")])
        after = await sender.execute([("GET", "b")])  # the connection holds no stale reply
        return after, sender._out
    assert _run(redis_url, body) == ([b"2"], 1)


def test_more_coroutines_than_connections_wait_for_one_and_all_finish(redis_url: str) -> None:
    async def body(client: Any) -> Any:
        sender = AsyncSender(client, size=3)
        replies = await asyncio.gather(*(sender.execute([("INCR", "n")]) for _ in range(200)))
        return sorted(r[0] for r in replies), sender._out
    values, out = _run(redis_url, body)
    assert values == list(range(1, 201)) and out <= 3


def test_a_cancelled_exchange_leaves_no_reply_behind_nor_a_waiter_stuck(redis_url: str) -> None:
    async def body(client: Any) -> Any:
        sender = AsyncSender(client, size=1)
        slow = asyncio.ensure_future(sender.execute([("BLPOP", "never", "5")]))
        queued = asyncio.ensure_future(sender.execute([("PING",)]))  # waits for the one
        doomed = asyncio.ensure_future(sender.execute([("PING",)]))
        await asyncio.sleep(0.05)
        doomed.cancel()
        slow.cancel()  # its connection is closed, not reused with BLPOP's reply pending
        assert await queued == [b"PONG"]
        return await sender.execute([("SET", "k", "v"), ("GET", "k")])
    assert _run(redis_url, body) == [b"OK", b"v"]
