"""``trace`` and ``atrace`` share their pieces: the same outcomes, hooks and signals for a
plain function and a coroutine; the request stack is per thread and per asyncio Task."""
from __future__ import annotations

import asyncio
import random
import threading
from typing import Any, Iterator, List, Tuple

import pytest

from multiq import MultiQ, Task, _state, signals, states
from multiq.exceptions import CallKilled, Ignore, Reject, SoftTimeLimitExceeded
from multiq.task import Context
from multiq.trace import IGNORED, atrace, trace
from multiq.worker.state import current_request

SIGNALS = ("task_prerun", "task_success", "task_failure", "task_retry", "task_postrun")


class Recorded(Task):
    """Every hook it goes through, in ``calls``."""

    calls: List[str] = []

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append("before_start")

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append(f"on_success:{retval!r}")
        if retval == "bad hook":
            raise RuntimeError("on_success raised")

    def on_failure(self, exc: BaseException, *rest: Any) -> None:
        self.calls.append(f"on_failure:{type(exc).__name__}")

    def on_retry(self, exc: BaseException, *rest: Any) -> None:
        self.calls.append(f"on_retry:{type(exc).__name__}")

    def after_return(self, state: str, retval: Any, *rest: Any) -> None:
        self.calls.append(f"after_return:{state}")


@pytest.fixture
def app() -> Iterator[MultiQ]:
    app = MultiQ("atrace")
    Recorded.calls = []
    receivers = []
    for name in SIGNALS:
        def receiver(sender: Any = None, _name: str = name, **_: Any) -> None:
            Recorded.calls.append(_name)
        getattr(signals, name).connect(receiver)
        receivers.append((getattr(signals, name), receiver))
    yield app
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def _request(task: Task, *args: Any, id: str = "t-1", retries: int = 0) -> Context:
    return Context(id=id, task=task.name, args=list(args), kwargs={}, retries=retries,
                   is_eager=False, called_directly=False)


class Flaky(Exception):
    pass


def _behaviour(kind: str, self: Task) -> Any:
    if kind == "ok":
        return 42
    if kind == "bad hook":
        return "bad hook"
    if kind == "error":
        raise KeyError("boom")
    if kind == "retry":
        raise self.retry(countdown=1)
    if kind == "autoretry":
        raise Flaky("again")
    if kind == "ignore":
        raise Ignore()
    if kind == "reject":
        raise Reject("no", requeue=True)
    raise AssertionError(kind)


def _tasks(app: MultiQ) -> Tuple[Task, Task]:
    options = dict(base=Recorded, bind=True, autoretry_for=(Flaky,),
                   retry_kwargs={"countdown": 1})

    @app.task(name="t.plain", **options)
    def plain(self: Task, kind: str) -> Any:
        return _behaviour(kind, self)

    @app.task(name="t.coro", **options)
    async def coro(self: Task, kind: str) -> Any:
        await asyncio.sleep(0)
        return _behaviour(kind, self)

    return plain, coro


@pytest.mark.parametrize("kind, state", [
    ("ok", states.SUCCESS), ("bad hook", states.FAILURE), ("error", states.FAILURE),
    ("retry", states.RETRY), ("autoretry", states.RETRY), ("ignore", IGNORED),
    ("reject", states.REJECTED),
])
def test_trace_and_atrace_agree(app: MultiQ, kind: str, state: str) -> None:
    plain, coro = _tasks(app)
    sync = trace(plain, _request(plain, kind))
    sync_calls, Recorded.calls[:] = list(Recorded.calls), []
    got = asyncio.run(atrace(coro, _request(coro, kind)))
    assert (sync.state, got.state) == (state, state)
    assert type(got.exc) is type(sync.exc) and got.retval == sync.retval
    assert got.requeue == sync.requeue and (got.retry is None) == (sync.retry is None)
    assert Recorded.calls == sync_calls
    assert sync_calls[0] == "task_prerun" and sync_calls[-1] == "task_postrun"
    assert not _state.task_stack()


def test_atrace_runs_a_plain_function_too(app: MultiQ) -> None:
    plain, _ = _tasks(app)
    assert asyncio.run(atrace(plain, _request(plain, "ok"))).retval == 42


def _cancelled_midway(task: Task, reason: BaseException) -> Any:
    async def main() -> Any:
        running = asyncio.ensure_future(atrace(task, _request(task), lambda: reason))
        await asyncio.sleep(0.01)
        running.cancel()
        return await running

    return asyncio.run(main())


def test_a_cancellation_fails_the_call_with_its_reason(app: MultiQ) -> None:
    @app.task(name="t.sleepy", base=Recorded)
    async def sleepy() -> None:
        await asyncio.sleep(10)

    outcome = _cancelled_midway(sleepy, SoftTimeLimitExceeded("soft"))
    assert outcome.state == states.FAILURE
    assert isinstance(outcome.exc, SoftTimeLimitExceeded)
    assert "on_failure:SoftTimeLimitExceeded" in Recorded.calls
    assert "SoftTimeLimitExceeded" in outcome.traceback


def test_a_call_killed_passes_the_hooks_untouched(app: MultiQ) -> None:
    @app.task(name="t.sleepy", base=Recorded)
    async def sleepy() -> None:
        await asyncio.sleep(10)

    with pytest.raises(CallKilled):
        _cancelled_midway(sleepy, CallKilled("timeout", 1.0))
    assert Recorded.calls == ["task_prerun", "before_start"]
    assert not _state.task_stack()


def test_fifty_interleaved_coroutines_each_see_their_own_request(app: MultiQ) -> None:
    seen: List[Tuple[str, str]] = []

    @app.task(name="t.who", bind=True)
    async def who(self: Task, n: int) -> str:
        for _ in range(5):
            await asyncio.sleep(random.random() / 100)
            seen.append((self.request.id, current_request().id))

            async def child() -> str:  # an asyncio Task it starts sees its request
                await asyncio.sleep(0)
                return self.request.id
            seen.append((self.request.id, await asyncio.ensure_future(child())))
            nested = nested_task.apply(args=(n,)).get()  # an eager call inside it
            seen.append((self.request.id, nested))
        return self.request.id

    @app.task(name="t.nested", bind=True)
    def nested_task(self: Task, n: int) -> str:
        stack = _state.task_stack()
        assert stack is not None and len(stack) == 2 and stack[-1] is self.request
        return stack[0].id  # the coroutine's request, under its own

    async def main() -> List[Any]:
        return await asyncio.gather(*[
            atrace(who, _request(who, n, id=f"t-{n}")) for n in range(50)])

    outcomes = asyncio.run(main())
    assert [o.retval for o in outcomes] == [f"t-{n}" for n in range(50)]
    assert len(seen) == 50 * 5 * 3
    assert all(a == b for a, b in seen), [p for p in seen if p[0] != p[1]][:5]
    assert not _state.task_stack()


def test_the_request_stack_is_per_thread(app: MultiQ) -> None:
    @app.task(name="t.peek", bind=True)
    def peek(self: Task) -> str:
        found: List[Any] = []
        thread = threading.Thread(target=lambda: found.append(_state.task_stack()))
        thread.start()
        thread.join()
        assert found == [None]  # another thread: none of this one's requests
        return self.request.id

    assert trace(peek, _request(peek, id="p-1")).retval == "p-1"
    assert not _state.task_stack()


def test_atrace_leaves_the_callers_stack_as_it_was(app: MultiQ) -> None:
    @app.task(name="t.inner", bind=True)
    async def inner(self: Task) -> List[str]:
        return [r.id for r in _state.task_stack()]

    outer = _request(inner, id="outer")

    async def main() -> Tuple[Any, List[str]]:
        inner.push_request(outer)
        try:
            got = await atrace(inner, _request(inner, id="inner"))
            return got, [r.id for r in _state.task_stack()]
        finally:
            inner.pop_request()

    got, after = asyncio.run(main())
    assert got.retval == ["outer", "inner"]
    assert after == ["outer"]
