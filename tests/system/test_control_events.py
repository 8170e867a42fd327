"""Events: task and node events in the ``multiq:events`` stream, read live with
``EventReceiver`` and with ``multiq events --dump``; turned on with ``-E`` or
``control enable_events``, off again with ``control disable_events``.

Nodes of the module (``python -m multiq -A sysq_control worker``, apps/sysq_control.py):

    ev    solo, -E, queue ev
    evp   prefork -c 1, no -E (events switched on and off by control commands), queue evp
    bye   solo, -E, queue bye: shut down by a test (worker-offline)

The module flushes the session's redis-server once at its start and uses no per-test
fixture that would flush it again.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import ProcessTracker, start_worker_process, wait_until  # noqa: E402
from sysq_control_support import (  # noqa: E402
    APPS,
    TASK,
    cli,
    cold_stop,
    env_for,
    flat,
    node,
    stream_events,
    wait_results,
)

from multiq import MultiQ  # noqa: E402
from multiq.events import EventReceiver  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(45)]

EV, EVP, BYE = node("ev"), node("evp"), node("bye")
NODES = {
    "ev": ("solo", "-E", "-Q", "ev"),
    "evp": ("prefork", "-c", "1", "-Q", "evp"),
    "bye": ("solo", "-E", "-Q", "bye"),
}
TASK_EVENTS = ("task-received", "task-started", "task-succeeded")


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory):
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    broker_url, backend_url = redis_server.url(1), redis_server.url(2)
    env = env_for(broker_url, backend_url)
    logs = tmp_path_factory.mktemp("control-events")
    tracker = ProcessTracker()
    workers = {}
    app = MultiQ("sysq_control_client", broker=broker_url, backend=backend_url,
                 set_as_current=False)
    broker = redis_server.client(1)
    try:
        for short, (pool, *args) in NODES.items():
            workers[short] = start_worker_process(
                tracker, "sysq_control", *args, cwd=APPS, env=env, pool=pool,
                hostname=f"{short}@%h", wait_ready=False, log_path=logs / f"{short}.log")
        for w in workers.values():
            w.wait_for_log("ready", timeout=30)
        yield SimpleNamespace(app=app, env=env, workers=workers, broker=broker)
    finally:
        cold_stop(list(workers.values()))
        tracker.cleanup()
        broker.close()
        app.close()


def _of(cluster, task_id):
    """The events of one task, oldest first."""
    return [e for e in stream_events(cluster.broker) if e.get("uuid") == task_id]


def _types(events):
    return [e["type"] for e in events]


def _wait_types(cluster, task_id, types, timeout=10.0):
    def check():
        events = _of(cluster, task_id)
        return events if set(types) <= set(_types(events)) else None
    return wait_until(check, timeout=timeout,
                      message=f"no {types} for {task_id}: {_types(_of(cluster, task_id))}")


def _settled(cluster, queue):
    """Every entry of ``queue`` is acknowledged: its events (written in the same
    transaction as the ack) are in the stream by now, if any were sent."""
    total = 0
    for band in range(10):
        stream = f"multiq:q:{{{queue}}}:{band}"
        if cluster.broker.exists(stream):
            total += int(cluster.broker.xpending(stream, "multiq")["pending"])
            total += int(cluster.broker.xlen(stream))
    return total == 0


def test_event_receiver_sees_a_task_succeed_and_one_fail_live(cluster):
    seen, done = [], threading.Event()
    wanted = {}

    def on_event(event):
        seen.append(event)
        got = {(e["type"], e.get("uuid")) for e in seen}
        if wanted and {(t, wanted["ok"]) for t in TASK_EVENTS} <= got \
                and ("task-failed", wanted["bad"]) in got:
            receiver.should_stop = True
            done.set()

    handlers = {kind: on_event for kind in (*TASK_EVENTS, "task-failed")}
    receiver = EventReceiver(cluster.app, handlers=handlers)
    reader = threading.Thread(target=receiver.capture, kwargs={"timeout": 20}, daemon=True)
    reader.start()
    wait_until(lambda: receiver.last_id != "$", timeout=5, message="the receiver did not start")

    before = time.time()
    ok = cluster.app.send_task(TASK("record"), args=["ev-ok"], queue="ev")
    bad = cluster.app.send_task(TASK("boom"), args=["ev-kaboom"], queue="ev")
    wanted.update(ok=ok.id, bad=bad.id)
    assert done.wait(15), f"events seen: {[(e['type'], e.get('uuid')) for e in seen]}"
    receiver.should_stop = True
    reader.join(5)

    mine = [e for e in seen if e.get("uuid") == ok.id]
    assert _types(mine) == list(TASK_EVENTS)
    for e in mine:
        assert e["hostname"] == EV
        assert before - 1 <= e["timestamp"] <= time.time() + 1
    assert mine[0]["name"] == TASK("record")
    assert "ev-ok" in mine[0]["args"]
    succeeded = mine[-1]
    assert isinstance(succeeded["runtime"], float) and 0 <= succeeded["runtime"] < 5
    assert succeeded["result"] == repr(ok.get(timeout=5))

    failed = [e for e in seen if e.get("uuid") == bad.id and e["type"] == "task-failed"]
    assert len(failed) == 1, failed
    assert failed[0]["hostname"] == EV
    assert "ev-kaboom" in failed[0]["exception"]
    assert isinstance(failed[0]["runtime"], float)
    assert "SysqControlBoom" in (failed[0].get("traceback") or failed[0]["exception"])


def test_prefork_node_sends_task_events_when_enabled(cluster):
    off = cluster.app.send_task(TASK("record"), args=["evp-off"], queue="evp")
    assert off.get(timeout=10)
    wait_until(lambda: _settled(cluster, "evp"), timeout=10)
    assert _of(cluster, off.id) == []  # events disabled: nothing in the stream

    run = cli(cluster.env, "control", "enable_events", "-d", EVP)
    assert run.code == 0, run
    assert f"->  {EVP}: OK" in run.out, run
    on = cluster.app.send_task(TASK("record"), args=["evp-on"], queue="evp")
    events = _wait_types(cluster, on.id, TASK_EVENTS)
    assert _types(events) == list(TASK_EVENTS)
    assert all(e["hostname"] == EVP for e in events)
    wait_until(lambda: any(e["type"] == "worker-heartbeat" and e["hostname"] == EVP
                           for e in stream_events(cluster.broker)), timeout=5,
               message="no heartbeat events after enable_events")

    run = cli(cluster.env, "control", "disable_events", "-d", EVP)
    assert run.code == 0, run
    assert f"->  {EVP}: OK" in run.out, run
    again = cluster.app.send_task(TASK("record"), args=["evp-again"], queue="evp")
    assert again.get(timeout=10)
    wait_until(lambda: _settled(cluster, "evp"), timeout=10)
    assert _of(cluster, again.id) == []


def test_a_prefork_task_failed_event_shows_the_tasks_own_exception(cluster):
    run = cli(cluster.env, "control", "enable_events", "-d", EVP)
    assert run.code == 0, run
    try:
        bad = cluster.app.send_task(TASK("boom"), args=["evp-boom"], queue="evp")
        failed = _wait_types(cluster, bad.id, ("task-failed",))[-1]
    finally:
        cli(cluster.env, "control", "disable_events", "-d", EVP)
    # raised in a pool child, carried to the node: still the task's exception type
    assert failed["exception"] == "SysqControlBoom('evp-boom')", failed
    total = cluster.broker.xlen("multiq:events")
    dump = cli(cluster.env, "events", "--dump", "--from-start", "--limit", str(total))
    line = next(line for line in dump.out.splitlines()
                if bad.id in line and "task-failed" in line)
    assert "exception=SysqControlBoom('evp-boom')" in line, line


def test_python_api_enable_and_disable_events(cluster):
    replies = cluster.app.control.enable_events(destination=[EVP], reply=True)
    assert list(flat(replies)) == [EVP] and "ok" in flat(replies)[EVP], replies
    on = cluster.app.send_task(TASK("record"), args=["evp-api-on"], queue="evp")
    _wait_types(cluster, on.id, TASK_EVENTS)
    replies = cluster.app.control.disable_events(destination=[EVP], reply=True)
    assert "ok" in flat(replies)[EVP], replies
    off = cluster.app.send_task(TASK("record"), args=["evp-api-off"], queue="evp")
    assert off.get(timeout=10)
    wait_until(lambda: _settled(cluster, "evp"), timeout=10)
    assert _of(cluster, off.id) == []


def test_acks_late_task_has_a_task_started_event(cluster):
    r = cluster.app.send_task(TASK("late_record"), args=["ev-late"], queue="ev")
    _wait_types(cluster, r.id, ("task-received", "task-succeeded"))
    assert _types(_of(cluster, r.id)) == list(TASK_EVENTS)


def test_events_dump_prints_one_line_per_event(cluster):
    r = cluster.app.send_task(TASK("record"), args=["ev-dump"], queue="ev")
    _wait_types(cluster, r.id, TASK_EVENTS)
    total = cluster.broker.xlen("multiq:events")
    run = cli(cluster.env, "events", "--dump", "--from-start", "--limit", str(total),
              "--timeout", "10")
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert len(lines) == total, run
    kinds = {kind: [line for line in lines if f" {kind}: " in line and r.id in line]
             for kind in TASK_EVENTS}
    assert all(len(found) == 1 for found in kinds.values()), kinds
    for kind in ("task-received", "task-succeeded"):
        assert f"{TASK('record')}[{r.id}]" in kinds[kind][0], kinds[kind]
    assert all(line.startswith(EV) for found in kinds.values() for line in found)
    assert any("worker-online" in line and line.startswith(EV) for line in lines), run
    assert any("worker-heartbeat" in line for line in lines), run


def test_events_dump_names_the_task_on_every_task_line(cluster):
    r = cluster.app.send_task(TASK("record"), args=["ev-dump-name"], queue="ev")
    _wait_types(cluster, r.id, TASK_EVENTS)
    total = cluster.broker.xlen("multiq:events")
    run = cli(cluster.env, "events", "--dump", "--from-start", "--limit", str(total))
    lines = [line for line in run.out.splitlines() if r.id in line]
    assert len(lines) == 3, run
    for line in lines:
        assert f"{TASK('record')}[{r.id}]" in line, line


def test_events_dump_live_stops_at_limit(cluster):
    argv = [sys.executable, "-m", "multiq", "-A", "sysq_control", "events", "--dump",
            "--limit", "2", "--timeout", "10"]
    began = time.monotonic()
    proc = subprocess.run(argv, env=cluster.env, cwd=str(APPS), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=20)
    took = time.monotonic() - began
    assert proc.returncode == 0, proc
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout  # -E nodes beat every second
    assert all("worker-heartbeat" in line or " task-" in line for line in lines), lines
    assert took < 5, took


def test_events_dump_says_why_when_no_node_sends_events(cluster, redis_server):
    # a database no node uses: no events at all; the hint comes after a few seconds
    env = dict(cluster.env, MULTIQ_BROKER_URL=redis_server.url(5))
    argv = [sys.executable, "-m", "multiq", "-A", "sysq_control", "events", "--dump",
            "--timeout", "4.5"]
    proc = subprocess.run(argv, env=env, cwd=str(APPS), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc
    assert proc.stdout == ""
    assert proc.stderr.strip() == ("No events yet (no node is running): start nodes with -E, "
                                   "or run `multiq control enable_events`."), proc.stderr


def test_events_dump_gives_no_hint_while_events_come(cluster):
    argv = [sys.executable, "-m", "multiq", "-A", "sysq_control", "events", "--dump",
            "--timeout", "4.5"]
    proc = subprocess.run(argv, env=cluster.env, cwd=str(APPS), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc
    assert "worker-heartbeat" in proc.stdout  # the -E nodes beat every second
    assert "No events yet" not in proc.stderr, proc.stderr


def test_worker_online_heartbeat_offline(cluster):
    w = cluster.workers["bye"]
    mine = [e for e in stream_events(cluster.broker) if e.get("hostname") == BYE]
    assert _types(mine).count("worker-online") == 1, _types(mine)
    online = next(e for e in mine if e["type"] == "worker-online")
    assert online["sw_ident"] == "multiq" and "freq" in online, online
    wait_until(lambda: any(e["type"] == "worker-heartbeat" and e["hostname"] == BYE
                           for e in stream_events(cluster.broker)), timeout=5)
    beat = next(e for e in stream_events(cluster.broker)
                if e["type"] == "worker-heartbeat" and e["hostname"] == BYE)
    assert {"timestamp", "freq", "active", "processed"} <= set(beat), beat

    r = cluster.app.send_task(TASK("record"), args=["bye-1"], queue="bye")
    wait_results([r], timeout=10)
    replies = cluster.app.control.shutdown(destination=[BYE], reply=True)
    assert list(flat(replies)) == [BYE]
    assert w.wait(timeout=15) == 0
    offline = [e for e in stream_events(cluster.broker)
               if e["type"] == "worker-offline" and e["hostname"] == BYE]
    assert len(offline) == 1, _types(stream_events(cluster.broker))
    assert offline[0]["processed"] >= 1
