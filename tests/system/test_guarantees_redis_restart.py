"""SPEC §3: a worker outlives a Redis restart (AOF on) by itself, and nothing queued or
running across the restart is lost or run twice.

The test runs its own redis-server (free port, own directory, ``--appendonly yes``) so it
can stop and restart it without disturbing the session's server.
"""
from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import find_redis_server, tail, wait_until  # noqa: E402
from sysq_support import (  # noqa: E402
    TASK,
    AOFRedis,
    broker_idle,
    delayed,
    describe_broker,
    runs,
    start,
)

pytestmark = pytest.mark.system

CONNECTION_TROUBLE = re.compile(r"connect|unavailable|refused|reach", re.I)


@pytest.fixture
def private_redis(tmp_path, process_tracker):
    server = AOFRedis(find_redis_server(), tmp_path / "aof-redis")
    process_tracker.track(server.start())
    try:
        yield server
    finally:
        server.stop()


def _trouble_logged(worker, since):
    return [line for line in worker.log()[since:].splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)
            and CONNECTION_TROUBLE.search(line)]


@pytest.mark.timeout(60)
def test_worker_resumes_after_redis_restart(start_worker, make_app, private_redis,
                                            process_tracker):
    srv = private_redis
    urls = {"broker": srv.url(1), "backend": srv.url(2)}
    env = {"MULTIQ_BROKER_URL": urls["broker"], "MULTIQ_RESULT_BACKEND": urls["backend"]}
    rec, broker = srv.client(3), srv.client(1)
    client = make_app("sysq_before", **urls)
    w = start(start_worker, hostname="rr@%h", env=env)

    # one task running across the outage (it does not touch Redis while it sleeps) ...
    across = client.send_task(TASK("nap"), args=["across", 2.5])
    wait_until(lambda: runs(rec) == ["start:across"], timeout=10,
               message=f"runs={runs(rec)}")
    # ... and one queued before the restart: it waits in Redis (so in the AOF)
    queued = client.send_task(TASK("record"), args=["queued"], countdown=1.5)
    queued_due = time.time() + 1.5
    assert broker.zcard(delayed()) == 1
    rec.close()
    broker.close()
    client.close()

    since = len(w.log())
    srv.stop()
    wait_until(lambda: _trouble_logged(w, since), timeout=15,
               message=f"the worker logged no connection error:\n{tail(w.log()[since:])}")
    # keep Redis down until the running task has finished (its result must wait) and the
    # queued one has come due
    w.wait_for_log(f"nap[{across.id}] succeeded", timeout=10, since=since)
    wait_until(lambda: time.time() > queued_due, timeout=5)
    assert w.alive
    process_tracker.track(srv.restart())

    client = make_app("sysq_after", **urls)
    rec, broker = srv.client(3), srv.client(1)
    try:
        assert client.AsyncResult(across.id).get(timeout=20) == "across"
        assert client.AsyncResult(queued.id).get(timeout=20) is not None
        fresh = client.send_task(TASK("record"), args=["fresh"])
        assert fresh.get(timeout=20) is not None
        assert w.alive
        wait_until(lambda: broker_idle(broker), timeout=10,
                   message=f"messages left behind: {describe_broker(broker)}")
        assert Counter(runs(rec)) == {"start:across": 1, "queued": 1, "fresh": 1}
        w.stop(timeout=20)  # while Redis is up (the fixtures stop it before the workers)
    finally:
        rec.close()
        broker.close()
