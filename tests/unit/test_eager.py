"""Unit tests for running tasks locally: ``apply()``, ``task_always_eager``, retries, hooks,
signals and ``link`` callbacks. No broker or result backend is involved."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from multiq import MultiQ, Task, signals
from multiq.exceptions import MaxRetriesExceededError
from multiq.result import EagerResult


def make_app(**settings: Any) -> MultiQ:
    return MultiQ("eager", **settings)  # no broker, no backend: nothing may need them


@pytest.fixture
def app() -> MultiQ:
    return make_app()


@pytest.fixture
def connect() -> Iterator[Callable[..., Any]]:
    """Connect a receiver to a (global) signal for this test only."""
    connected: List[Tuple[Any, Any, Any]] = []

    def do(signal: Any, receiver: Any, sender: Any = None) -> Any:
        signal.connect(receiver, sender=sender)
        connected.append((signal, receiver, sender))
        return receiver

    yield do
    for signal, receiver, sender in connected:
        signal.disconnect(receiver, sender=sender)


# -- apply() ---------------------------------------------------------------------------------


def test_apply_returns_an_eager_result(app: MultiQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply((2, 3))
    assert isinstance(result, EagerResult)
    assert result.get() == 5
    assert result.result == 5
    assert result.status == result.state == "SUCCESS"
    assert result.successful() and result.ready() and not result.failed()
    assert result.id and isinstance(result.id, str)
    assert result.traceback is None
    assert add.apply((1, 1), task_id="fixed").id == "fixed"
    assert add.apply(kwargs={"x": 1, "y": 2}).get() == 3


def test_apply_sees_an_eager_request(app: MultiQ) -> None:
    seen: Dict[str, Any] = {}

    @app.task(bind=True)
    def who(self: Task, a: int, b: int = 0) -> None:
        request = self.request
        seen.update(id=request.id, args=list(request.args), kwargs=dict(request.kwargs),
                    is_eager=request.is_eager, retries=request.retries,
                    called_directly=request.called_directly)

    who.apply((1,), {"b": 2}, task_id="abc")
    assert seen == {"id": "abc", "args": [1], "kwargs": {"b": 2}, "is_eager": True,
                    "retries": 0, "called_directly": False}
    who(1)  # a direct call has no request of its own
    assert seen["called_directly"] is True


def test_apply_of_a_failing_task_returns_failure(app: MultiQ) -> None:
    @app.task
    def div(x: int, y: int) -> float:
        return x / y

    result = div.apply((1, 0))
    assert result.status == "FAILURE"
    assert result.failed() and result.ready() and not result.successful()
    assert isinstance(result.result, ZeroDivisionError)
    assert "ZeroDivisionError" in (result.traceback or "")
    with pytest.raises(ZeroDivisionError):
        result.get()
    assert isinstance(result.get(propagate=False), ZeroDivisionError)


def test_eager_propagates_raises_at_once() -> None:
    app = make_app(task_eager_propagates=True)

    @app.task
    def div(x: int, y: int) -> float:
        return x / y

    with pytest.raises(ZeroDivisionError):
        div.apply((1, 0))
    assert div.apply((4, 2)).get() == 2.0


def test_apply_throw_argument_overrides_the_setting(app: MultiQ) -> None:
    @app.task
    def fail() -> None:
        raise LookupError("nope")

    with pytest.raises(LookupError):
        fail.apply(throw=True)
    assert fail.apply(throw=False).status == "FAILURE"


# -- task_always_eager -------------------------------------------------------------------------


def test_always_eager_runs_delay_here() -> None:
    app = make_app(task_always_eager=True)
    runs: List[Tuple[int, int]] = []

    @app.task
    def add(x: int, y: int) -> int:
        runs.append((x, y))
        return x + y

    result = add.delay(111, 222)
    assert runs == [(111, 222)]  # already ran
    assert isinstance(result, EagerResult)
    assert result.get() == 333
    assert add.apply_async((1, 2), countdown=60).get() == 3  # no waiting when eager
    assert runs[-1] == (1, 2)


def test_always_eager_keeps_the_given_task_id() -> None:
    app = make_app(task_always_eager=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply_async((1, 2), task_id="小家伙")
    assert result.id == "小家伙"
    assert result.get() == 3


def test_always_eager_failure_is_a_failed_result() -> None:
    app = make_app(task_always_eager=True)

    @app.task
    def fail() -> None:
        raise ValueError("bad")

    result = fail.delay()
    assert result.status == "FAILURE"
    with pytest.raises(ValueError, match="bad"):
        result.get()


# -- retries -----------------------------------------------------------------------------------


def test_eager_retry_runs_again(app: MultiQ) -> None:
    runs: List[int] = []

    @app.task(bind=True, default_retry_delay=180)
    def flaky(self: Task, x: int) -> str:
        runs.append(self.request.retries)
        if len(runs) < 3:
            raise self.retry(countdown=60)  # eager retries do not wait
        return f"ok {x}"

    result = flaky.apply((7,))
    assert result.get() == "ok 7"
    assert runs == [0, 1, 2]


def test_eager_retry_gives_up_after_max_retries(app: MultiQ) -> None:
    runs: List[int] = []

    @app.task(bind=True, max_retries=2)
    def always(self: Task) -> None:
        runs.append(self.request.retries)
        raise self.retry(countdown=1)

    result = always.apply()
    assert runs == [0, 1, 2]
    assert result.status == "FAILURE"
    with pytest.raises(MaxRetriesExceededError):
        result.get()


def test_eager_retry_with_exc_reraises_it_when_exhausted(app: MultiQ) -> None:
    runs: List[int] = []

    @app.task(bind=True, max_retries=1)
    def always(self: Task) -> None:
        runs.append(self.request.retries)
        try:
            raise OSError("disk")
        except OSError as exc:
            raise self.retry(exc=exc, countdown=1) from exc

    result = always.apply()
    assert runs == [0, 1]
    with pytest.raises(OSError, match="disk"):
        result.get()


def test_retry_with_new_arguments(app: MultiQ) -> None:
    seen: List[Any] = []

    @app.task(bind=True)
    def count(self: Task, n: int) -> int:
        seen.append(n)
        if n < 3:
            raise self.retry(args=(n + 1,), countdown=0)
        return n

    assert count.apply((0,)).get() == 3
    assert seen == [0, 1, 2, 3]


def test_autoretry_for_with_max_retries(app: MultiQ) -> None:
    runs: List[int] = []

    @app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=2, retry_backoff=True)
    def fetch(self: Task) -> None:
        runs.append(self.request.retries)
        raise ConnectionError("down")

    result = fetch.apply()
    assert runs == [0, 1, 2]  # the first run and two retries
    assert result.status == "FAILURE"
    with pytest.raises(ConnectionError, match="down"):
        result.get()


def test_autoretry_for_then_success_and_other_errors_not_retried(app: MultiQ) -> None:
    runs: List[str] = []

    @app.task(autoretry_for=(KeyError,), retry_kwargs={"max_retries": 5})
    def sometimes(kind: str) -> str:
        runs.append(kind)
        if kind == "key" and len(runs) < 3:
            raise KeyError(kind)
        if kind == "type":
            raise TypeError(kind)
        return "done"

    assert sometimes.apply(("key",)).get() == "done"
    assert runs == ["key", "key", "key"]
    runs.clear()
    assert sometimes.apply(("type",)).status == "FAILURE"
    assert runs == ["type"]  # not in autoretry_for: no retry


# -- hooks ---------------------------------------------------------------------------------------


class Recorder(Task):
    calls: List[Tuple[Any, ...]] = []

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append(("on_success", retval, task_id, list(args), dict(kwargs)))

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                   einfo: Any) -> None:
        self.calls.append(("on_failure", exc, task_id, list(args), dict(kwargs), einfo))

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                 einfo: Any) -> None:
        self.calls.append(("on_retry", exc, task_id, list(args), dict(kwargs), einfo))

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: Any) -> None:
        self.calls.append(("after_return", status, retval, task_id, list(args), dict(kwargs)))


@pytest.fixture
def recorder() -> Iterator[List[Tuple[Any, ...]]]:
    Recorder.calls = []
    yield Recorder.calls
    Recorder.calls = []


def test_on_success_and_after_return(app: MultiQ, recorder: List[Tuple[Any, ...]]) -> None:
    @app.task(base=Recorder)
    def add(x: int, y: int = 0) -> int:
        return x + y

    add.apply((1,), {"y": 2}, task_id="t-ok")
    assert recorder == [
        ("on_success", 3, "t-ok", [1], {"y": 2}),
        ("after_return", "SUCCESS", 3, "t-ok", [1], {"y": 2}),
    ]


def test_on_failure_and_after_return(app: MultiQ, recorder: List[Tuple[Any, ...]]) -> None:
    @app.task(base=Recorder)
    def fail(x: int) -> None:
        raise ValueError(f"bad {x}")

    fail.apply((5,), task_id="t-bad")
    assert [c[0] for c in recorder] == ["on_failure", "after_return"]
    _, exc, task_id, args, kwargs, einfo = recorder[0]
    assert isinstance(exc, ValueError) and str(exc) == "bad 5"
    assert (task_id, args, kwargs) == ("t-bad", [5], {})
    assert einfo is not None and "ValueError: bad 5" in str(einfo.traceback)
    assert einfo.exception is exc
    assert recorder[1][1:2] == ("FAILURE",)
    assert recorder[1][2] is exc  # after_return gets the exception as retval
    assert recorder[1][3:] == ("t-bad", [5], {})


def test_on_retry_is_called_with_the_exception(app: MultiQ,
                                               recorder: List[Tuple[Any, ...]]) -> None:
    @app.task(base=Recorder, bind=True)
    def flaky(self: Task, x: int) -> int:
        if self.request.retries == 0:
            raise self.retry(exc=TimeoutError("slow"), countdown=0)
        return x

    assert flaky.apply((9,), task_id="t-retry").get() == 9
    retries = [c for c in recorder if c[0] == "on_retry"]
    assert len(retries) == 1
    _, exc, task_id, args, kwargs, einfo = retries[0]
    assert isinstance(exc, TimeoutError) and str(exc) == "slow"
    assert (task_id, args, kwargs) == ("t-retry", [9], {})
    assert einfo is not None
    assert ("on_success", 9, "t-retry", [9], {}) in recorder
    assert recorder[-1] == ("after_return", "SUCCESS", 9, "t-retry", [9], {})


def test_a_raising_hook_fails_the_call_without_escaping(app: MultiQ) -> None:
    class Broken(Task):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            raise RuntimeError("hook broke")

    @app.task(base=Broken)
    def ok() -> int:
        return 1

    result = ok.apply()
    assert result.status == "FAILURE"
    assert isinstance(result.result, RuntimeError)


# -- signals -----------------------------------------------------------------------------------


def test_task_signals_fire_for_success(app: MultiQ, connect: Callable[..., Any]) -> None:
    events: List[Tuple[str, Dict[str, Any]]] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    connect(signals.task_prerun, lambda **kw: events.append(("prerun", kw)))
    connect(signals.task_postrun, lambda **kw: events.append(("postrun", kw)))
    connect(signals.task_success, lambda **kw: events.append(("success", kw)))
    connect(signals.task_failure, lambda **kw: events.append(("failure", kw)))

    add.apply((1, 2), task_id="sig-1")
    assert [name for name, _ in events] == ["prerun", "success", "postrun"]
    prerun, success, postrun = (kw for _, kw in events)
    assert prerun["sender"] is add and prerun["task"] is add
    assert prerun["task_id"] == "sig-1"
    assert list(prerun["args"]) == [1, 2] and prerun["kwargs"] == {}
    assert success["sender"] is add and success["result"] == 3
    assert postrun["sender"] is add and postrun["task_id"] == "sig-1"
    assert postrun["retval"] == 3 and postrun["state"] == "SUCCESS"


def test_task_failure_signal(app: MultiQ, connect: Callable[..., Any]) -> None:
    events: List[Dict[str, Any]] = []
    postruns: List[Dict[str, Any]] = []

    @app.task
    def fail(x: int) -> None:
        raise ValueError("bad")

    connect(signals.task_failure, lambda **kw: events.append(kw))
    connect(signals.task_postrun, lambda **kw: postruns.append(kw))
    fail.apply((1,), task_id="sig-f")
    assert len(events) == 1
    kw = events[0]
    assert kw["sender"] is fail and kw["task_id"] == "sig-f"
    assert isinstance(kw["exception"], ValueError)
    assert list(kw["args"]) == [1] and kw["kwargs"] == {}
    assert kw["einfo"] is not None and kw["traceback"] is not None
    assert postruns[0]["state"] == "FAILURE"


def test_task_signals_filtered_by_sender(app: MultiQ, connect: Callable[..., Any]) -> None:
    seen: List[str] = []

    @app.task
    def first() -> str:
        return "a"

    @app.task
    def second() -> str:
        return "b"

    connect(signals.task_prerun, lambda sender, **kw: seen.append(f"pre:{sender.name}"),
            sender=first)
    connect(signals.task_success, lambda sender, **kw: seen.append(f"ok:{kw['result']}"),
            sender=second)
    first.apply()
    second.apply()
    assert seen == [f"pre:{first.name}", "ok:b"]


def test_signal_decorator_with_sender(app: MultiQ) -> None:
    seen: List[Any] = []

    @app.task
    def target() -> int:
        return 1

    @app.task
    def other() -> int:
        return 2

    @signals.task_postrun.connect(sender=target)
    def on_postrun(sender: Any = None, **kw: Any) -> None:
        seen.append((sender.name, kw["retval"]))

    try:
        other.apply()
        target.apply()
    finally:
        assert signals.task_postrun.disconnect(on_postrun, sender=target)
    target.apply()
    assert seen == [(target.name, 1)]


# -- link callbacks ------------------------------------------------------------------------------


def test_link_callback_is_applied_eagerly() -> None:
    app = make_app(task_always_eager=True)
    got: List[Any] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def record(value: Any, tag: str = "") -> None:
        got.append((value, tag))

    result = add.apply_async((2, 2), link=record.s(tag="sum"))
    assert result.get() == 4
    assert got == [(4, "sum")]

    got.clear()
    add.apply_async((1, 1), link=[record.s(tag="a"), record.s(tag="b")])
    assert got == [(2, "a"), (2, "b")]


def test_immutable_link_and_no_link_on_failure() -> None:
    app = make_app(task_always_eager=True)
    got: List[Any] = []

    @app.task
    def div(x: int, y: int) -> float:
        return x / y

    @app.task
    def record(*args: Any) -> None:
        got.append(args)

    div.apply_async((4, 2), link=record.si("fixed"))
    assert got == [("fixed",)]
    got.clear()
    div.apply_async((1, 0), link=record.s())
    assert got == []


def test_link_error_gets_the_failed_task_id() -> None:
    app = make_app(task_always_eager=True)
    got: List[Any] = []

    @app.task
    def div(x: int, y: int) -> float:
        return x / y

    @app.task
    def on_error(task_id: str) -> None:
        got.append(task_id)

    result = div.apply_async((1, 0), link_error=on_error.s())
    assert got == [result.id]
    got.clear()
    div.apply_async((1, 1), link_error=on_error.s())
    assert got == []
