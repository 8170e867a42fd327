"""SPEC §3 under crashes: SIGKILL of a worker (early and late ack), durable countdowns and
retries, no redelivery of a healthy long task, warm shutdown handing back prefetched work.

Real worker processes started with ``python -m multiq -A sysq_reliable worker``; every run of
a task is recorded in db 3 (see apps/sysq_reliable.py).
"""
from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import wait_until  # noqa: E402
from sysq_support import (  # noqa: E402
    TASK,
    broker_idle,
    delayed,
    describe_broker,
    pending_by_consumer,
    pending_total,
    runs,
    sigkill,
    start,
    started_hash,
    started_tags,
    stream_total,
    wait_results,
)

from multiq.exceptions import WorkerLostError  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def client(make_app):
    return make_app("sysq_client")


@pytest.fixture
def broker(redis_client):
    return redis_client


def _kill_mid_stream(start_worker, client, rec, broker, task, marked):
    """Worker A (threads, 2 slots) runs 2 of 20 three-second tasks and is SIGKILLed once
    ``marked`` starts are recorded in Redis; worker B takes over. Returns (results by tag,
    tags that were running in A)."""
    a = start(start_worker, "-c", "2", pool="threads", hostname="a@%h")
    results = {f"t{i:02d}": client.send_task(TASK(task), args=[f"t{i:02d}", 3])
               for i in range(20)}
    wait_until(lambda: len(started_tags(rec)) >= 2 and broker.hlen(started_hash()) == marked,
               timeout=15, message=f"worker A did not start two tasks; runs={runs(rec)}")
    sigkill(a)
    running = started_tags(rec)
    assert len(running) == 2, running  # 3 s tasks, 2 slots: nothing else had started
    start(start_worker, "-c", "20", pool="threads", hostname="b@%h")
    wait_results(results.values(), timeout=40)
    return results, running


@pytest.mark.timeout(90)
def test_sigkill_early_ack_running_tasks_fail_as_lost_others_run_once(
        start_worker, client, rec, broker):
    results, running = _kill_mid_stream(start_worker, client, rec, broker, "slow", 2)

    for tag in running:
        r = results[tag]
        assert r.status == "FAILURE", (tag, r.status, r.result)
        assert isinstance(r.result, WorkerLostError), repr(r.result)
        with pytest.raises(WorkerLostError):
            r.get(timeout=1)
    for tag, r in results.items():
        if tag not in running:
            assert r.status == "SUCCESS", (tag, r.status, r.result)
            assert r.get(timeout=1) == tag

    wait_until(lambda: broker_idle(broker), timeout=10,
               message=f"messages left behind: {describe_broker(broker)}")
    counts = Counter(runs(rec))
    for tag in results:
        if tag in running:  # at most once: started in A, never run again
            assert (counts[f"start:{tag}"], counts[f"end:{tag}"]) == (1, 0), tag
        else:
            assert (counts[f"start:{tag}"], counts[f"end:{tag}"]) == (1, 1), tag


@pytest.mark.parametrize("before", [0, 6], ids=["alone", "after-a-full-fetch"])
@pytest.mark.timeout(60)
def test_sigkill_of_a_solo_node_its_started_task_fails_as_lost_others_run_once(
        start_worker, client, rec, broker, before):
    """A solo node records a start with its next write, within milliseconds even while
    the task runs on (also when it is the last of a full fetch, and the node's next fetch
    is on its way meanwhile): once it is in Redis, the task is never run again."""
    quick = [client.send_task(TASK("record"), args=[f"q{i}"]) for i in range(before)]
    slow = client.send_task(TASK("slow"), args=["slow", 4])
    rest = [client.send_task(TASK("record"), args=[f"r{i}"]) for i in range(2)]
    a = start(start_worker, pool="solo", hostname="solo-a@%h")
    wait_until(lambda: "start:slow" in runs(rec) and broker.hlen(started_hash()) == 1,
               timeout=15, message=f"no start recorded in Redis; runs={runs(rec)}")
    sigkill(a)
    start(start_worker, pool="solo", hostname="solo-b@%h")
    wait_results([*quick, slow, *rest], timeout=30)
    assert isinstance(slow.result, WorkerLostError), (slow.status, slow.result)
    assert [r.status for r in [*quick, *rest]] == ["SUCCESS"] * (before + 2)
    counts = Counter(runs(rec))
    assert (counts["start:slow"], counts["end:slow"]) == (1, 0)
    assert all(counts[f"q{i}"] == 1 for i in range(before)), counts
    assert all(counts[f"r{i}"] == 1 for i in range(2)), counts
    wait_until(lambda: broker_idle(broker), timeout=10,
               message=f"messages left behind: {describe_broker(broker)}")


@pytest.mark.timeout(90)
def test_sigkill_acks_late_every_task_succeeds(start_worker, client, rec, broker):
    results, running = _kill_mid_stream(start_worker, client, rec, broker, "slow_late", 0)

    for tag, r in results.items():
        assert r.status == "SUCCESS", (tag, r.status, r.result)
        assert r.get(timeout=1) == tag
    wait_until(lambda: broker_idle(broker), timeout=10,
               message=f"messages left behind: {describe_broker(broker)}")
    counts = Counter(runs(rec))
    for tag in results:
        # the two that were running when A died: started there, run again to the end in B
        starts = 2 if tag in running else 1
        assert (counts[f"start:{tag}"], counts[f"end:{tag}"]) == (starts, 1), tag


@pytest.mark.timeout(60)
def test_countdown_survives_sigkill_and_runs_once_when_due(start_worker, client, rec, broker):
    a = start(start_worker, hostname="cd1@%h")
    before = time.time()
    r = client.send_task(TASK("record"), args=["cd"], countdown=4)
    assert broker.zcard(delayed()) == 1  # it waits in Redis, not in the worker
    sigkill(a)
    assert time.time() < before + 4, "the worker was not killed before the task was due"
    start(start_worker, hostname="cd2@%h")

    ran_at = r.get(timeout=20)
    assert ran_at >= before + 4, f"ran {before + 4 - ran_at:.3f}s before it was due"
    wait_until(lambda: broker_idle(broker), timeout=10,
               message=f"messages left behind: {describe_broker(broker)}")
    assert runs(rec) == ["cd"]


@pytest.mark.timeout(60)
def test_long_task_is_not_redelivered_after_visibility_timeout(
        start_worker, client, rec, broker):
    env = {"SYSQ_VISIBILITY_TIMEOUT": "2"}
    workers = [start(start_worker, hostname=f"v{i}@%h", env=env, wait_ready=False)
               for i in (1, 2)]
    for w in workers:
        w.wait_for_log("ready", timeout=20)

    r = client.send_task(TASK("slow"), args=["long", 6])
    assert r.get(timeout=20) == "long"
    assert Counter(runs(rec)) == {"start:long": 1, "end:long": 1}
    time.sleep(3)  # a redelivery after the 2 s "visibility timeout" would show by now
    assert Counter(runs(rec)) == {"start:long": 1, "end:long": 1}
    assert broker_idle(broker), describe_broker(broker)
    assert all(w.alive for w in workers)


@pytest.mark.timeout(60)
def test_retry_countdown_survives_sigkill(start_worker, client, rec, broker):
    a = start(start_worker, hostname="fl1@%h")
    r = client.send_task(TASK("flaky"), args=["fl", 2])
    wait_until(lambda: runs(rec) == ["fl"] and broker.zcard(delayed()) == 1, timeout=10,
               message=f"first retry not scheduled: runs={runs(rec)} {describe_broker(broker)}")
    sigkill(a)
    assert runs(rec) == ["fl"] and broker.zcard(delayed()) == 1, \
        "the retry was not waiting in Redis when the worker died"
    assert r.status == "RETRY"

    start(start_worker, hostname="fl2@%h")
    assert r.get(timeout=20) == 2
    assert r.status == "SUCCESS"
    assert r.retries == 2
    wait_until(lambda: broker_idle(broker), timeout=10,
               message=f"messages left behind: {describe_broker(broker)}")
    assert runs(rec) == ["fl", "fl", "fl"]


@pytest.mark.timeout(60)
def test_warm_shutdown_finishes_running_task_and_hands_back_prefetched(
        start_worker, client, rec, broker):
    slow = client.send_task(TASK("slow"), args=["w", 2])
    rest = [client.send_task(TASK("record"), args=[f"p{i}"]) for i in range(3)]
    w = start(start_worker, "--prefetch-multiplier", "4", hostname="warm@%h")
    wait_until(lambda: "start:w" in runs(rec), timeout=10)
    held = pending_by_consumer(broker)
    assert len(held) == 1 and list(held.values()) == [4], held
    assert list(held)[0].startswith("warm@")

    w.send_signal(signal.SIGTERM)
    assert w.wait(timeout=15) == 0
    # right after exit: the running task completed, the three prefetched ones are back
    assert slow.status == "SUCCESS"
    assert pending_total(broker) == 0, describe_broker(broker)
    assert stream_total(broker) == 3, describe_broker(broker)
    assert runs(rec) == ["start:w", "end:w"]

    x = start(start_worker, hostname="next@%h")
    began = time.monotonic()
    wait_results(rest, timeout=3)  # far below the 5 s liveness timeout
    assert time.monotonic() - began < 3
    assert [r.status for r in rest] == ["SUCCESS"] * 3
    assert sorted(runs(rec)) == ["end:w", "p0", "p1", "p2", "start:w"]
    assert x.alive
