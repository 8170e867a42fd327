"""``multiq multi stop`` / ``stopwait`` / ``kill`` end to end (SPEC §4): stop signals and
returns, stopwait waits for the whole process tree (main and pool children) and removes the
pid files, kill leaves nothing, and ``stopwait --timeout --kill-after`` ends a node stuck in
a long task, whose ``acks_late`` message another node then runs.

Nodes run apps/sysq_multi.py; see apps/sysq_multi_support.py for how commands are run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_multi_support import APP, TASK, Multi, alive, full, tree  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def multi(tmp_path, worker_env, process_tracker):
    return Multi(tmp_path, worker_env, process_tracker)


@pytest.fixture
def client(make_app):
    return make_app("sysq_multi_client")


def _start(multi, *names, concurrency="2"):
    run = multi("start", *names, "-A", APP, "-c", concurrency)
    assert run.returncode == 0, run
    trees = {name: tree(multi.pid(name)) for name in names}
    for name, pids in trees.items():
        assert len(pids) == 1 + int(concurrency), (name, pids)
    return trees


def _busy(client, rec, tag, seconds=60):
    """Send a long ``acks_late`` task and wait until it runs."""
    result = client.send_task(TASK("hold"), args=[tag, seconds])
    wait_until(lambda: rec.get(f"hold:{tag}") == b"1", timeout=10,
               message=f"the {tag} task did not start")
    return result


def _live(pids):
    return [pid for pid in pids if alive(pid)]


@pytest.mark.timeout(60)
def test_stop_sends_term_and_returns_at_once(multi, client, rec):
    trees = _start(multi, "w1")
    pid = trees["w1"][0]
    _busy(client, rec, "busy")  # a warm shutdown now lasts as long as this task

    run = multi("stop", "w1")
    assert run.returncode == 0, run
    assert f"> {full('w1')}: TERM -> {pid}" in run.stdout, run
    assert run.seconds < 10, f"stop waited {run.seconds:.1f}s"
    assert alive(pid), "the node should still be finishing its task (warm shutdown)"

    killed = multi("kill", "w1")
    assert killed.returncode == 0, killed
    assert str(pid) in killed.stdout, killed
    assert _live(trees["w1"]) == [], "kill left processes of the node's tree"
    assert not multi.pidfile("w1").exists()


@pytest.mark.timeout(60)
def test_stop_of_idle_nodes_ends_their_trees_and_removes_pid_files(multi):
    trees = _start(multi, "w1", "w2")
    run = multi("stop", "w1", "w2")
    assert run.returncode == 0, run
    for name, pids in trees.items():
        assert f"> {full(name)}: TERM -> {pids[0]}" in run.stdout, run
    wait_until(lambda: not _live([p for pids in trees.values() for p in pids]), timeout=15,
               message="the nodes did not exit after stop")
    wait_until(lambda: not any(multi.pidfile(n).exists() for n in trees), timeout=5,
               message="the nodes did not remove their pid files")


@pytest.mark.timeout(60)
def test_stopwait_returns_once_whole_trees_are_gone(multi):
    trees = _start(multi, "w1", "w2")
    run = multi("stopwait", "w1", "w2")

    live = _live([p for pids in trees.values() for p in pids])  # right when it returned
    assert run.returncode == 0, run
    assert live == [], f"stopwait returned while {live} still ran"
    for name, pids in trees.items():
        assert f"> {full(name)}: TERM -> {pids[0]}" in run.stdout, run
        assert f"> {full(name)}: OK" in run.stdout, run
        assert not multi.pidfile(name).exists()

    again = multi("stopwait", "w1", "w2")
    assert again.returncode == 0, again
    assert f"> {full('w1')}: DOWN" in again.stdout, again


@pytest.mark.timeout(60)
def test_kill_leaves_no_process_and_no_pid_file(multi):
    trees = _start(multi, "w1", "w2")
    run = multi("kill", "w1", "w2")

    live = _live([p for pids in trees.values() for p in pids])
    assert run.returncode == 0, run
    assert live == [], f"kill returned while {live} still ran"
    for name, pids in trees.items():
        assert str(pids[0]) in run.stdout, run
        assert not multi.pidfile(name).exists()
    status = multi("status", "w1", "w2")
    assert status.returncode != 0
    assert f"> {full('w1')}: DOWN" in status.stdout and f"> {full('w2')}: DOWN" in \
        status.stdout, status


@pytest.mark.timeout(90)
def test_stopwait_timeout_kill_after_kills_a_stuck_node_and_its_task_is_recovered(
        multi, client, rec):
    trees = _start(multi, "w1")
    pid = trees["w1"][0]
    long = _busy(client, rec, "stuck", seconds=60)

    run = multi("stopwait", "w1", "--timeout=1", "--kill-after=5")
    live = _live(trees["w1"])
    assert live == [], f"stopwait returned while {live} still ran"
    assert run.seconds < 1 + 5 + 6, run
    assert f"> {full('w1')}: TERM -> {pid}" in run.stdout, run
    assert f"KILL -> {pid}" in run.stdout, run
    assert not multi.pidfile("w1").exists()

    # acks_late: the message of the killed task goes to the next node, which runs it again
    _start(multi, "w2", concurrency="1")
    assert long.get(timeout=30) == [2, full("w2")]
