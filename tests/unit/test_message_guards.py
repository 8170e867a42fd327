"""What one message (or one bug it meets) can break on a worker: only itself.

The last-resort guards of the receive and run paths: ``Executor.prepare`` / ``fail``, the
consumer's loop, and the solo and threads pools (a prefork child runs the solo pool's loop).
Stand-ins replace the broker and the committer here; the system tests run the real thing.
"""
from __future__ import annotations

from typing import Any, List, Optional

import pytest

from multiq import MultiQ, states
from multiq.broker.redis import Delivery
from multiq.exceptions import DecodeError
from multiq.message import Message, envelope
from multiq.pools.solo import SoloPool
from multiq.pools.threads import ThreadPool
from multiq.worker.consumer import Consumer
from multiq.worker.execute import Executor, Request
from multiq.worker.state import WorkerState


class _Committer:
    """Records what would be written."""

    rider = None
    events_enabled = False

    def __init__(self) -> None:
        self.refused: List[Any] = []
        self.completed: List[Any] = []

    def refuse(self, d: Delivery, reason: str, task_id: Optional[str], exc: Any) -> None:
        self.refused.append((d, reason, task_id, exc))

    def complete(self, req: Request, outcome: Any) -> None:
        req.committed = True
        self.completed.append((req, outcome))

    def send_event(self, type_: str, **fields: Any) -> None:
        raise RuntimeError("the event cannot be built")


def _app() -> MultiQ:
    app = MultiQ("guards", broker="redis://127.0.0.1:1/0", set_as_current=False)

    @app.task(name="g.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _executor(committer: Any = None) -> Executor:
    return Executor(_app(), "host", "c", WorkerState(), committer or _Committer())


def _delivery(data: bytes, n: int = 1) -> Delivery:
    return Delivery("multiq", 0, b"%d-0" % n, data)


def _data(task_id: str = "t-1", task: str = "g.add") -> bytes:
    return envelope(task_id, task, "multiq", 1700000000.0, [1, 2], {})


def _request(executor: Executor, task_id: str = "t-1") -> Request:
    msg = Message(id=task_id, task="g.add", args=[1, 2])
    return Request(_delivery(_data(task_id)), msg, executor.app.tasks["g.add"],
                   early_ack=True)


@pytest.mark.timeout(10)
def test_prepare_refuses_a_delivery_whatever_it_raises() -> None:
    committer = _Committer()
    executor = _executor(committer)
    committer.events_enabled = True  # send_event raises while the request is built
    d = _delivery(_data("t-9"))
    assert executor.prepare(d) is None
    [(refused, reason, task_id, exc)] = committer.refused
    assert refused is d and task_id == "t-9"
    assert "the event cannot be built" in reason and isinstance(exc, RuntimeError)


@pytest.mark.timeout(10)
def test_a_refused_envelope_gets_a_result_only_with_a_string_id() -> None:
    committer = _Committer()
    executor = _executor(committer)
    executor.prepare(_delivery(b'{"id": 12345, "task": "g.add", "args": []}'))
    executor.prepare(_delivery(b'{"id": "t-2", "task": 7, "args": []}', 2))
    (_, first, no_id, exc1), (_, second, str_id, exc2) = committer.refused
    assert no_id is None and "id must be a non-empty string" in first
    assert str_id == "t-2" and "task must be" in second
    assert isinstance(exc1, DecodeError) and isinstance(exc2, DecodeError)


@pytest.mark.timeout(10)
def test_fail_commits_failure_once() -> None:
    committer = _Committer()
    executor = _executor(committer)
    req = _request(executor)
    executor.fail(req, RuntimeError("broken"))
    executor.fail(req, RuntimeError("again"))  # its outcome is handed in already
    [(got, outcome)] = committer.completed
    assert got is req and outcome.state == states.FAILURE
    assert str(outcome.exc) == "broken" and "RuntimeError" in outcome.traceback


def _raising(req: Request) -> None:
    raise RuntimeError(f"cannot run {req.id}")


@pytest.mark.timeout(10)
def test_solo_pool_fails_the_request_and_goes_on() -> None:
    executor = _executor()
    pool = SoloPool(_raising)
    failed: List[Any] = []
    pool.fail = lambda req, exc: failed.append((req, exc))
    req = _request(executor)
    pool.apply(req)  # does not raise
    assert [(r, str(e)) for r, e in failed] == [(req, "cannot run t-1")]
    assert pool.active() == []


@pytest.mark.timeout(10)
def test_threads_pool_fails_the_request_and_its_thread_goes_on() -> None:
    executor = _executor()
    ran: List[str] = []

    def execute(req: Request) -> None:
        if req.id == "bad":
            raise RuntimeError("bug")
        ran.append(req.id)

    pool = ThreadPool(execute, 1)
    failed: List[Any] = []
    pool.fail = lambda req, exc: failed.append(req.id)
    pool.start()
    try:
        pool.apply(_request(executor, "bad"))
        pool.apply(_request(executor, "good"))
        pool.stop(wait=True, timeout=5)
    finally:
        pool.stop(wait=False)
    assert failed == ["bad"] and ran == ["good"]


class _Broker:
    wire = None
    queue_order = "round_robin"


class _Pool:
    kind = "threads"
    feeder = None
    fail = None

    def held(self) -> List[Any]:
        return []


@pytest.mark.timeout(20)
def test_consumer_loop_survives_an_unexpected_error() -> None:
    consumer = Consumer(_Broker(), "c", ["multiq"], 4, _Pool(), _executor())  # type: ignore
    steps: List[int] = []

    def step(should_stop: Any) -> None:
        steps.append(len(steps))
        if len(steps) == 1:
            raise RuntimeError("a bug in one step")

    consumer._step = step  # type: ignore[method-assign]
    consumer._reclaim = lambda: None  # type: ignore[method-assign]
    consumer.run(lambda: len(steps) >= 3)
    assert steps == [0, 1, 2]
