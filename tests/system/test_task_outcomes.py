"""SPEC §3 "a task that raises anything" with real workers on every pool: whatever a task
raises or rejects, its outcome is recorded — a FAILURE result ``get()`` reads, a dead-letter
entry where the message is given up — and the node goes on.

Workers run ``apps/sysq_outcomes.py``; every run of a task is recorded in db 3 (``runs``),
what the failure hooks saw in ``hooks``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]  # sysq_support, sysq_outcomes

from helpers import wait_until  # noqa: E402
from sysq_outcomes import Boom, Unprintable  # noqa: E402
from sysq_support import (  # noqa: E402
    APPS,
    WORKER_ENV,
    broker_idle,
    deadletter,
    describe_broker,
    runs,
)

from multiq.exceptions import Reject, TaskError  # noqa: E402

pytestmark = pytest.mark.system

POOLS = ["solo", "threads", "prefork", "asyncio"]
TASK = "sysq_outcomes.{}".format
MAX_DELIVERIES = 3
BACKOFF = 0.5  # seconds before the second delivery; doubled for each one after


@pytest.fixture
def client(make_app):
    return make_app("sysq_outcomes_client")


@pytest.fixture
def broker(redis_client):
    return redis_client


def _start(start_worker, pool, name, **env):
    args = ("-c", "2") if pool != "solo" else ()
    return start_worker("sysq_outcomes", *args, cwd=APPS, pool=pool,
                        hostname=f"{name}-{pool}@%h", env={**WORKER_ENV, **env})


def _hooks(rec):
    return [x.decode() for x in rec.lrange("hooks", 0, -1)]


def _deadletters(broker):
    out = []
    for _, fields in broker.xrange(deadletter("multiq")):
        item = {k.decode(): v.decode() for k, v in fields.items()}
        item["id"] = json.loads(item["m"]).get("id")
        out.append(item)
    return out


def _lines(log, *needles, levels=("WARNING", "ERROR", "CRITICAL")):
    pattern = re.compile(r"\b({})\b".format("|".join(levels)))
    return [line for line in log.splitlines()
            if all(n in line for n in needles) and pattern.search(line)]


def _assert_no_child_died(w):
    assert "Pool child" not in w.log() and "WorkerLostError" not in w.log(), w.log()


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.timeout(60)
def test_an_exception_that_cannot_be_described_is_a_failure(start_worker, client, rec,
                                                             broker, pool):
    w = _start(start_worker, pool, "undescribed")
    bad = client.send_task(TASK("unprintable"), args=["unprintable"])
    odd = client.send_task(TASK("opaque_args"), args=["opaque"])

    with pytest.raises((Unprintable, TaskError)):
        bad.get(timeout=20)
    assert bad.status == "FAILURE"
    assert "Unprintable" in (bad.traceback or ""), bad.traceback
    with pytest.raises(ValueError) as raised:
        odd.get(timeout=20)
    # the argument JSON cannot carry is replaced by its (safe) text, the others are kept
    assert raised.value.args == ("bad input", "<unprintable Opaque>")

    nxt = client.send_task(TASK("record"), args=["next"])
    assert nxt.get(timeout=15) == "next"
    assert w.alive
    assert sorted(runs(rec)) == ["next", "opaque", "unprintable"]  # each ran once
    assert _lines(w.log(), bad.id, "<unprintable Unprintable>"), w.log()
    assert _lines(w.log(), odd.id, "ValueError"), w.log()
    _assert_no_child_died(w)
    wait_until(lambda: broker_idle(broker), timeout=10, message=describe_broker(broker))


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.timeout(60)
def test_a_base_exception_is_a_failure_with_its_hooks(start_worker, client, rec, broker,
                                                       pool):
    w = _start(start_worker, pool, "base")
    boom = client.send_task(TASK("boom"), args=["b"])
    stop = client.send_task(TASK("interrupted"), args=["i"])

    with pytest.raises(Boom, match="boom b"):
        boom.get(timeout=20)
    assert boom.status == "FAILURE"
    assert "raise Boom" in (boom.traceback or ""), boom.traceback
    with pytest.raises(TaskError, match="interrupted i") as raised:  # never the interrupt
        stop.get(timeout=20)
    assert raised.value.exc_type == "KeyboardInterrupt", vars(raised.value)
    assert stop.status == "FAILURE"

    nxt = client.send_task(TASK("record"), args=["next"])
    assert nxt.get(timeout=15) == "next"
    assert w.alive
    assert sorted(runs(rec)) == ["b", "i", "next"]
    assert sorted(_hooks(rec)) == sorted([
        f"on_failure:{boom.id}:Boom", f"task_failure:{boom.id}:Boom",
        f"on_failure:{stop.id}:KeyboardInterrupt", f"task_failure:{stop.id}:KeyboardInterrupt",
    ])
    assert _lines(w.log(), boom.id, "Boom", levels=("ERROR",)), w.log()
    _assert_no_child_died(w)
    wait_until(lambda: broker_idle(broker), timeout=10, message=describe_broker(broker))


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.timeout(90)
def test_reject_with_requeue_backs_off_and_is_dead_lettered_at_the_delivery_limit(
        start_worker, client, rec, broker, pool):
    w = _start(start_worker, pool, "requeue", SYSQ_MAX_DELIVERIES=str(MAX_DELIVERIES),
               SYSQ_REJECT_BACKOFF=str(BACKOFF))
    r = client.send_task(TASK("always_reject"), args=["a"])

    with pytest.raises(Reject, match="not now a"):
        r.get(timeout=45)
    assert r.status == "FAILURE"
    wait_until(lambda: broker_idle(broker), timeout=10, message=describe_broker(broker))
    # nothing is left delayed or ready: it ran exactly max_deliveries times
    attempts = [json.loads(x) for x in runs(rec)]
    assert len(attempts) == MAX_DELIVERIES, attempts
    assert [a["redelivered"] for a in attempts] == [False, True, True]
    gaps = [b["time"] - a["time"] for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, gaps

    [dead] = [d for d in _deadletters(broker) if d["id"] == r.id]
    assert dead["reason"].startswith(f"rejected {MAX_DELIVERIES} times"), dead
    log = w.log()
    for number in (1, 2):
        assert _lines(log, r.id, f"delivery {number} ", levels=("WARNING",)), log
    assert _lines(log, r.id, f"rejected {MAX_DELIVERIES} times", "dead-letter"), log

    nxt = client.send_task(TASK("record"), args=["next"])
    assert nxt.get(timeout=15) == "next"
    assert w.alive


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.timeout(60)
def test_reject_without_requeue_fails_at_once_and_is_dead_lettered(
        start_worker, client, rec, broker, pool):
    w = _start(start_worker, pool, "reject")
    r = client.send_task(TASK("reject_for_good"), args=["x"])

    with pytest.raises(Reject, match="unwanted x"):
        r.get(timeout=15)
    assert r.status == "FAILURE"
    wait_until(lambda: any(d["id"] == r.id for d in _deadletters(broker)), timeout=10,
               message=f"not dead-lettered: {_deadletters(broker)}")
    [dead] = [d for d in _deadletters(broker) if d["id"] == r.id]
    assert "unwanted x" in dead["reason"], dead
    assert _lines(w.log(), r.id, "unwanted x", "dead-letter"), w.log()

    nxt = client.send_task(TASK("record"), args=["next"])
    assert nxt.get(timeout=15) == "next"
    assert runs(rec) == ["x", "next"]
    assert w.alive
    wait_until(lambda: broker_idle(broker), timeout=10, message=describe_broker(broker))
