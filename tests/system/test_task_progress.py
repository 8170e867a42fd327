"""A task's progress (``self.update_state``) and results that are never stored
(``ignore_result``), against real workers.

Workers run ``apps/sysq_outcomes.py``; its ``progress`` task waits between steps at a list
in db 3 that the test pushes to once it has seen the step.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_support import APPS, WORKER_ENV, runs  # noqa: E402

from multiq.exceptions import ResultIgnored  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]
TASK = "sysq_outcomes.{}".format


@pytest.fixture
def client(make_app):
    return make_app("sysq_progress_client")


def _start(start_worker, pool):
    args = ("-c", "2") if pool != "solo" else ()
    return start_worker("sysq_outcomes", *args, cwd=APPS, pool=pool,
                        hostname=f"progress-{pool}@%h", env=dict(WORKER_ENV))


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_progress_is_seen_step_by_step_and_get_waits_for_the_end(start_worker, client, rec,
                                                                 pool):
    _start(start_worker, pool)
    r = client.send_task(TASK("progress"), args=[3, "gate"])
    got = {}
    waiter = threading.Thread(target=lambda: got.update(value=r.get(timeout=30)))
    waiter.start()
    for done in (1, 2, 3):
        wait_until(lambda d=done: (r.state, r.info) == ("PROGRESS", {"done": d, "total": 3}),
                   timeout=15, message=f"step {done}: {r.state} {r.info}")
        assert waiter.is_alive() and not r.ready()  # get() is not fooled by PROGRESS
        if done == 1:  # inspect query_task shows the running task's state too
            [(node_name, reply)] = client.control.inspect().query_task(r.id).items()
            kind, info = reply[r.id]
            assert (kind, info["state"], info["meta"]) == ("active", "PROGRESS",
                                                           {"done": 1, "total": 3}), reply
        rec.rpush("gate", "go")
    waiter.join(15)
    assert got == {"value": {"done": 3}}
    assert (r.state, r.info) == ("SUCCESS", {"done": 3})


def test_progress_is_an_event_too_when_events_are_on(start_worker, client, rec, redis_client):
    import json

    start_worker("sysq_outcomes", "-E", cwd=APPS, pool="solo", hostname="progress-ev@%h",
                 env=dict(WORKER_ENV))
    r = client.send_task(TASK("progress"), args=[1, "gate-ev"])
    stream = client.broker.keys.events

    def progress_events():
        out = [json.loads(f[b"e"]) for _, f in redis_client.xrange(stream)]
        return [e for e in out if e["type"] == "task-progress" and e["uuid"] == r.id]

    wait_until(progress_events, timeout=15, message="no task-progress event")
    [event] = progress_events()
    assert event["state"] == "PROGRESS" and "'done': 1" in event["result"]
    rec.rpush("gate-ev", "go")
    assert r.get(timeout=15) == {"done": 1}


def test_update_state_outside_a_task_names_the_task(client):
    add = client.task(name="progress.add")(lambda x, y: x + y)
    client.conf.result_extended = False
    add.update_state(task_id="some-id", state="CUSTOM", meta={"n": 1})
    r = client.AsyncResult("some-id")
    assert (r.state, r.info) == ("CUSTOM", {"n": 1})
    with pytest.raises(ValueError, match="needs a task_id"):
        add.update_state(state="CUSTOM")
    with pytest.raises(ValueError, match="needs a state"):
        add.update_state(task_id="some-id")


def test_get_of_an_ignored_result_fails_at_once_and_the_task_still_runs(start_worker,
                                                                        client, rec):
    _start(start_worker, "solo")
    by_name = client.send_task(TASK("quiet"), args=["a"], ignore_result=True)
    assert by_name.ignored
    with pytest.raises(ResultIgnored, match="ignore_result"):
        by_name.get(timeout=30)
    quiet = client.task(name=TASK("quiet"), ignore_result=True)(lambda tag: None)
    by_task = quiet.delay("b")
    assert by_task.ignored
    with pytest.raises(ResultIgnored):
        by_task.get()
    plain = client.send_task(TASK("record"), args=["c"])
    assert not plain.ignored and plain.get(timeout=15) is not None
    wait_until(lambda: {"quiet:a", "quiet:b"} <= set(runs(rec)), timeout=15,
               message=f"runs: {runs(rec)}")


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_task_loggers_lines_name_the_task_and_its_id(start_worker, client, pool):
    w = _start(start_worker, pool)
    r = client.send_task(TASK("logs"), args=["the test"])
    assert r.get(timeout=15) == "the test"
    w.wait_for_log(f"{TASK('logs')}[{r.id}]: hello from the test", timeout=10)


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_headers_a_publish_hook_adds_reach_the_task_and_task_prerun(start_worker, client,
                                                                    pool):
    from multiq import signals

    _start(start_worker, pool)
    seen = {}

    def before(sender=None, body=None, exchange=None, routing_key=None, headers=None,
               properties=None, declare=None, retry_policy=None, **kwargs):
        seen["before"] = (sender, body, routing_key, dict(headers), properties)
        headers["x-trace"] = f"trace-of-{headers['id']}"  # as tracing libraries do

    def after(sender=None, body=None, headers=None, routing_key=None, **kwargs):
        seen["after"] = (sender, headers.get("x-trace"), routing_key)

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        r = client.send_task(TASK("headers_seen"), args=[], kwargs={}, countdown=0)
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    name, body, routing_key, headers, properties = seen["before"]
    assert (name, body, routing_key) == (TASK("headers_seen"), ([], {}, {
        "callbacks": None, "errbacks": None, "chain": None, "chord": None}), "multiq")
    assert (headers["task"], headers["id"], headers["lang"]) == (TASK("headers_seen"), r.id,
                                                                 "py")
    assert properties["correlation_id"] == r.id
    assert seen["after"] == (TASK("headers_seen"), f"trace-of-{r.id}", "multiq")
    assert r.get(timeout=15) == {"request": f"trace-of-{r.id}", "prerun": f"trace-of-{r.id}"}


def test_a_pydantic_task_validates_on_the_worker_and_stores_its_model_dumped(start_worker,
                                                                            client):
    pydantic = pytest.importorskip("pydantic")
    from sysq_outcomes import Order, Receipt

    _start(start_worker, "solo")
    ok = client.send_task(TASK("place"), args=[{"item": "tea", "quantity": "2"}])
    assert ok.get(timeout=15) == {"item": "tea", "total": 6}
    bad = client.send_task(TASK("place"), args=[{"item": "tea"}])
    with pytest.raises(Exception) as raised:
        bad.get(timeout=15)
    assert "quantity" in str(raised.value) and bad.state == "FAILURE"
    _place_stub.__annotations__ = {"order": Order, "return": Receipt}  # (the worker's types)
    place = client.task(name=TASK("place"), pydantic=True)(_place_stub)
    assert place.delay(Order(item="cake", quantity=1)).get(timeout=15) == {
        "item": "cake", "total": 3}  # the sender dumps the model to JSON
    assert pydantic is not None


def _place_stub(order):  # the sender's view of the worker's task (never run here)
    raise AssertionError("runs on the worker")


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_the_request_has_every_field_celery_fills_and_apply_links_its_parent(start_worker,
                                                                            client, pool):
    _start(start_worker, pool)
    r = client.send_task(TASK("fields"), args=[1], kwargs={"k": 2}, priority=5,
                         headers={"x-custom": "v"}, soft_time_limit=5, time_limit=10,
                         link=client.signature(TASK("record"), args=["after"]))
    seen = r.get(timeout=20)
    assert (seen["id"], seen["task"], seen["args"], seen["kwargs"]) == (
        r.id, TASK("fields"), [1], {"k": 2})
    assert (seen["retries"], seen["is_eager"], seen["priority"]) == (0, False, 5)
    assert seen["hostname"].startswith(f"progress-{pool}@")
    assert seen["delivery_info"]["routing_key"] == "multiq"
    assert seen["headers"]["x-custom"] == "v"
    assert (seen["root_id"], seen["parent_id"]) == (r.id, None)
    assert (seen["time_limit"], seen["soft_time_limit"]) == (10, 5)  # the message's own
    assert seen["correlation_id"] == r.id and seen["reply_to"] is None
    assert seen["properties"]["correlation_id"] == r.id
    assert seen["properties"]["priority"] == 5
    assert [c["task"] for c in seen["callbacks"]] == [TASK("record")]
    assert seen["errbacks"] is None and seen["chain"] is None and seen["group"] is None
    assert (seen["replaced_task_nesting"], seen["stamps"], seen["ignore_result"]) == (0, {},
                                                                                     False)
    child = seen["eager_child"]
    assert (child["root_id"], child["parent_id"], child["is_eager"]) == (r.id, r.id, True)
    assert child["id"] != r.id and child["hostname"]
