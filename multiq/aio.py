"""The awaitable client: ``await task.adelay()``, ``await result.aget()``.

Messages are made by the same code as ``delay()`` (``send_task``, with its publish
deferred), then written on a ``redis.asyncio`` connection in one go (see
:class:`multiq.broker.wire.AsyncSender`); a result is awaited on the same
notification ``get()`` waits for (SUBSCRIBE to the result's channel, then read it), never
by polling. Each app keeps one pair of asyncio clients (broker, results) per event loop.
On a Redis Cluster, where redis-py has no asyncio pub/sub, the blocking client runs in a
thread (``asyncio.to_thread``) instead.
"""
from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Set, Tuple

from multiq import states
from multiq.exceptions import TimeoutError

if TYPE_CHECKING:
    from multiq.app import MultiQ

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {app id: pair}


class _Clients(NamedTuple):
    """One event loop's asyncio clients of an app, and the senders on their pools."""

    broker: Any
    backend: Any
    broker_sender: Any
    backend_sender: Any


def clients(app: MultiQ) -> Tuple[Any, Any]:
    """This event loop's (broker, backend) asyncio clients of ``app`` (None on a cluster)."""
    found = _loop_clients(app)
    return found.broker, found.backend


def _loop_clients(app: MultiQ) -> _Clients:
    from multiq.broker.wire import AsyncSender
    from multiq.connopts import backend_options, broker_options
    from multiq.redisconn import connect_async

    loop = asyncio.get_running_loop()
    per_app: Dict[int, _Clients] = _clients.setdefault(loop, {})
    found = per_app.get(id(app))
    if found is None:
        conf = app.conf
        broker = connect_async(app.broker.url, broker_options(conf, node=app._node))
        backend_url = app.backend.url
        backend = connect_async(backend_url, backend_options(conf)) \
            if backend_url != app.broker.url else broker
        senders = [AsyncSender(c) if c is not None else None for c in (broker, backend)]
        found = per_app[id(app)] = _Clients(broker, backend, *senders)
    return found


async def send(app: MultiQ, name: str, args: Any, kwargs: Any, **options: Any) -> Any:
    """``send_task`` whose write to Redis is awaited; returns the AsyncResult."""
    found = _loop_clients(app)
    if found.broker is None:
        return await asyncio.to_thread(app.send_task, name, args, kwargs, **options)
    with app.deferred_publishes() as sends:
        result = app.send_task(name, args, kwargs, **options)
    await publish(app, found.broker_sender, sends)
    return result


async def publish(app: MultiQ, sender: Any, sends: List[Any]) -> None:
    """Write deferred publishes (queue, data, priority, eta, member) in one round trip."""
    from multiq.broker.wire import Commands

    if not sends:
        return
    commands = Commands()
    broker = app.broker
    for queue, data, priority, eta, member in sends:
        broker.publish(queue, data, priority=priority, eta=eta, member=member, pipe=commands)
    broker.seal(commands)
    await sender.execute(commands.stack)


async def wait_for(app: MultiQ, task_id: str, timeout: Optional[float]) -> Dict[str, Any]:
    """The task's result document once it is ready (TimeoutError after ``timeout``)."""
    backend = app.backend
    found = _loop_clients(app)
    if found.backend is None:
        return await asyncio.to_thread(backend.wait_for, task_id, timeout)
    return await _listener(app, found).wait(task_id, timeout)


def _listener(app: MultiQ, found: _Clients) -> _Listener:
    loop = asyncio.get_running_loop()
    per_app = _listeners.setdefault(loop, {})
    listener = per_app.get(id(app))
    if listener is None:
        listener = per_app[id(app)] = _Listener(app.backend, found.backend,
                                                found.backend_sender)
    return listener


_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {app id: L}


class _Listener:
    """One subscriber connection per app and loop, shared by every awaited result: a
    waiter subscribes to its result's channel, then reads the result; one reader task
    hands each notification to the waiters of its channel."""

    def __init__(self, backend: Any, client: Any, sender: Any) -> None:
        self.backend, self.client, self.sender = backend, client, sender
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.waiters: Dict[bytes, List[asyncio.Future]] = {}
        self.reader: Optional[asyncio.Task] = None
        self.lock = asyncio.Lock()  # one (un)subscribe at a time: one connection, made once
        self.stale: Set[str] = set()  # channels no one waits on, still subscribed
        self.sweeper: Optional[asyncio.Task] = None

    async def wait(self, task_id: str, timeout: Optional[float]) -> Dict[str, Any]:
        key = self.backend.key(task_id)
        channel = key.encode()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        first = channel not in self.waiters
        self.waiters.setdefault(channel, []).append(future)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if first:
                async with self.lock:  # before reading: no write slips between
                    if key in self.stale:  # still subscribed
                        self.stale.discard(key)
                    else:
                        await self.pubsub.subscribe(key)
            if self.reader is None or self.reader.done():
                self.reader = asyncio.ensure_future(self._read())
            while True:
                [raw] = await self.sender.execute([("GET", key)])
                doc = self.backend.decode(task_id, raw)
                if doc["status"] in states.READY_STATES:
                    return doc
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"The operation timed out waiting for task {task_id}")
                # woken by the notification; read again after a quiet second
                doc = await _within(future, min(left, 1.0))
                if doc is not None and doc["status"] in states.READY_STATES:
                    return doc
                waiting = self.waiters.setdefault(channel, [])  # wait again, on a new one
                if future in waiting:
                    waiting.remove(future)
                future = asyncio.get_running_loop().create_future()
                waiting.append(future)
        finally:
            self._leave(channel, key, future)

    def _leave(self, channel: bytes, key: str, future: asyncio.Future) -> None:
        """This waiter is done; the last of a channel leaves it to be unsubscribed after the
        result went back (with the other stale channels, in one command)."""
        waiting = self.waiters.get(channel, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self.waiters.pop(channel, None)
            self.stale.add(key)
            if self.sweeper is None or self.sweeper.done():
                self.sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        await asyncio.sleep(0)  # after the waiter's caller has its result
        async with self.lock:
            while self.stale:  # (those left while this one was sent too)
                keys, self.stale = self.stale, set()
                try:
                    await self.pubsub.unsubscribe(*keys)
                except Exception:  # the reader sees a broken connection and starts over
                    pass

    async def _read(self) -> None:
        """Hand notifications to their waiters while anyone waits. A read blocks until the
        next reply: a notification, or the confirmation of a waiter's (un)subscribe, after
        which the last waiter's leaving ends the reader."""
        while self.waiters:
            try:
                reply = await self.pubsub.parse_response(block=True)
            except Exception:  # a lost connection: waiters re-read their results
                await asyncio.sleep(0.1)
                continue
            if not isinstance(reply, list) or len(reply) != 3 or reply[0] != b"message":
                continue
            try:
                doc = json.loads(reply[2])
            except ValueError:
                continue
            for future in self.waiters.get(reply[1], ()):
                if not future.done():
                    future.set_result(doc)


async def _within(future: asyncio.Future, timeout: float) -> Any:
    """``future``'s result, or None once ``timeout`` passed (cheaper than ``wait_for``,
    which makes a task of it)."""
    timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def get_many(app: MultiQ, task_ids: List[str]) -> List[Dict[str, Any]]:
    """The documents of ``task_ids`` in one round trip (per thousand)."""
    backend = app.backend
    _, client = clients(app)
    if client is None:
        return await asyncio.to_thread(backend.get_many, task_ids)
    out: List[Dict[str, Any]] = []
    for start in range(0, len(task_ids), 1000):
        part = task_ids[start:start + 1000]
        raw = await client.mget([backend.key(t) for t in part])
        out += [backend.decode(t, r) for t, r in zip(part, raw)]
    return out
