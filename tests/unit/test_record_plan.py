"""What a batch of outcomes writes, planned without Redis (``multiq.worker.record``).

Every outcome a node commits (a result, a retry, a rejection, a redelivery, a revoke, a
refusal, a dead node's lost task) is turned into commands in one place, the
:class:`Recorder`; whoever sends them only writes them. Here the plan is read back as the
commands it holds: the app below has never had a server to talk to.
"""
from __future__ import annotations

import json
import time
from typing import Any, List, Optional, Tuple

import pytest

from multiq import MultiQ, states
from multiq.broker.redis import Delivery, LostEntry
from multiq.exceptions import Reject, Retry
from multiq.message import Message, envelope
from multiq.trace import Outcome
from multiq.worker.execute import Request
from multiq.worker.items import Done, Event, Redeliver, Refused, Revoked, Started
from multiq.worker.record import Recorder

pytestmark = pytest.mark.timeout(10)
STREAM = "multiq:q:{multiq}:0"


def _app(**conf: Any) -> MultiQ:
    app = MultiQ("plan", broker="redis://127.0.0.1:1/0", backend="redis://127.0.0.1:1/1",
                 set_as_current=False)
    app.conf.worker_metrics = False  # the counters' writes: tests/unit/test_metrics.py
    app.conf.update(conf)

    @app.task(name="p.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="p.quiet", ignore_result=True)
    def quiet() -> None:
        return None

    @app.task(name="p.keep", ignore_result=True, store_errors_even_if_ignored=True)
    def keep() -> None:
        return None

    return app


def _req(app: MultiQ, task_id: str = "t1", entry: bytes = b"5-0", task: str = "p.add",
         redeliveries: int = 0, early_ack: bool = True, **message: Any) -> Request:
    data = envelope(task_id, task, "multiq", 1.0, [1, 2], {})
    d = Delivery("multiq", 0, entry, data, redeliveries)
    return Request(d, Message(id=task_id, task=task, args=[1, 2], **message), app.tasks[task],
                   early_ack=early_ack)


def _docs(commands: Any) -> List[Tuple[str, dict]]:
    """(key, document) of each result written (SET), in order."""
    return [(c[1], json.loads(c[2])) for c in commands.stack if c[0] == "SET"]


def _named(commands: Any, name: str) -> List[Tuple[Any, ...]]:
    return [c for c in commands.stack if c[0] == name]


def _retried(exc: Optional[BaseException] = None, countdown: float = 30) -> Outcome:
    retry = Retry(exc=exc, when=countdown)
    retry.plan = {"args": [1, 2], "kwargs": {}, "countdown": countdown,  # type: ignore
                  "eta": None, "options": {}}
    return Outcome(states.RETRY, exc=retry, retry=retry)


def test_a_success_is_its_result_then_one_ack() -> None:
    app = _app()
    plan = Recorder(app, "c1", "h1").record([Done(_req(app), Outcome(states.SUCCESS, 3))])
    [(key, doc)] = _docs(plan.results)
    assert key == "multiq-task-meta-t1" and (doc["status"], doc["result"]) == ("SUCCESS", 3)
    assert _named(plan.results, "PUBLISH")[0][1] == key  # get() is woken, not polling
    assert plan.acks.stack == [("XACK", STREAM, "multiq", b"5-0"), ("XDEL", STREAM, b"5-0")]
    assert plan.chords is None


def test_acks_of_one_stream_share_one_xack_and_one_xdel() -> None:
    app = _app()
    batch = [Done(_req(app, f"t{i}", b"%d-0" % i), Outcome(states.SUCCESS, i)) for i in range(5)]
    plan = Recorder(app, "c1", "h1").record(batch)
    assert len(_docs(plan.results)) == 5
    ids = [b"%d-0" % i for i in range(5)]
    assert plan.acks.stack == [("XACK", STREAM, "multiq", *ids), ("XDEL", STREAM, *ids)]


def test_an_ignored_result_writes_only_its_ack_unless_it_failed_and_errors_are_kept() -> None:
    app = _app()
    recorder = Recorder(app, "c1", "h1")
    plan = recorder.record([Done(_req(app, task="p.quiet"), Outcome(states.SUCCESS, None))])
    assert _docs(plan.results) == [] and len(_named(plan.acks, "XACK")) == 1
    failed = Outcome(states.FAILURE, exc=ValueError("x"), traceback="Traceback ...")
    plan = recorder.record([Done(_req(app, task="p.quiet"), failed)])
    assert _docs(plan.results) == []
    plan = recorder.record([Done(_req(app, task="p.keep"), failed)])
    [(_, doc)] = _docs(plan.results)
    assert doc["status"] == "FAILURE" and doc["result"]["exc_type"] == "ValueError"


def test_extended_results_carry_the_call() -> None:
    app = _app(result_extended=True)
    plan = Recorder(app, "c1", "h1").record([Done(_req(app), Outcome(states.SUCCESS, 3))])
    [(_, doc)] = _docs(plan.results)
    assert (doc["name"], doc["args"], doc["worker"], doc["queue"]) == ("p.add", [1, 2], "h1",
                                                                       "multiq")


def test_a_result_json_cannot_carry_makes_the_task_fail_and_is_still_acked() -> None:
    app = _app()
    plan = Recorder(app, "c1", "h1").record([Done(_req(app), Outcome(states.SUCCESS, object()))])
    [(_, doc)] = _docs(plan.results)
    assert doc["status"] == "FAILURE" and doc["result"]["exc_type"] == "EncodeError"
    assert len(_named(plan.acks, "XACK")) == 1


def test_a_retry_stores_retry_and_puts_the_next_attempt_in_the_delayed_set_with_the_ack() -> None:
    app = _app()
    before = time.time()
    plan = Recorder(app, "c1", "h1").record([Done(_req(app), _retried(ValueError("x")))])
    [(_, doc)] = _docs(plan.results)
    assert doc["status"] == "RETRY"
    [(_, bodies, member, body)] = _named(plan.acks, "HSET")
    assert member == "t1:1" and bodies == "multiq:q:{multiq}:delayed:m"
    retried = json.loads(body.split(b"|", 1)[1])
    assert retried["retries"] == 1 and retried["id"] == "t1"
    [(_, _, score, zmember)] = _named(plan.acks, "ZADD")
    assert zmember == "t1:1" and before + 29 < float(score) < time.time() + 31
    assert _named(plan.acks, "XACK")  # the old message goes in the same write


def test_reject_requeue_backs_off_then_dead_letters_at_the_delivery_limit() -> None:
    app = _app()
    recorder = Recorder(app, "c1", "h1")
    requeue = Outcome(states.REJECTED, exc=Reject("busy", requeue=True), requeue=True)
    plan = recorder.record([Done(_req(app), requeue)])
    assert _docs(plan.results) == [] and not _named(plan.acks, "XADD")
    [(_, _, score, member)] = _named(plan.acks, "ZADD")
    assert member.startswith("t1:reject:0:5-0") and float(score) == pytest.approx(
        time.time() + 1, abs=0.5)
    last = recorder.broker.max_deliveries - 1
    plan = recorder.record([Done(_req(app, redeliveries=last), requeue)])
    [(_, doc)] = _docs(plan.results)
    assert doc["status"] == "FAILURE" and doc["result"]["exc_type"] == "Reject"
    [dead] = _named(plan.acks, "XADD")
    assert dead[1] == "multiq:q:{multiq}:deadletter" and "rejected 5 times: busy" in dead
    assert not _named(plan.acks, "ZADD") and _named(plan.acks, "XACK")


def test_a_redelivery_goes_back_counted_until_the_limit_then_to_the_dead_letters() -> None:
    app = _app()
    recorder = Recorder(app, "c1", "h1")
    plan = recorder.record([Redeliver(_req(app, redeliveries=1), True)])
    [(_, stream, *fields)] = _named(plan.acks, "XADD")
    assert stream == STREAM and fields[-1] == 2  # ("m", data, "n", 2)
    plan = recorder.record([Redeliver(_req(app, redeliveries=4), True)])
    [(_, key, *fields)] = _named(plan.acks, "XADD")
    assert key == "multiq:q:{multiq}:deadletter"
    assert any(str(f).startswith("delivered 5 times") for f in fields)
    assert _named(plan.acks, "XACK")


def test_a_revoked_task_is_revoked_even_when_its_result_is_ignored() -> None:
    app = _app()
    plan = Recorder(app, "c1", "h1").record([Revoked(_req(app, task="p.quiet"), "terminated")])
    [(_, doc)] = _docs(plan.results)
    assert doc["status"] == "REVOKED" and doc["result"]["exc_type"] == "TaskRevokedError"
    assert _named(plan.acks, "XACK")


def test_a_refused_message_is_dead_lettered_acked_and_failed_only_with_a_task_id() -> None:
    app = _app()
    recorder = Recorder(app, "c1", "h1")
    d = Delivery("multiq", 0, b"9-0", b"garbage")
    plan = recorder.record([Refused(d, "undecodable", "t9", ValueError("bad"))])
    [(key, doc)] = _docs(plan.results)
    assert key.endswith("t9") and doc["status"] == "FAILURE"
    [dead] = _named(plan.acks, "XADD")
    assert "undecodable" in dead and b"garbage" in dead
    plan = recorder.record([Refused(d, "undecodable", None, ValueError("bad"))])
    assert _docs(plan.results) == [] and _named(plan.acks, "XADD") and _named(plan.acks, "XACK")


def test_a_start_marker_is_written_only_for_a_task_still_running_at_the_write() -> None:
    app = _app()
    recorder = Recorder(app, "c1", "h1")
    running = _req(app, "t1", b"1-0")
    plan = recorder.record([Started(running)])
    [(_, key, entry, owner)] = _named(plan.acks, "HSET")
    assert key == "multiq:q:{multiq}:started"
    assert (entry, owner) == (b"1-0", "c1") and running.marked
    done = _req(app, "t2", b"2-0")
    plan = recorder.record([Started(done), Done(done, Outcome(states.SUCCESS, 1))])
    assert not _named(plan.acks, "HSET") and not done.marked


def test_events_go_out_with_the_acks_when_enabled() -> None:
    app = _app(worker_send_task_events=True)
    recorder = Recorder(app, "c1", "h1")
    plan = recorder.record([Done(_req(app), Outcome(states.SUCCESS, 3)),
                            Event({"type": "worker-heartbeat"})])
    sent = _named(plan.acks, "XADD")
    assert len(sent) == 2 and all(c[1] == recorder.events_stream for c in sent)
    assert "task-succeeded" in repr(sent[0]) and "worker-heartbeat" in repr(sent[1])


def test_callbacks_and_the_next_chain_step_are_sent_with_the_ack() -> None:
    app = _app()
    sends = [("multiq", envelope("t2", "p.add", "multiq", 1.0, [3, 4], {}), 0, None, None)]
    plan = Recorder(app, "c1", "h1").record(
        [Done(_req(app), Outcome(states.SUCCESS, 3, sends=sends))])
    assert _docs(plan.results)[0][1]["status"] == "SUCCESS"
    assert [c[0] for c in plan.acks.stack].count("XADD") == 1
    assert plan.acks.stack.index(next(c for c in plan.acks.stack if c[0] == "XADD")) \
        < plan.acks.stack.index(next(c for c in plan.acks.stack if c[0] == "XACK"))


def test_a_dead_nodes_started_task_is_lost_unless_its_outcome_is_final() -> None:
    app = _app()
    entries = [LostEntry("multiq", 0, b"7-0", envelope("t7", "p.add", "multiq", 1.0, [], {})),
               LostEntry("multiq", 0, b"8-0", b"not json")]
    plan = Recorder(app, "c1", "h1").lost(entries, "dead@host|abc")
    [(_, script, nkeys, key, doc, *_)] = plan.results.stack
    assert (nkeys, key) == (1, "multiq-task-meta-t7") and b"WorkerLostError" in doc
    assert b"dead@host" in doc
    assert [t for t, _, _ in plan.lost] == ["t7"]  # the undecodable one is only acked
