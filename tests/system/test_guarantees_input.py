"""SPEC §1/§3 with real workers: persistent revokes, expires, unknown tasks, bad input and
failing tasks never stop a worker, priorities, routing to queues.

Workers are started with ``python -m multiq -A sysq_reliable worker``; every run of a task
is recorded in db 3 (see apps/sysq_reliable.py).
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]  # sysq_support, sysq_reliable

from helpers import wait_until  # noqa: E402
from sysq_reliable import ROUTES, SysqBoom  # noqa: E402
from sysq_support import (  # noqa: E402
    TASK,
    broker_idle,
    deadletter,
    describe_broker,
    runs,
    start,
    stream,
    wait_results,
)

from multiq.exceptions import ContentDisallowed, NotRegistered, TaskRevokedError  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def client(make_app):
    return make_app("sysq_client")


@pytest.fixture
def broker(redis_client):
    return redis_client


def _deadletters(broker):
    """The dead-letter entries of the default queue as dicts of decoded fields (but ``m``)."""
    out = []
    for entry_id, fields in broker.xrange(deadletter("multiq")):
        item = {k.decode(): (v if k == b"m" else v.decode()) for k, v in fields.items()}
        item["entry_id"] = entry_id
        out.append(item)
    return out


def _task_id_of(raw):
    try:
        return json.loads(raw).get("id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def _error_lines(log, needle):
    return [line for line in log.splitlines()
            if needle in line and re.search(r"\b(ERROR|CRITICAL)\b", line)]


@pytest.mark.timeout(40)
def test_revoked_before_any_worker_never_runs(start_worker, client, rec, broker):
    r = client.send_task(TASK("record"), args=["revoked"])
    client.control.revoke(r.id)
    after = client.send_task(TASK("record"), args=["after"])

    w = start(start_worker, hostname="rv@%h")
    assert after.get(timeout=10) is not None  # the queue has been worked through
    wait_until(lambda: r.status == "REVOKED", timeout=10,
               message=f"status of the revoked task stayed {r.status}")
    with pytest.raises(TaskRevokedError):
        r.get(timeout=1)
    assert runs(rec) == ["after"]
    wait_until(lambda: broker_idle(broker), timeout=5, message=describe_broker(broker))
    assert w.alive


@pytest.mark.timeout(40)
def test_unknown_task_fails_naming_it_and_is_dead_lettered(start_worker, client, rec, broker):
    w = start(start_worker, hostname="unk@%h")
    r = client.send_task("no.such.task", args=[1])
    r.get(timeout=10, propagate=False)
    assert r.status == "FAILURE"
    exc = r.result
    assert isinstance(exc, NotRegistered) or "no.such.task" in str(exc), repr(exc)
    with pytest.raises(Exception, match="no.such.task"):
        r.get(timeout=1)

    nxt = client.send_task(TASK("record"), args=["next"])
    assert nxt.get(timeout=10) is not None
    assert w.alive
    assert runs(rec) == ["next"]
    assert _error_lines(w.log(), "no.such.task"), w.log()
    wait_until(lambda: any(_task_id_of(d["m"]) == r.id for d in _deadletters(broker)),
               timeout=5, message=f"not dead-lettered: {_deadletters(broker)}")
    [dead] = [d for d in _deadletters(broker) if _task_id_of(d["m"]) == r.id]
    assert "no.such.task" in dead["reason"] or "unknown" in dead["reason"].lower(), dead
    wait_until(lambda: broker_idle(broker), timeout=5, message=describe_broker(broker))


@pytest.mark.timeout(40)
def test_garbage_and_disallowed_pickle_are_dead_lettered_worker_goes_on(
        start_worker, client, rec, broker):
    w = start(start_worker, hostname="bad@%h")
    garbage = b"\xff\xfe not json"
    broker.xadd(stream("multiq", 0), {"m": garbage, "n": 0})
    pickled = client.send_task(TASK("record"), args=["pickled"], serializer="pickle")
    ok = client.send_task(TASK("record"), args=["ok"])

    assert ok.get(timeout=10) is not None
    assert runs(rec) == ["ok"]
    assert w.alive
    wait_until(lambda: len(_deadletters(broker)) == 2, timeout=5,
               message=f"dead letters: {_deadletters(broker)}")
    by_id = {_task_id_of(d["m"]): d for d in _deadletters(broker)}
    bad = [d for d in _deadletters(broker) if d["m"] == garbage]
    assert len(bad) == 1, _deadletters(broker)
    assert bad[0]["reason"], bad
    assert re.search(r"decod|json", bad[0]["reason"], re.I), bad[0]["reason"]
    assert pickled.id in by_id, by_id
    assert re.search(r"pickle|disallow|content", by_id[pickled.id]["reason"], re.I), \
        by_id[pickled.id]
    assert pickled.id in w.log(), "the refusal is not logged with the task id"

    pickled.get(timeout=5, propagate=False)
    assert pickled.status == "FAILURE"
    wait_until(lambda: broker_idle(broker), timeout=5, message=describe_broker(broker))


@pytest.mark.timeout(40)
def test_disallowed_pickle_result_is_content_disallowed(start_worker, client, broker):
    w = start(start_worker, hostname="pkl@%h")
    pickled = client.send_task(TASK("record"), args=["pickled"], serializer="pickle")
    pickled.get(timeout=10, propagate=False)
    assert pickled.status == "FAILURE"
    assert w.alive
    assert isinstance(pickled.result, ContentDisallowed), repr(pickled.result)
    with pytest.raises(ContentDisallowed):
        pickled.get(timeout=1)


@pytest.mark.timeout(40)
def test_task_exception_is_reraised_with_type_message_and_traceback(
        start_worker, client, rec):
    w = start(start_worker, hostname="exc@%h")
    r = client.send_task(TASK("boom"), args=["kaboom 42"])
    with pytest.raises(SysqBoom, match="kaboom 42"):
        r.get(timeout=10)
    assert r.status == "FAILURE"
    assert isinstance(r.result, SysqBoom)
    assert "raise SysqBoom(message)" in (r.traceback or ""), r.traceback
    assert "kaboom 42" in r.traceback

    after = client.send_task(TASK("record"), args=["after-boom"])
    assert after.get(timeout=10) is not None
    assert runs(rec) == ["after-boom"]
    assert w.alive


@pytest.mark.parametrize("pool", ["solo", "prefork"])
@pytest.mark.timeout(40)
def test_a_result_that_cannot_be_encoded_fails_that_task_alone(
        start_worker, client, rec, broker, pool):
    """As Celery: the task's state is FAILURE with EncodeError; the tasks whose outcomes
    were written with it are stored and acknowledged, and nothing is left pending."""
    before = [client.send_task(TASK("record"), args=[f"before-{i}"]) for i in range(3)]
    bad = client.send_task(TASK("opaque"), args=["opaque"])
    after = [client.send_task(TASK("record"), args=[f"after-{i}"]) for i in range(3)]
    w = start(start_worker, pool=pool, hostname=f"enc-{pool}@%h")
    wait_results([*before, bad, *after], timeout=15)
    assert bad.status == "FAILURE"
    assert type(bad.result).__name__ == "EncodeError"
    assert "Opaque" in str(bad.result) and "not JSON serializable" in str(bad.result)
    assert [r.status for r in [*before, *after]] == ["SUCCESS"] * 6
    assert sorted(runs(rec)) == sorted(
        ["opaque", *(f"before-{i}" for i in range(3)), *(f"after-{i}" for i in range(3))])
    wait_until(lambda: broker_idle(broker), timeout=10, message=describe_broker(broker))
    assert w.alive


@pytest.mark.timeout(40)
def test_priority_9_runs_before_priority_0(start_worker, client, rec):
    low = [client.send_task(TASK("record"), args=[f"low{i}"], priority=0) for i in range(5)]
    high = [client.send_task(TASK("record"), args=[f"high{i}"], priority=9) for i in range(5)]
    start(start_worker, "--prefetch-multiplier", "1", hostname="prio@%h")
    wait_results(low + high, timeout=15)
    assert {r.status for r in low + high} == {"SUCCESS"}
    order = runs(rec)
    assert sorted(order[:5]) == [f"high{i}" for i in range(5)], order
    assert sorted(order[5:]) == [f"low{i}" for i in range(5)], order


@pytest.mark.timeout(40)
def test_task_routes_send_a_task_to_its_queue_only(start_worker, make_app, rec, broker):
    client = make_app("sysq_router", task_routes=ROUTES)
    default = start(start_worker, hostname="dflt@%h", wait_ready=False)
    images = start(start_worker, "-Q", "images", hostname="img@%h", wait_ready=False)
    default.wait_for_log("ready", timeout=20)
    images.wait_for_log("ready", timeout=20)

    routed = [client.send_task(TASK("render"), args=[f"r{i}"]) for i in range(3)]
    plain = client.send_task(TASK("where"), args=["plain"])
    wait_results([*routed, plain], timeout=10)

    for r in routed:
        assert r.get(timeout=1).startswith("img@"), r.result
        assert r.queue == "images"
        assert r.id not in default.log()
    assert plain.get(timeout=1).startswith("dflt@")
    assert plain.id not in images.log()
    assert sorted(x.split("@")[0] for x in runs(rec)) == ["plain", "r0", "r1", "r2"]
    assert [x.split("@")[1] for x in runs(rec) if x.startswith("r")] == ["img"] * 3
    assert broker_idle(broker, "images") and broker_idle(broker), describe_broker(broker)


@pytest.mark.timeout(40)
def test_expired_task_never_runs_and_reads_revoked(start_worker, client, rec):
    sent = time.monotonic()
    r = client.send_task(TASK("record"), args=["expired"], expires=1)
    time.sleep(max(0.0, sent + 2 - time.monotonic()))  # the worker comes up 2 s later
    w = start(start_worker, hostname="exp@%h")
    after = client.send_task(TASK("record"), args=["after"])
    assert after.get(timeout=10) is not None
    wait_until(lambda: r.status == "REVOKED", timeout=5,
               message=f"status of the expired task stayed {r.status}")
    with pytest.raises(TaskRevokedError, match="expired"):
        r.get(timeout=1)
    assert runs(rec) == ["after"]
    assert w.alive
