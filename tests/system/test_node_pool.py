"""The prefork pool of a node started from the command line: its children and their titles,
fair dispatch (no task waits behind a long one while a child is idle), replacement after
--max-tasks-per-child / --max-memory-per-child, soft and hard time limits, children killed
mid-task (and what waited behind them), children never outliving their node, --autoscale.

Nodes run ``python -m multiq -A sysq_node worker -P prefork``; tasks that a test watches
record ``<tag>:<what>:<pid>`` in db 3 (see apps/sysq_node.py).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_node_support import (  # noqa: E402
    TASK,
    child_pids,
    deadletters,
    live,
    pid_alive,
    recorded,
    records,
    start_node,
    title,
    wait_results,
)

from multiq.exceptions import (  # noqa: E402
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    WorkerLostError,
)

pytestmark = pytest.mark.system


@pytest.fixture
def client(make_app):
    return make_app("sysq_node_client")


def _wait_children(node, n, timeout=10.0, exclude=()):
    """Wait until the node has exactly ``n`` live children, none of them in ``exclude``."""
    def check():
        pids = child_pids(node.pid)
        return pids if len(pids) == n and not set(pids) & set(exclude) else None
    return wait_until(check, timeout=timeout,
                      message=f"node {node.pid} does not have {n} children (other than "
                              f"{sorted(exclude)}): {child_pids(node.pid)}")


def _no_zombies(node, timeout=5.0):
    """Every child the node lost has been reaped."""
    def check():
        try:
            kids = psutil.Process(node.pid).children()
        except psutil.NoSuchProcess:
            return True
        return not [k for k in kids if not live(k)]
    wait_until(check, timeout=timeout, message=f"node {node.pid} left zombie children")


def _pids_of(client, n, timeout=20.0, **options):
    results = [client.send_task(TASK("pid"), **options) for _ in range(n)]
    return [r.get(timeout=timeout) for r in results]


# -- 1. children -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_prefork_two_children_with_titles_live_across_tasks(start_worker, client):
    node = start_node(start_worker, "-c", "2", hostname="kids@%h")
    kids = _wait_children(node, 2)
    titles = {pid: title(pid) for pid in kids}
    assert any("child 1" in t for t in titles.values()), titles
    assert any("child 2" in t for t in titles.values()), titles
    assert all("kids@" in t for t in titles.values()), titles
    main_title = title(node.pid)
    assert "main" in main_title and "kids@" in main_title, main_title

    pids = _pids_of(client, 20)
    assert set(pids) <= set(kids), (pids, kids)
    assert node.pid not in pids
    assert child_pids(node.pid) == kids  # the same two children, still there


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_node_loads_no_other_pool_s_code(start_worker, client, pool):
    """What a node imports and never runs is memory in every process of it (and start-up
    time): a prefork or solo node loads no green or event-loop pool."""
    start_node(start_worker, "-c", "1", pool=pool, hostname=f"lean-{pool}@%h")
    others = ["multiq.pools.green", "multiq.pools.greenlets", "multiq.pools.eventlets",
              "multiq.pools.eventloop", "multiq.pools.threads", "gevent", "eventlet"]
    if pool == "solo":
        others.append("multiq.pools.selffed")
    loaded = client.send_task(TASK("loaded"), args=(others,)).get(timeout=20)
    assert loaded == []


@pytest.mark.timeout(30)
def test_short_tasks_do_not_wait_behind_a_long_one_while_a_child_is_idle(
        start_worker, client, rec):
    node = start_node(start_worker, "-c", "2")
    _wait_children(node, 2)
    long = client.send_task(TASK("nap"), args=["long", 6])
    (busy,) = wait_until(lambda: recorded(rec, "long"), timeout=10)
    shorts = [client.send_task(TASK("nap"), args=[f"short{i}", 0.5]) for i in range(4)]
    began = time.monotonic()
    wait_results(shorts, timeout=15)
    took = time.monotonic() - began
    # as with Celery's default (fair) scheduling: the other child runs them one by one
    assert [r.status for r in shorts] == ["SUCCESS"] * 4
    assert busy not in {r.result for r in shorts}, [r.result for r in shorts]
    assert took < 4.5, took
    assert not long.ready()
    assert long.get(timeout=10) == busy


# -- 2. replacing children ---------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_max_tasks_per_child_replaces_child_after_three_tasks(start_worker, client):
    node = start_node(start_worker, "-c", "1", "--max-tasks-per-child", "3")
    first = _wait_children(node, 1)
    results = [client.send_task(TASK("pid")) for _ in range(12)]
    wait_results(results, timeout=20)
    failed = [(r.status, repr(r.result)) for r in results if r.status != "SUCCESS"]
    assert not failed, failed  # a child's last task before it is replaced is not lost
    pids = [r.result for r in results]
    counts = Counter(pids)
    assert len(counts) == 4, counts
    assert sorted(counts.values()) == [3, 3, 3, 3], counts
    assert pids[0] == first[0]
    # they ran in order: each child ran three consecutive tasks
    assert [pids[i] for i in (0, 3, 6, 9)] == list(dict.fromkeys(pids)), pids
    _wait_children(node, 1, exclude=pids[:9])
    assert node.alive


@pytest.mark.timeout(40)
def test_retiring_children_never_lose_their_last_task(start_worker, client):
    node = start_node(start_worker, "-c", "2", "--max-tasks-per-child", "1")
    _wait_children(node, 2)
    results = [client.send_task(TASK("pid")) for _ in range(200)]
    deadline = time.monotonic() + 25
    while not all(r.ready() for r in results) and node.alive \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = [(r.status, repr(r.result)) for r in results if r.status != "SUCCESS"]
    assert not failed and node.alive, (
        f"node alive: {node.alive}; {len(failed)} of 200 tasks did not succeed, e.g. "
        f"{failed[:3]}; node output:\n{node.log()[-1500:]}")
    pids = [r.result for r in results]
    assert len(set(pids)) == 200  # one child per task
    assert node.alive
    _wait_children(node, 2)


def _rss_kib(pid):
    return psutil.Process(pid).memory_info().rss // 1024


@pytest.mark.timeout(40)
def test_max_memory_per_child_replaces_child_after_big_task(start_worker, client):
    # Without the option: a child that grows by 60 MB is kept.
    plain = start_node(start_worker, "-c", "1", "-Q", "plain", hostname="plain@%h")
    (kid,) = _wait_children(plain, 1)
    assert client.send_task(TASK("pid"), queue="plain").get(timeout=10) == kid
    baseline = _rss_kib(kid)
    assert client.send_task(TASK("hog"), args=[60], queue="plain").get(timeout=20) == kid
    assert _rss_kib(kid) > baseline + 50 * 1024
    assert client.send_task(TASK("pid"), queue="plain").get(timeout=10) == kid
    assert child_pids(plain.pid) == [kid]

    # With a limit 30 MB above what a fresh child holds: small tasks keep the child, the
    # 60 MB task is the last one it runs.
    limit = baseline + 30 * 1024
    node = start_node(start_worker, "-c", "1", "-Q", "limited", "--max-memory-per-child",
                      str(limit), hostname="limited@%h")
    (first,) = _wait_children(node, 1)
    assert _pids_of(client, 3, queue="limited") == [first] * 3
    assert client.send_task(TASK("hog"), args=[60], queue="limited").get(timeout=20) == first
    after = client.send_task(TASK("pid"), queue="limited").get(timeout=20)
    assert after != first
    assert not pid_alive(first) or first not in child_pids(node.pid)
    assert child_pids(node.pid) == [after]
    assert _pids_of(client, 2, queue="limited") == [after] * 2


# -- 3. time limits ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_soft_time_limit_from_worker_and_per_task(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2", "--soft-time-limit", "1")
    kids = _wait_children(node, 2)

    began = time.monotonic()
    r = client.send_task(TASK("soft_nap"), args=["s1", 5])
    assert r.get(timeout=10) == "soft"
    took = time.monotonic() - began
    assert 0.9 <= took < 2.5, took

    # the task's own soft_time_limit=3 overrides the worker's 1 s
    began = time.monotonic()
    r = client.send_task(TASK("soft_nap3"), args=["s3", 6])
    assert r.get(timeout=10) == "soft"
    took = time.monotonic() - began
    assert 2.9 <= took < 4.5, took

    # and so does soft_time_limit= given when sending
    began = time.monotonic()
    r = client.send_task(TASK("soft_nap"), args=["s2", 6], soft_time_limit=2)
    assert r.get(timeout=10) == "soft"
    took = time.monotonic() - began
    assert 1.9 <= took < 3.5, took

    # a task that does not catch it fails with SoftTimeLimitExceeded
    r = client.send_task(TASK("nap"), args=["s4", 5])
    wait_results([r], timeout=10)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, SoftTimeLimitExceeded), repr(r.result)

    assert [x.rsplit(":", 1)[0] for x in records(rec)] == [
        "s1:start", "s1:soft", "s3:start", "s3:soft", "s2:start", "s2:soft", "s4:start"]
    # a soft limit does not cost the child its life
    assert child_pids(node.pid) == kids


@pytest.mark.timeout(30)
def test_hard_time_limit_kills_and_replaces_the_child(start_worker, client, rec):
    node = start_node(start_worker, "-c", "1", "--time-limit", "1")
    (kid,) = _wait_children(node, 1)

    began = time.monotonic()
    r = client.send_task(TASK("nap"), args=["hard", 5])
    behind = [client.send_task(TASK("pid")) for _ in range(3)]  # waiting for the one child
    wait_results([r], timeout=10)
    took = time.monotonic() - began
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, TimeLimitExceeded), repr(r.result)
    with pytest.raises(TimeLimitExceeded):
        r.get(timeout=1)
    assert took < 3.5, took
    assert recorded(rec, "hard") == [kid]
    assert recorded(rec, "hard", "end") == []

    (new,) = _wait_children(node, 1, exclude=[kid])
    assert not pid_alive(kid)
    # what waited behind the killed task runs in the new child
    assert [b.get(timeout=10) for b in behind] == [new] * 3
    assert client.send_task(TASK("pid")).get(timeout=10) == new
    assert node.alive
    _no_zombies(node)


@pytest.mark.timeout(30)
def test_hard_time_limit_given_when_sending(start_worker, client, rec):
    node = start_node(start_worker, "-c", "1")
    (kid,) = _wait_children(node, 1)
    began = time.monotonic()
    r = client.send_task(TASK("nap"), args=["call", 5], time_limit=1)
    wait_results([r], timeout=10)
    assert time.monotonic() - began < 3.5
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, TimeLimitExceeded), repr(r.result)
    (new,) = _wait_children(node, 1, exclude=[kid])
    # without a limit the same task runs to its end
    assert client.send_task(TASK("nap"), args=["free", 1.5]).get(timeout=10) == new


# -- 4. children lost mid-task -----------------------------------------------------------------


@pytest.mark.timeout(40)
def test_child_killed_mid_task_fails_worker_lost_and_is_replaced(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2")
    kids = _wait_children(node, 2)

    # the test kills the child that runs the task
    r = client.send_task(TASK("nap"), args=["victim", 30])
    (victim,) = wait_until(lambda: recorded(rec, "victim"), timeout=10)
    assert victim in kids
    os.kill(victim, signal.SIGKILL)
    wait_results([r], timeout=10)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, WorkerLostError), repr(r.result)
    assert "signal 9" in str(r.result) and "SIGKILL" in str(r.result), str(r.result)
    with pytest.raises(WorkerLostError):
        r.get(timeout=1)
    now = _wait_children(node, 2, exclude=[victim])

    # the task kills its own process
    r = client.send_task(TASK("suicide"), args=["self"])
    wait_results([r], timeout=10)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, WorkerLostError), repr(r.result)
    (gone,) = recorded(rec, "self")
    assert gone in now
    after = _wait_children(node, 2, exclude=[victim, gone])

    pids = _pids_of(client, 6)
    assert set(pids) <= set(after), (pids, after)
    assert node.alive
    _no_zombies(node)


@pytest.mark.timeout(30)
def test_tasks_waiting_behind_a_killed_task_are_not_lost(start_worker, client, rec):
    node = start_node(start_worker, "-c", "1")
    (kid,) = _wait_children(node, 1)
    r = client.send_task(TASK("nap"), args=["victim", 30])
    behind = [client.send_task(TASK("nap"), args=[f"b{i}", 0]) for i in range(3)]
    wait_until(lambda: recorded(rec, "victim"), timeout=10)
    time.sleep(0.3)  # let the node take the others too (it prefetches)
    os.kill(kid, signal.SIGKILL)
    wait_results([r, *behind], timeout=15)
    assert r.status == "FAILURE" and isinstance(r.result, WorkerLostError), repr(r.result)
    (new,) = _wait_children(node, 1, exclude=[kid])
    assert [b.status for b in behind] == ["SUCCESS"] * 3, [repr(b.result) for b in behind]
    assert [b.result for b in behind] == [new] * 3
    for i in range(3):  # each ran once, in the new child
        assert recorded(rec, f"b{i}") == [new], records(rec)
    assert recorded(rec, "victim") == [kid]


@pytest.mark.timeout(40)
def test_reject_on_worker_lost_goes_to_dead_letter_after_bounded_deliveries(
        start_worker, client, rec, redis_client):
    node = start_node(start_worker, "-c", "2")
    _wait_children(node, 2)
    r = client.send_task(TASK("suicide_late"), args=["loop"])

    wait_until(lambda: deadletters(redis_client), timeout=20,
               message=f"not dead-lettered; deliveries so far: {recorded(rec, 'loop')}")
    (entry,) = deadletters(redis_client)
    assert r.id.encode() in entry["m"]
    assert "5" in entry["reason"] and "deliver" in entry["reason"], entry["reason"]
    time.sleep(0.5)  # a sixth delivery would show by now
    assert len(recorded(rec, "loop")) == 5, records(rec)

    _wait_children(node, 2)
    assert set(_pids_of(client, 4)) <= set(child_pids(node.pid))
    assert node.alive
    assert len(deadletters(redis_client)) == 1


# -- 5. children never outlive their node ------------------------------------------------------


@pytest.mark.timeout(45)
def test_children_die_with_their_node_and_late_ack_task_is_redone(start_worker, client, rec):
    node = start_node(start_worker, "-c", "2", hostname="doomed@%h")
    kids = [psutil.Process(p) for p in _wait_children(node, 2)]
    r = client.send_task(TASK("nap_late"), args=["orphan", 3])
    wait_until(lambda: recorded(rec, "orphan"), timeout=10)

    os.kill(node.pid, signal.SIGKILL)
    node.wait(timeout=10)
    wait_until(lambda: not any(live(k) for k in kids), timeout=5,
               message=f"children outlived their node: {[k.pid for k in kids if live(k)]}")
    assert recorded(rec, "orphan", "end") == []

    heir = start_node(start_worker, "-c", "2", hostname="heir@%h")
    heirs = _wait_children(heir, 2)
    assert r.get(timeout=25) in heirs
    assert r.status == "SUCCESS"
    assert len(recorded(rec, "orphan")) == 2
    assert len(recorded(rec, "orphan", "end")) == 1


@pytest.mark.timeout(30)
def test_replacement_children_die_with_their_node_too(start_worker, client):
    # replacements are forked by the pool's reader thread, not by the main thread
    node = start_node(start_worker, "-c", "2", "--max-tasks-per-child", "1")
    first = _wait_children(node, 2)
    # (whether these succeed is test_retiring_children_never_lose_their_last_task's business)
    wait_results([client.send_task(TASK("pid")) for _ in range(4)], timeout=20)
    kids = [psutil.Process(p) for p in _wait_children(node, 2, exclude=first)]

    os.kill(node.pid, signal.SIGKILL)
    node.wait(timeout=10)
    wait_until(lambda: not any(live(k) for k in kids), timeout=5,
               message=f"children outlived their node: {[k.pid for k in kids if live(k)]}")


# -- 9. autoscale ------------------------------------------------------------------------------


@pytest.mark.timeout(75)
def test_autoscale_grows_under_backlog_and_shrinks_when_idle(start_worker, client):
    node = start_node(start_worker, "--autoscale", "3,1")
    (first,) = _wait_children(node, 1)
    time.sleep(1.5)  # an idle node stays at its minimum (the autoscaler ticks every second)
    assert child_pids(node.pid) == [first]

    results = [client.send_task(TASK("nap"), args=[f"a{i}", 1.5]) for i in range(6)]
    grown = wait_until(lambda: len(child_pids(node.pid)) == 3 and child_pids(node.pid),
                       timeout=8, message=f"the pool did not grow: {child_pids(node.pid)}")
    assert first in grown
    wait_results(results, timeout=30)
    assert all(r.status == "SUCCESS" for r in results)
    assert len(set(r.result for r in results)) >= 2  # the work was shared
    assert len(child_pids(node.pid)) <= 3

    wait_until(lambda: len(child_pids(node.pid)) == 1, timeout=35,
               message=f"the pool did not shrink back: {child_pids(node.pid)}")
    time.sleep(1.5)
    assert len(child_pids(node.pid)) == 1  # never below the minimum
    _no_zombies(node)
    assert client.send_task(TASK("pid")).get(timeout=10) in child_pids(node.pid)


# -- 5. the solo pool ----------------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_solo_stores_results_while_a_later_task_runs_and_loses_nothing(
        start_worker, client, rec):
    """A solo node sends its next fetch while the last task on hand runs; the results of
    the tasks before it are stored then, not after the long task, and every task runs."""
    quick = [client.send_task(TASK("pid")) for _ in range(4)]
    long = client.send_task(TASK("nap"), args=["long", 5])
    after = [client.send_task(TASK("pid")) for _ in range(6)]
    node = start_node(start_worker, pool="solo")
    wait_until(lambda: recorded(rec, "long", "start"), timeout=15,
               message="the long task did not start")
    wait_results(quick, timeout=3)  # during the long task
    assert [r.result for r in quick] == [node.pid] * 4
    assert not long.ready() and not any(r.ready() for r in after)
    assert long.get(timeout=15) == node.pid
    wait_results(after, timeout=10)
    assert [r.result for r in after] == [node.pid] * 6
