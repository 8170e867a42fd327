"""Client side of each system, used by the producer process: send, batch-send, round trip,
and the canvas calls (chord, chain, group) of multiq and Celery, which share those names.

Every ``send*`` returns the Redis keys under which the results will be stored, so the
driver can tell when the last result of a drain is in.
"""
from __future__ import annotations

import importlib
from typing import Any, List, Optional, Sequence


class NotAvailable(Exception):
    """The system has no public API for this (printed as n/a)."""


class Client:
    """One system's client API; subclasses import the library lazily."""

    module = ""
    canvas = ""  # the package whose chord/chain/group the canvas figures use

    def __init__(self) -> None:
        self.app: Any = importlib.import_module(self.module)
        self.task_name = ""  # another task of the app to send (``--task``)

    def task(self, counted: bool) -> Any:
        if self.task_name:
            return getattr(self.app, self.task_name)
        return self.app.noop_count if counted else self.app.noop

    def connect(self) -> None:
        """Open the connections before the clock starts."""

    def send(self, i: int, counted: bool) -> str:
        """Enqueue one task; return its result key."""
        raise NotImplementedError

    def send_batch(self, ids: Sequence[int], counted: bool) -> List[str]:
        """Enqueue ``ids`` with the system's bulk API; return their result keys."""
        raise NotAvailable("no batch API")

    def roundtrip(self, i: int) -> None:
        """Send ``noop(i)`` and wait for its result (at most 10 s)."""
        raise NotImplementedError

    async def aroundtrip(self, i: int) -> None:
        """``roundtrip`` with the system's awaitable client."""
        raise NotAvailable("no awaitable client")

    def ping(self, timeout: float) -> Optional[int]:
        """How many nodes answered a broadcast ping; None when there is no such API."""
        return None

    def _canvas(self) -> Any:
        if not self.canvas:
            raise NotAvailable("no canvas (chord, chain)")
        return importlib.import_module(self.canvas)

    def chord(self, n: int, timeout: float) -> Any:
        """``chord(add.s(i, i) for i in range(n))(tsum.s())``: the callback's value."""
        c, add = self._canvas(), self.app.add
        return c.chord(add.s(i, i) for i in range(n))(self.app.tsum.s()).get(timeout=timeout)

    def group(self, n: int, timeout: float) -> Any:
        """The chord's header alone, as a group: its values."""
        c, add = self._canvas(), self.app.add
        return c.group(add.s(i, i) for i in range(n)).apply_async().get(timeout=timeout)

    def chain(self, length: int, timeout: float) -> Any:
        """``chain(add.s(0, 1), add.s(1), ...)`` of ``length`` tasks: the last value."""
        c, add = self._canvas(), self.app.add
        links = (add.s(1) for _ in range(length - 1))
        return c.chain(add.s(0, 1), *links).apply_async().get(timeout=timeout)


class MultiqClient(Client):
    module = "bench.apps.mq_app"
    canvas = "multiq"

    def connect(self) -> None:
        self.app.app.broker.client.ping()
        self.app.app.backend.client.ping()

    def send(self, i: int, counted: bool) -> str:
        return str(self.app.app.backend.key(self.task(counted).delay(i).id))

    def send_batch(self, ids: Sequence[int], counted: bool) -> List[str]:
        from multiq import canvas

        group = getattr(canvas, "group", None)
        if group is None:
            raise NotAvailable("multiq has no batch API (no group)")
        task = self.task(counted)
        result = group(task.s(i) for i in ids).apply_async()
        return [str(self.app.app.backend.key(r.id)) for r in result.results]

    def roundtrip(self, i: int) -> None:
        value = self.app.noop.delay(i).get(timeout=10)
        assert value == i, (value, i)

    async def aroundtrip(self, i: int) -> None:
        value = await (await self.app.noop.adelay(i)).aget(timeout=10)
        assert value == i, (value, i)

    def ping(self, timeout: float) -> Optional[int]:
        return len(self.app.app.control.ping(timeout=timeout) or ())


class CeleryClient(Client):
    module = "bench.apps.celery_app"
    canvas = "celery"

    def connect(self) -> None:
        self.app.app.connection_for_write().ensure_connection(max_retries=3)
        self.app.app.backend.client.ping()

    def _key(self, task_id: str) -> str:
        return self.app.app.backend.get_key_for_task(task_id).decode()

    def send(self, i: int, counted: bool) -> str:
        return self._key(self.task(counted).delay(i).id)

    def send_batch(self, ids: Sequence[int], counted: bool) -> List[str]:
        from celery import group

        task = self.task(counted)
        result = group(task.s(i) for i in ids).apply_async()
        return [self._key(r.id) for r in result.results]

    def roundtrip(self, i: int) -> None:
        value = self.app.noop.delay(i).get(timeout=10)
        assert value == i, (value, i)

    def ping(self, timeout: float) -> Optional[int]:
        return len(self.app.app.control.ping(timeout=timeout) or ())


class RQClient(Client):
    module = "bench.apps.rq_app"

    def __init__(self) -> None:
        super().__init__()
        import redis
        from rq import Queue

        from bench.apps.common import BROKER_URL

        self.conn = redis.Redis.from_url(BROKER_URL)
        self.queue = Queue(self.app.QUEUE, connection=self.conn)

    def connect(self) -> None:
        self.conn.ping()

    @staticmethod
    def _key(job_id: str) -> str:
        from rq.results import Result

        return str(Result.get_key(job_id))

    def send(self, i: int, counted: bool) -> str:
        return self._key(self.queue.enqueue(self.task(counted), i).id)

    def send_batch(self, ids: Sequence[int], counted: bool) -> List[str]:
        from rq import Queue

        task = self.task(counted)
        jobs = self.queue.enqueue_many([Queue.prepare_data(task, (i,)) for i in ids])
        return [self._key(job.id) for job in jobs]

    def roundtrip(self, i: int) -> None:
        result = self.queue.enqueue(self.app.noop, i).latest_result(timeout=10)
        assert result is not None and result.return_value == i, (result, i)


class DramatiqClient(Client):
    module = "bench.apps.dramatiq_app"

    def connect(self) -> None:
        self.app.broker.client.ping()
        self.app.result_backend.client.ping()

    def _key(self, message: Any) -> str:
        return str(self.app.result_backend.build_message_key(message))

    def send(self, i: int, counted: bool) -> str:
        return self._key(self.task(counted).send(i))

    def send_batch(self, ids: Sequence[int], counted: bool) -> List[str]:
        import dramatiq

        task = self.task(counted)
        messages = [task.message(i) for i in ids]
        dramatiq.group(messages).run()
        return [self._key(m) for m in messages]

    def roundtrip(self, i: int) -> None:
        value = self.app.noop.send(i).get_result(block=True, timeout=10_000)
        assert value == i, (value, i)


CLIENTS = {"multiq": MultiqClient, "celery": CeleryClient, "rq": RQClient,
           "dramatiq": DramatiqClient}
