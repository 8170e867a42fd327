"""Signals to a prefork node started from the command line, per-child log files, and
--soft-shutdown-timeout (SPEC §2 ``worker``, §4 "Signals to a node").

TERM warm, QUIT cold, INT warm then cold, USR1 dumps stacks to the main log and to each
child's log. Nodes run ``python -m multiq -A sysq_node worker -P prefork``; tasks record
``<tag>:<what>:<pid>`` in db 3 (see apps/sysq_node.py).
"""
from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_node_support import (  # noqa: E402
    TASK,
    child_pids,
    live,
    read_text,
    recorded,
    start_node,
    wait_results,
)

from multiq.exceptions import WorkerLostError  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def client(make_app):
    return make_app("sysq_node_client")


def _kids(node, n=2, timeout=10.0):
    return [psutil.Process(p) for p in wait_until(
        lambda: len(child_pids(node.pid)) == n and child_pids(node.pid), timeout=timeout,
        message=f"node {node.pid} does not have {n} children: {child_pids(node.pid)}")]


def _running(rec, tag, timeout=10.0):
    return wait_until(lambda: recorded(rec, tag), timeout=timeout,
                      message=f"task {tag} did not start")[0]


def _wait_file(path, needle, timeout=15.0, node=None):
    def check():
        if node is not None and not node.alive:
            return True  # it exited: report below
        return needle in read_text(path)
    try:
        wait_until(check, timeout=timeout)
        if needle not in read_text(path):
            raise AssertionError
    except AssertionError:
        extra = f"\nnode output:\n{node.log()[-3000:]}" if node is not None else ""
        raise AssertionError(f"{path} has no {needle!r} within {timeout:.0f}s; it holds:\n"
                             f"{read_text(path)[-3000:]}{extra}") from None
    return read_text(path)


def _bands():
    return [f"multiq:q:{{multiq}}:{band}" for band in range(10)]


def _ready(broker):
    """Messages waiting in the default queue's streams (delivered or not)."""
    return sum(int(broker.xlen(name)) for name in _bands())


def _held(broker):
    """Messages of the default queue that some consumer holds (pending entries)."""
    total = 0
    for name in _bands():
        if broker.exists(name):
            try:
                total += int(broker.xpending(name, "multiq")["pending"])
            except redis.ResponseError:  # no group
                pass
    return total


def _assert_all_gone(procs, timeout=5.0):
    wait_until(lambda: not any(live(p) for p in procs), timeout=timeout,
               message=f"pool children outlived their node: {[p.pid for p in procs]}")


# -- 6. per-child log files --------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_per_child_log_files(start_worker, client, tmp_path):
    logs = tmp_path / "logs"
    node = start_node(start_worker, "-f", str(logs / "%n%I.log"), "-c", "2", "-l", "info",
                      hostname="w1@%h", wait_ready=False)
    main_log = logs / "w1.log"
    _wait_file(main_log, "ready", node=node)
    _kids(node)
    assert sorted(p.name for p in logs.iterdir()) == ["w1-1.log", "w1-2.log", "w1.log"]

    results = [client.send_task(TASK("pid")) for _ in range(6)]
    wait_results(results, timeout=15)
    assert all(r.status == "SUCCESS" for r in results)
    for r in results:
        needle = f"[{r.id}] succeeded"
        wait_until(lambda n=needle: any(n in read_text(logs / f"w1-{i}.log") for i in (1, 2)),
                   timeout=5, message=f"no child log has {needle!r}")
        assert needle not in read_text(main_log)

    main_text = read_text(main_log)
    lines = [ln for ln in main_text.splitlines() if ln.startswith("[")]
    assert lines, main_text
    assert any("MainProcess" in ln and "w1@" in ln and "ready" in ln for ln in lines), main_text
    for i in (1, 2):
        text = read_text(logs / f"w1-{i}.log")
        child_lines = [ln for ln in text.splitlines() if "succeeded" in ln]
        for line in child_lines:
            assert f"ForkPoolWorker-{i}" in line and "w1@" in line, line
    assert any("succeeded" in read_text(logs / f"w1-{i}.log") for i in (1, 2))
    # a node with a log file writes nothing of its log to its standard streams
    assert "succeeded" not in node.log()


# -- 7. signals ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_term_is_a_warm_shutdown(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2")
    kids = _kids(node)
    r = client.send_task(TASK("nap"), args=["warm", 2])
    _running(rec, "warm")
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=15) == 0
    assert r.status == "SUCCESS", (r.status, r.result)
    assert recorded(rec, "warm", "end") == recorded(rec, "warm")
    _assert_all_gone(kids)


@pytest.mark.timeout(30)
def test_quit_is_a_cold_shutdown(start_worker, client, rec, redis_client):
    node = start_node(start_worker, "-c", "2", hostname="cold@%h")
    kids = _kids(node)
    early = client.send_task(TASK("nap"), args=["early", 10])
    late = client.send_task(TASK("nap_late"), args=["late", 2])
    _running(rec, "early")
    _running(rec, "late")

    began = time.monotonic()
    node.send_signal(signal.SIGQUIT)
    code = node.wait(timeout=10)
    assert code != 0
    assert time.monotonic() - began < 5
    _assert_all_gone(kids)

    wait_results([early], timeout=5)
    assert early.status == "FAILURE", (early.status, early.result)
    assert isinstance(early.result, WorkerLostError), repr(early.result)
    assert recorded(rec, "late", "end") == []
    assert late.status != "SUCCESS"
    # the late-ack task went back to the queue as the node left (not later, when its
    # heartbeat expires): ready in a stream, held by no one
    assert _ready(redis_client) == 1, _ready(redis_client)
    assert _held(redis_client) == 0

    second = start_node(start_worker, "-c", "2", hostname="second@%h")
    heirs = [p.pid for p in _kids(second)]
    assert late.get(timeout=15) in heirs
    assert len(recorded(rec, "late")) == 2
    assert len(recorded(rec, "early")) == 1  # an early-ack task is never run twice


@pytest.mark.timeout(30)
def test_int_once_is_warm(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2")
    kids = _kids(node)
    r = client.send_task(TASK("nap"), args=["int1", 2])
    _running(rec, "int1")
    node.send_signal(signal.SIGINT)
    assert node.wait(timeout=15) == 0
    assert r.status == "SUCCESS", (r.status, r.result)
    _assert_all_gone(kids)


@pytest.mark.timeout(30)
def test_int_twice_is_cold(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2")
    kids = _kids(node)
    r = client.send_task(TASK("nap"), args=["int2", 10])
    _running(rec, "int2")
    began = time.monotonic()
    node.send_signal(signal.SIGINT)
    node.wait_for_log("Warm shutdown", timeout=5)
    assert node.alive  # the first INT waits for the task
    node.send_signal(signal.SIGINT)
    code = node.wait(timeout=10)
    assert code != 0
    assert time.monotonic() - began < 6
    _assert_all_gone(kids)
    wait_results([r], timeout=5)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, WorkerLostError), repr(r.result)
    assert recorded(rec, "int2", "end") == []


@pytest.mark.timeout(30)
def test_usr1_dumps_stacks_to_main_and_child_logs(start_worker, client, tmp_path):
    logs = tmp_path / "logs"
    node = start_node(start_worker, "-f", str(logs / "%n%I.log"), "-c", "2",
                      hostname="dump@%h", wait_ready=False)
    _wait_file(logs / "dump.log", "ready", node=node)
    kids = _kids(node)
    node.send_signal(signal.SIGUSR1)
    main_text = _wait_file(logs / "dump.log", "Stacks of", node=node)
    assert f"pid {node.pid}" in main_text
    for i in (1, 2):
        text = _wait_file(logs / f"dump-{i}.log", "Stacks of", node=node)
        assert re.search(rf"Stacks of .*child {i}", text), text
    assert node.alive
    assert [p.pid for p in _kids(node)] == [p.pid for p in kids]
    assert client.send_task(TASK("pid")).get(timeout=10) in [p.pid for p in kids]
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=15) == 0


# -- 10. --soft-shutdown-timeout -----------------------------------------------------------


@pytest.mark.timeout(30)
def test_soft_shutdown_timeout_turns_warm_shutdown_cold(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2", "--soft-shutdown-timeout", "1")
    kids = _kids(node)
    r = client.send_task(TASK("nap"), args=["long", 10])
    _running(rec, "long")
    began = time.monotonic()
    node.send_signal(signal.SIGTERM)
    code = node.wait(timeout=10)
    took = time.monotonic() - began
    assert 0.8 <= took < 3.5, took
    assert code != 0  # it had to turn cold
    _assert_all_gone(kids)
    wait_results([r], timeout=5)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, WorkerLostError), repr(r.result)
    assert recorded(rec, "long", "end") == []
