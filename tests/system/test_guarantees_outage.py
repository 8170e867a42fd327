"""SPEC §3 across a Redis outage longer than the liveness timeout: healthy nodes do not
declare each other gone when Redis comes back, so no task runs twice and none that
succeeded is marked WorkerLostError.

Two solo nodes (real processes) each run a long task on their own queue and hold a few
prefetched ones of the shared queue when their private redis-server (AOF on) goes away
for twice the liveness timeout: SIGKILLed and restarted on its AOF, SIGSTOPped and
continued, or paused for writes (``CLIENT PAUSE``). Runs are recorded in a file, outside
Redis (see apps/sysq_outage.py).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import find_redis_server, tail, wait_until  # noqa: E402
from sysq_support import APPS, AOFRedis, broker_idle, describe_broker  # noqa: E402

pytestmark = pytest.mark.system

LOST_TIMEOUT = 2.0
HEARTBEAT = 0.5
OUTAGE = 2 * LOST_TIMEOUT
LONG = 6.0  # the long tasks outlast the outage, and a liveness period after it
QUEUES = ("multiq", "only_a", "only_b")
RUN = "sysq_outage.run"


@pytest.fixture
def private_redis(tmp_path, process_tracker):
    server = AOFRedis(find_redis_server(), tmp_path / "aof-redis")
    process_tracker.track(server.start())
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)  # (in case the test failed mid-pause)
        server.stop()


def _runs(path: Path) -> List[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _kill_and_restart(srv: AOFRedis, process_tracker: Any) -> None:
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)
    _outage()
    process_tracker.track(srv.restart())


def _pause_and_continue(srv: AOFRedis, process_tracker: Any) -> None:
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        _outage()
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)


def _client_pause(srv: AOFRedis, process_tracker: Any) -> None:
    """``CLIENT PAUSE ... WRITE``: reads go on (expired keys read as absent), writes wait."""
    admin = srv.client()
    try:
        admin.execute_command("CLIENT", "PAUSE", int(OUTAGE * 1000), "WRITE")
    finally:
        admin.close()
    _outage()


def _outage() -> None:
    end = time.monotonic() + OUTAGE
    wait_until(lambda: time.monotonic() >= end, timeout=OUTAGE + 5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("outage", [_kill_and_restart, _pause_and_continue, _client_pause],
                         ids=["sigkill-restart", "sigstop-sigcont", "client-pause-write"])
def test_redis_outage_longer_than_liveness_runs_every_task_once(
        outage, start_worker, make_app, private_redis, process_tracker, tmp_path):
    srv = private_redis
    urls = {"broker": srv.url(1), "backend": srv.url(2)}
    runs_file = tmp_path / "runs.txt"
    env = {"MULTIQ_BROKER_URL": urls["broker"], "MULTIQ_RESULT_BACKEND": urls["backend"],
           "SYSQ_RUNS_FILE": str(runs_file), "SYSQ_LOST_TIMEOUT": str(LOST_TIMEOUT),
           "SYSQ_HEARTBEAT_INTERVAL": str(HEARTBEAT), "PYTHONDONTWRITEBYTECODE": "1"}
    client = make_app("sysq_outage_client", **urls)
    results: Dict[str, Any] = {
        "long_a": client.send_task(RUN, args=["long_a", LONG], queue="only_a"),
        "long_b": client.send_task(RUN, args=["long_b", LONG], queue="only_b"),
    }
    for i in range(6):  # each node prefetches three of them before its long task starts
        results[f"q{i}"] = client.send_task(RUN, args=[f"q{i}", 0.1])
    client.close()
    nodes = {name: start_worker("sysq_outage", "-Q", f"only_{name},multiq", cwd=APPS,
                                env=env, hostname=f"{name}@%h") for name in ("a", "b")}

    def logs() -> str:
        return "\n".join(f"--- {n}:\n{tail(w.log())}" for n, w in nodes.items())

    wait_until(lambda: {"long_a@a", "long_b@b"} <= set(_runs(runs_file)), timeout=20,
               message=f"the long tasks did not start: {_runs(runs_file)}\n{logs()}")

    outage(srv, process_tracker)

    client = make_app("sysq_outage_after", **urls)
    broker = srv.client(1)
    try:
        for tag, r in results.items():
            assert r.get(timeout=40) == tag, (tag, logs())  # no WorkerLostError
        # both nodes go on consuming by themselves
        after = {n: client.send_task(RUN, args=[f"after_{n}"], queue=f"only_{n}")
                 for n in nodes}
        for n, r in after.items():
            assert r.get(timeout=20) == f"after_{n}"
        counts = Counter(line.split("@")[0] for line in _runs(runs_file))
        assert counts == Counter([*results, "after_a", "after_b"]), \
            f"runs: {_runs(runs_file)}\n{logs()}"
        assert {"after_a@a", "after_b@b"} <= set(_runs(runs_file))
        for q in QUEUES:
            wait_until(lambda q=q: broker_idle(broker, q), timeout=10,
                       message=f"left behind in {q}: {describe_broker(broker, q)}")
        assert all(w.alive for w in nodes.values())
        for w in nodes.values():
            assert "is gone" not in w.log(), tail(w.log())
            w.stop(timeout=20)  # while Redis is up (the fixtures stop it before the workers)
    finally:
        broker.close()
