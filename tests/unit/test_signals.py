"""Unit tests for multiq.signals.Signal: connecting, sender filters, errors, disconnecting."""
from __future__ import annotations

import logging
from typing import Any, List, Tuple

import pytest

from multiq import signals
from multiq.signals import Signal


class Sender:
    def __init__(self, name: str) -> None:
        self.name = name


def test_connect_as_bare_decorator() -> None:
    sig = Signal("test_bare")
    seen: List[Tuple[Any, Any]] = []

    @sig.connect
    def receiver(sender: Any = None, **kwargs: Any) -> str:
        seen.append((sender, kwargs))
        return "answer"

    assert callable(receiver)  # the decorator gives the function back
    responses = sig.send(sender="me", value=1)
    assert seen == [("me", {"signal": sig, "value": 1})]
    assert responses == [(receiver, "answer")]
    assert sig.receivers == [receiver]
    assert sig.has_receivers()


def test_connect_as_decorator_with_sender_filters() -> None:
    sig = Signal("test_sender")
    a, b = Sender("a"), Sender("b")
    seen: List[str] = []

    @sig.connect(sender=a)
    def only_a(sender: Any, **kwargs: Any) -> None:
        seen.append(f"only_a:{sender.name}")

    @sig.connect()
    def everyone(sender: Any, **kwargs: Any) -> None:
        seen.append(f"everyone:{sender.name}")

    sig.send(sender=a)
    sig.send(sender=b)
    assert seen == ["only_a:a", "everyone:a", "everyone:b"]


def test_connect_call_form_and_no_duplicates() -> None:
    sig = Signal("test_call")
    calls: List[int] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(1)

    assert sig.connect(receiver) is receiver
    sig.connect(receiver)  # connecting twice does not call twice
    sig.send(sender=None)
    assert calls == [1]


def test_a_raising_receiver_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sig = Signal("test_raise")
    seen: List[str] = []

    def first(**kwargs: Any) -> None:
        seen.append("first")

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver broke")

    def last(**kwargs: Any) -> str:
        seen.append("last")
        return "ok"

    for receiver in (first, broken, last):
        sig.connect(receiver)
    with caplog.at_level(logging.ERROR):
        responses = sig.send(sender="x")  # must not raise
    assert seen == ["first", "last"]
    assert responses[2] == (last, "ok")
    assert responses[1][0] is broken and isinstance(responses[1][1], RuntimeError)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the failing receiver was not logged"
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in errors)
    assert "receiver broke" in text
    assert "test_raise" in text


def test_disconnect() -> None:
    sig = Signal("test_disconnect")
    seen: List[str] = []

    def receiver(**kwargs: Any) -> None:
        seen.append("called")

    sig.connect(receiver)
    assert sig.disconnect(receiver) is True
    assert sig.disconnect(receiver) is False  # already gone
    sig.send(sender=None)
    assert seen == []
    assert not sig.has_receivers()


def test_disconnect_with_sender_only_removes_that_connection() -> None:
    sig = Signal("test_disconnect_sender")
    a, b = Sender("a"), Sender("b")
    seen: List[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(sender.name)

    sig.connect(receiver, sender=a)
    sig.connect(receiver, sender=b)
    assert sig.disconnect(receiver, sender=a) is True
    sig.send(sender=a)
    sig.send(sender=b)
    assert seen == ["b"]


def test_send_without_receivers() -> None:
    assert Signal("test_empty").send(sender=None, x=1) == []


def test_weak_receivers_go_away_with_their_owner() -> None:
    sig = Signal("test_weak")

    class Owner:
        def __init__(self) -> None:
            self.calls = 0

        def receive(self, **kwargs: Any) -> None:
            self.calls += 1

    owner = Owner()
    sig.connect(owner.receive, weak=True)
    sig.send(sender=None)
    assert owner.calls == 1
    del owner
    assert sig.send(sender=None) == []


def test_the_documented_signals_exist() -> None:
    for name in ("task_received", "task_prerun", "task_postrun", "task_success",
                 "task_failure", "task_retry", "task_revoked", "worker_init", "worker_ready",
                 "worker_shutdown", "worker_process_init", "beat_init"):
        sig = getattr(signals, name)
        assert isinstance(sig, Signal)
        assert sig.name == name
