"""Describing what a task raised never fails: result documents, tracebacks, events and log
lines, for exceptions whose ``__str__``, ``__repr__`` or ``args`` raise, or whose arguments
JSON cannot carry."""
from __future__ import annotations

import json
import logging
import types

import pytest

from multiq.backends.base import exception_from_dict, exception_to_dict
from multiq.describe import describe, safe_repr, safe_str
from multiq.events import safe_repr as event_repr
from multiq.exceptions import Reject, Retry, TaskError
from multiq.trace import ExceptionInfo, Outcome, format_traceback


class NoText:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Tagged:
    """JSON cannot carry it; its text is known."""

    def __str__(self) -> str:
        return "tagged"


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class BadRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadBoth(BadStr):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadArgs(BadBoth):
    @property  # type: ignore[override]
    def args(self):
        raise RuntimeError("no args")


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value, expected", [
    (BadStr("x"), "BadStr('x')"),
    (BadRepr("x"), "x"),
    (BadBoth("x"), "<unprintable BadBoth>"),
    (NoText(), "<unprintable NoText>"),
])
def test_safe_str_falls_back_to_repr_then_to_the_type_name(value, expected) -> None:
    assert safe_str(value) == expected


@pytest.mark.timeout(10)
def test_describe_and_safe_repr_never_raise() -> None:
    assert describe(ValueError("bad")) == "ValueError('bad')"
    assert describe(BadBoth("x")) == "<unprintable BadBoth>"
    assert describe(BadArgs()) == "<unprintable BadArgs>"
    assert safe_repr(NoText()) == "<unprintable NoText>"
    assert safe_repr("x" * 50, limit=10) == "'xxxxxx..."
    assert event_repr(NoText()) == "<unprintable NoText>"
    assert len(event_repr(list(range(1000)))) == 200


@pytest.mark.timeout(10)
@pytest.mark.parametrize("exc, message", [
    (BadStr("x", 2, Tagged()), ["x", 2, "tagged"]),  # the JSON-able ones are kept as they are
    (BadBoth(NoText()), ["<unprintable NoText>"]),
    (BadArgs("x"), ["<unprintable BadArgs>"]),  # args cannot be read: its text, at worst
    (ValueError("bad input", NoText()), ["bad input", "<unprintable NoText>"]),
    (ValueError(Tagged(), "ok"), ["tagged", "ok"]),  # its text, not its repr
])
def test_exception_to_dict_never_raises_and_is_json(exc, message) -> None:
    info = exception_to_dict(exc)
    assert info["exc_type"] == type(exc).__qualname__
    assert info["exc_message"] == message
    json.dumps(info)


@pytest.mark.timeout(10)
def test_a_described_exception_comes_back_as_its_type_or_a_task_error() -> None:
    back = exception_from_dict(exception_to_dict(ValueError("bad input", NoText())))
    assert type(back) is ValueError and back.args == ("bad input", "<unprintable NoText>")
    info = exception_to_dict(BadArgs("x"))
    info["exc_module"] = "no_such_module"
    back = exception_from_dict(info)
    assert isinstance(back, TaskError) and "<unprintable BadArgs>" in str(back)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("exc", [BadStr("x"), BadBoth("x"), BadArgs("x"),
                                 ValueError(NoText())])
def test_traceback_text_never_raises(exc, monkeypatch) -> None:
    exc = _raised(exc)
    einfo = ExceptionInfo(exc)
    assert "Traceback (most recent call last)" in einfo.traceback
    assert "raise exc" in einfo.traceback
    assert type(exc).__name__ in str(einfo)

    def broken(*args, **kwargs):
        raise RuntimeError("formatting failed")

    # even when the standard formatting fails, the stack and the type are given
    monkeypatch.setattr("traceback.format_exception", broken)
    text = format_traceback(exc)
    assert "raise exc" in text and type(exc).__name__ in text


@pytest.mark.timeout(10)
def test_retry_and_reject_read_safely() -> None:
    assert "<unprintable BadBoth>" in str(Retry(exc=BadBoth("x"), when=5))
    assert str(Reject("not now", requeue=True)) == "not now"
    assert str(Reject(NoText())) == "<unprintable NoText>"
    assert str(Reject()) == "Reject"


@pytest.mark.timeout(10)
def test_the_failure_log_line_of_an_undescribable_exception(caplog) -> None:
    from multiq.worker.execute import Executor

    req = types.SimpleNamespace(name="t.bad", id="tid-1")
    executor = types.SimpleNamespace(info_logging=True)
    outcome = Outcome("FAILURE", exc=BadBoth("x"), traceback="Traceback ...")
    with caplog.at_level(logging.INFO, logger="multiq.worker"):
        Executor._log(executor, req, outcome, 0.1)  # type: ignore[arg-type]
        Executor._log(executor, req, Outcome("SUCCESS", NoText()), 0.1)  # type: ignore
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Task t.bad[tid-1] raised unexpected: <unprintable BadBoth>")
    assert lines[1].endswith(": <unprintable NoText>")


@pytest.mark.parametrize("exc_type", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_the_interpreters_exits_come_back_as_a_task_error_not_as_themselves(exc_type):
    from multiq.backends.base import exception_from_dict
    from multiq.exceptions import TaskError

    exc = exception_from_dict({"exc_type": exc_type, "exc_message": ["stop"],
                               "exc_module": "builtins"})
    assert type(exc) is TaskError and exc.exc_type == exc_type and "stop" in str(exc)
