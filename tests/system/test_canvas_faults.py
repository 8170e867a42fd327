"""Chords and chains under faults and at size, with real nodes: a node SIGKILLed while it
runs a chord's header (acks late), failing header tasks, a chain of 100 tasks and a chord
of 10,000.

Nodes run ``python -m multiq -A sysq_canvas worker`` (apps/sysq_canvas.py); the chord body
``count_tsum`` counts its runs in db 3 (``INCR <key>``) and records what it summed.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import RedisServer, find_redis_server, wait_until  # noqa: E402
from sysq_canvas import (  # noqa: E402
    add,
    count_tsum,
    fail,
    nap_add,
    on_chord_error,
    raising_task,
    slow_add,
    tsum,
)
from sysq_canvas_support import (  # noqa: E402
    APPS,
    WORKER_ENV,
    errback_runs,
    errbacks,
    point_app,
    runs,
)
from sysq_support import broker_idle, describe_broker, sigkill  # noqa: E402

from multiq import chain, chord  # noqa: E402
from multiq.exceptions import ChordError, TimeoutError, WorkerLostError  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def backend(request, backend_url, tmp_path):
    """The result backend: db 2 of the broker's server, or (param ``"own"``) a redis-server
    of its own, where a header task's result write cannot also send the chord's body."""
    if getattr(request, "param", "shared") == "shared":
        yield backend_url
        return
    server = RedisServer(find_redis_server(), tmp_path / "results")
    server.start()
    try:
        yield server.url(0)
    finally:
        server.stop()


@pytest.fixture
def app(redis_url, backend):
    client = point_app(redis_url, backend)
    yield client
    client.close()


def _node(start_worker, app, name, *args, pool="threads", concurrency=2):
    return start_worker("sysq_canvas", "-c", str(concurrency), *args, cwd=APPS, pool=pool,
                        hostname=f"{name}@%h",
                        env={**WORKER_ENV, "MULTIQ_RESULT_BACKEND": app.conf.result_backend})


def _tags(rec, what):
    return [r.split(":", 1)[1] for r in runs(rec) if r.startswith(f"{what}:")]


@pytest.mark.parametrize(("pool", "backend"), [
    ("threads", "shared"), ("prefork", "shared"), ("threads", "own"),
], ids=["threads", "prefork", "threads-own-backend-server"], indirect=["backend"])
@pytest.mark.timeout(90)
def test_sigkill_mid_header_acks_late_body_runs_once_with_every_result(
        app, start_worker, rec, redis_client, pool):
    """Node A (2 slots) runs the first of twelve 1 s acks-late header tasks and is
    SIGKILLed while two run; node B runs those two again and the rest. The body runs once,
    with every header result in header order."""
    a = _node(start_worker, app, "a", pool=pool)
    key = f"body-runs:sigkill:{pool}"
    result = chord(slow_add.s(i, i, 1.0) for i in range(12))(count_tsum.s(key))
    wait_until(lambda: len(_tags(rec, "end")) >= 2 and
               len(_tags(rec, "start")) - len(_tags(rec, "end")) == 2,
               timeout=20, message=f"node A did not get going; runs={runs(rec)}")
    sigkill(a)
    running = sorted(set(_tags(rec, "start")) - set(_tags(rec, "end")))
    assert len(running) == 2 and rec.get(key) is None, (running, runs(rec))

    _node(start_worker, app, "b", concurrency=4)
    assert result.get(timeout=45) == sum(2 * i for i in range(12))
    wait_until(lambda: broker_idle(redis_client), timeout=15,
               message=f"messages left behind: {describe_broker(redis_client)}")
    assert int(rec.get(key)) == 1
    assert [json.loads(v) for v in rec.lrange(f"{key}:values", 0, -1)] == \
        [[2 * i for i in range(12)]]
    starts = Counter(_tags(rec, "start"))
    assert all(starts[t] == 2 for t in running), starts  # run again after the kill
    assert sorted(Counter(_tags(rec, "end"))) == sorted(str(i) for i in range(12))


@pytest.mark.parametrize("backend", ["shared", "own"], indirect=True,
                         ids=["shared", "own-backend-server"])
@pytest.mark.timeout(60)
def test_failing_header_tasks_chord_error_and_errback_once(
        app, start_worker, rec, redis_client):
    """Two of twenty header tasks fail, on two nodes: the chord's result is a ChordError
    naming one of them and its error, the body never runs, the errback runs once, with the
    body's request and the ChordError (Celery's ``(request, exc, traceback)``)."""
    for name, pool in (("f1", "prefork"), ("f2", "threads")):
        _node(start_worker, app, name, pool=pool)
    key = "body-runs:failing"
    header = [add.s(i, i) for i in range(20)]
    header[7], header[13] = raising_task.s(), fail.s()
    result = chord(header)(count_tsum.s(key).on_error(on_chord_error.s()))
    with pytest.raises(ChordError) as raised:
        result.get(timeout=30)
    failed = {result.parent.results[7].id: "ValueError('something something')",
              result.parent.results[13].id: "ValueError('fail')"}
    named = [tid for tid in failed if tid in str(raised.value)]
    assert len(named) == 1, str(raised.value)
    assert failed[named[0]] in str(raised.value), str(raised.value)

    wait_until(lambda: broker_idle(redis_client), timeout=15,
               message=f"messages left behind: {describe_broker(redis_client)}")
    calls = errbacks(rec, result.id)
    assert [c["errback"] for c in calls] == ["on_chord_error"], calls
    assert errback_runs(rec, result.id) == 1
    assert calls[0]["exc"] == "ChordError" and named[0] in calls[0]["text"], calls
    assert rec.get(key) is None  # the body never ran
    values = result.parent.join(timeout=10, propagate=False)
    assert [v for i, v in enumerate(values) if i not in (7, 13)] == \
        [2 * i for i in range(20) if i not in (7, 13)]


def _lost_header_fails_the_chord(result, rec, key, lost_ids):
    """The chord of a header task lost with its process fails with a ChordError naming it
    (WorkerLostError); the body never runs; its errback runs once."""
    try:
        result.get(timeout=20)
    except TimeoutError:
        states = [(r.state, type(r.result).__name__) for r in result.parent.results]
        pytest.fail(f"the chord never ended; its header: {states}, body: {result.state}")
    except ChordError as exc:
        text = str(exc)
    else:
        pytest.fail(f"the chord succeeded: {result.result!r}")
    assert any(tid in text for tid in lost_ids) and "WorkerLostError" in text, text
    wait_until(lambda: errbacks(rec, result.id), timeout=10,
               message=f"the chord errback was not called for {result.id}")
    assert errback_runs(rec, result.id) == 1
    assert rec.get(key) is None


@pytest.mark.timeout(60)
def test_sigkill_mid_header_early_ack_the_chord_fails_as_lost(app, start_worker, rec):
    """Header tasks acknowledged early are not run again when their node dies: they fail
    with WorkerLostError, and so does the chord, with ChordError (it does not wait
    forever)."""
    a = _node(start_worker, app, "early-a")
    key = "body-runs:lost"
    result = chord(nap_add.s(i, i, 1.5) for i in range(6))(
        count_tsum.s(key).on_error(on_chord_error.s()))
    wait_until(lambda: len(_tags(rec, "start")) == 2, timeout=20,
               message=f"node A did not start two tasks; runs={runs(rec)}")
    sigkill(a)
    running = {int(t) for t in _tags(rec, "start")}
    assert not _tags(rec, "end"), runs(rec)
    _node(start_worker, app, "early-b", concurrency=4)
    lost = [r.id for i, r in enumerate(result.parent.results) if i in running]
    _lost_header_fails_the_chord(result, rec, key, lost)


@pytest.mark.timeout(60)
def test_sigkill_mid_chain_early_ack_the_chain_fails_as_lost(app, start_worker, rec):
    """A chain whose step is lost with its node (acknowledged early, not run again): the
    chain's result fails with WorkerLostError, as that step's does."""
    a = _node(start_worker, app, "chain-a")
    res = chain(nap_add.s(1, 1, 1.5), add.s(1), add.s(1))()
    wait_until(lambda: _tags(rec, "start") == ["1"], timeout=20,
               message=f"node A did not start the first step; runs={runs(rec)}")
    sigkill(a)
    _node(start_worker, app, "chain-b")
    first = res.parent.parent
    first.get(timeout=20, propagate=False)
    assert isinstance(first.result, WorkerLostError), (first.state, first.result)
    try:
        res.get(timeout=10)
    except TimeoutError:
        pytest.fail(f"the chain's result never ended: {res.state}")
    except WorkerLostError:
        pass
    assert res.failed() and isinstance(res.result, WorkerLostError), (res.state, res.result)


@pytest.mark.timeout(60)
def test_pool_child_killed_mid_header_the_chord_fails_as_lost(app, start_worker, rec):
    """A prefork child SIGKILLed while it runs a header task: that task fails with
    WorkerLostError, the chord with ChordError; a chain whose step is lost so fails with
    WorkerLostError; the node goes on."""
    node = _node(start_worker, app, "child", pool="prefork")
    key = "body-runs:child"
    result = chord(nap_add.s(i, i, 2.0) for i in range(2))(
        count_tsum.s(key).on_error(on_chord_error.s()))
    wait_until(lambda: len(_tags(rec, "start")) == 2, timeout=20,
               message=f"the node did not start both tasks; runs={runs(rec)}")
    children = psutil.Process(node.pid).children()
    assert len(children) == 2, children
    children[0].kill()
    _lost_header_fails_the_chord(result, rec, key, [r.id for r in result.parent.results])

    res = chain(nap_add.s(100, 1, 2.0), add.s(1))()
    wait_until(lambda: "100" in _tags(rec, "start"), timeout=20,
               message=f"the chain did not start; runs={runs(rec)}")
    killed = psutil.Process(node.pid).children()
    for child in killed:
        child.kill()
    with pytest.raises(WorkerLostError):
        res.get(timeout=20)
    # the node goes on once it has replaced its children (a task sent before then may be
    # handed to a dead one)
    wait_until(lambda: len(set(psutil.Process(node.pid).children()) - set(killed)) == 2,
               timeout=15, message="the node did not replace its children")
    assert node.alive and add.delay(1, 1).get(timeout=10) == 2


@pytest.mark.timeout(60)
def test_chain_of_a_hundred_tasks(app, start_worker):
    _node(start_worker, app, "long")
    res = chain(add.s(0, 0), *(add.s(i) for i in range(1, 100)))()
    assert res.get(timeout=45) == sum(range(100))
    depth, node = 0, res
    while node.parent is not None:
        depth, node = depth + 1, node.parent
    assert depth == 99 and node.get(timeout=5) == 0


@pytest.mark.timeout(150)
def test_chord_of_ten_thousand_tasks(app, start_worker):
    _node(start_worker, app, "big", pool="prefork", concurrency=2)
    started = time.perf_counter()
    result = chord(add.s(i, i) for i in range(10_000))(tsum.s())
    sent = time.perf_counter() - started
    assert result.get(timeout=120) == 2 * sum(range(10_000))
    took = time.perf_counter() - started
    print(f"CHORD 10000 header tasks: sent in {sent:.2f}s, body result after {took:.2f}s "
          f"= {10_000 / took:,.0f} tasks/s")
