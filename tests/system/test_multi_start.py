"""``multiq multi start`` end to end (SPEC §4): readiness when the command returns, pid files,
a second start of a running node, stale pid files, nodes that fail to start, per-child log
files, and the node syntax (counts, per-node options, per-node queues).

Every command runs as ``multiq multi VERB --pidfile=<tmp>/run/%n.pid
--logfile=<tmp>/log/%n%I.log ...`` in tests/system/apps with the test's Redis URLs in
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``; the nodes run apps/sysq_multi.py.
"""
from __future__ import annotations

import re
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_multi_support import (  # noqa: E402
    APP,
    APPS,
    TASK,
    Multi,
    alive,
    children,
    full,
    heartbeats,
    procs_like,
    tree,
)

pytestmark = pytest.mark.system


@pytest.fixture
def multi(tmp_path, worker_env, process_tracker):
    return Multi(tmp_path, worker_env, process_tracker)


@pytest.fixture
def client(make_app):
    return make_app("sysq_multi_client")


def unique(prefix: str) -> str:
    """A node name no other process on this machine has (for process-table checks)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def running_line(name: str, pid: int) -> str:
    return rf"> {re.escape(full(name))}: RUNNING\b.*\bpid {pid}\b"


# -- 1. start: ready when it returns -----------------------------------------------------------


@pytest.mark.timeout(60)
def test_start_two_nodes_prints_ok_and_both_consume_when_it_returns(
        multi, client, redis_client):
    run = multi("start", "w1", "w2", "-A", APP, "-c", "2")
    sent = client.send_task(TASK("where"))  # at once, before anything else
    beats = heartbeats(redis_client)  # as they are right when the command returned

    assert run.returncode == 0, run
    for name in ("w1", "w2"):
        assert f"> {full(name)}: OK" in run.stdout, run
    assert sent.get(timeout=5) in (full("w1"), full("w2"))

    for name in ("w1", "w2"):
        pid = multi.pid(name)
        assert pid is not None, f"{multi.pidfile(name)} does not hold '<pid>\\n'"
        path = multi.pidfile(name)
        assert path.read_text() == f"{pid}\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert alive(pid)
        assert len(children(pid)) == 2, tree(pid)
        # consuming, not merely forked: its heartbeat already said "ready" with this pid
        info = beats.get(full(name))
        assert info is not None, f"no heartbeat of {full(name)} when start returned: {beats}"
        assert info["ready"] is True and info["pid"] == pid, info
        assert info["queues"] == ["multiq"], info

    status = multi("status", "w1", "w2")
    assert status.returncode == 0, status
    for name in ("w1", "w2"):
        assert re.search(running_line(name, multi.pid(name)), status.stdout), status


# -- 2. a second start ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_start_while_running_says_already_running_and_starts_no_second_copy(multi):
    name = unique("dup")
    first = multi("start", name, "-A", APP, "-c", "2")
    assert first.returncode == 0, first
    pid = multi.pid(name)
    before = tree(pid)
    assert len(before) == 3, before
    assert sorted(p.split(":")[0] for p in procs_like(name)) == sorted(map(str, before))

    again = multi("start", name, "-A", APP, "-c", "2")
    assert "already running" in again.output, again
    assert str(pid) in again.output, again
    assert f"> {full(name)}: OK" not in again.stdout, again
    assert multi.pid(name) == pid
    assert tree(pid) == before
    assert sorted(int(p.split(":")[0]) for p in procs_like(name)) == sorted(before), \
        "a second copy of the node was started"

    # the worker itself refuses too (exit 73, "already exists"), whatever calls it
    worker = subprocess.run(
        [sys.executable, "-m", "multiq", "-A", APP, "worker", "--detach", "-c", "1",
         "-n", full(name), f"--pidfile={multi.pidfile(name)}",
         f"--logfile={multi.log_dir}/{name}-again.log"],
        cwd=str(APPS), env=multi.env, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL)
    multi.track()
    assert worker.returncode == 73, (worker.returncode, worker.stdout, worker.stderr)
    assert "already exists" in worker.stderr, worker.stderr
    assert multi.pid(name) == pid
    assert sorted(int(p.split(":")[0]) for p in procs_like(name)) == sorted(before)


# -- 3. stale pid files ------------------------------------------------------------------------


def _stale_owner(kind: str, process_tracker):
    """A pid for a stale pid file, and the live process behind it (None when dead)."""
    if kind == "dead":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        return gone.pid, None
    if kind == "sleep":
        argv = ["sleep", "60"]
    else:  # another program whose command line even looks like our node's
        argv = [sys.executable, "-c", "import time; time.sleep(60)",
                "multiq", "worker:", full("w1"), "main"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    process_tracker.track(proc)
    return proc.pid, proc


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["dead", "sleep", "multiq-lookalike"])
def test_stale_pidfile_is_reported_never_signalled_and_replaced(
        multi, client, process_tracker, kind):
    stale_pid, other = _stale_owner(kind, process_tracker)
    multi.run_dir.mkdir(parents=True)

    def plant():
        multi.pidfile("w1").write_text(f"{stale_pid}\n")

    plant()
    status = multi("status", "w1")
    assert status.returncode != 0, status
    assert f"> {full('w1')}: STALE" in status.stdout, status

    for verb in ("stop", "stopwait", "kill"):
        plant()
        run = multi(verb, "w1")
        assert f"> {full('w1')}: DOWN" in run.stdout, run
        assert "TERM ->" not in run.stdout and "KILL" not in run.stdout, run

    plant()
    run = multi("start", "w1", "-A", APP, "-c", "1")
    assert run.returncode == 0, run
    assert f"> {full('w1')}: OK" in run.stdout, run
    pid = multi.pid("w1")
    assert pid is not None and pid != stale_pid and alive(pid)
    assert client.send_task(TASK("where")).get(timeout=10) == full("w1")

    stop = multi("stopwait", "w1")
    assert stop.returncode == 0, stop
    assert not alive(pid)
    if other is not None:  # never signalled by stop, stopwait, kill or start
        assert other.poll() is None, f"the unrelated process got signal {-other.returncode}"
        other.send_signal(signal.SIGTERM)
        other.wait(timeout=10)


# -- 4. a node that cannot start ---------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("options, missing", [
    pytest.param(["-A", "no_such_module"], "no_such_module", id="app-import"),
    pytest.param(
        ["-A", APP, "-I", "no_such_tasks"], "no_such_tasks", id="task-module-import"),
])
def test_failing_node_is_reported_failed_and_leaves_nothing(multi, options, missing):
    name = unique("bad")
    run = multi("start", name, *options, "-c", "1")

    assert run.returncode != 0, run
    assert f"> {full(name)}: FAILED" in run.stdout, run
    assert missing in run.output, run
    assert "ModuleNotFoundError" in run.output or "Unable to load app" in run.output, run
    assert procs_like(name) == [], "a process of the failed node is left"
    assert not multi.pidfile(name).exists(), \
        f"pid file left behind: {multi.pidfile(name).read_text()!r}"
    status = multi("status", name)
    assert status.returncode != 0, status
    assert f"> {full(name)}: DOWN" in status.stdout, status


@pytest.mark.timeout(60)
def test_start_with_redis_down_says_it_waits_and_stops_the_node_it_gave_up_on(
        multi, tmp_path):
    from helpers import free_port

    name = unique("down")
    multi.env["MULTIQ_BROKER_URL"] = f"redis://127.0.0.1:{free_port()}/1"  # nothing there
    run = multi("start", name, "-A", APP, "-c", "1", "--timeout=3")

    assert run.returncode == 1, run
    lines = run.stdout.splitlines()
    waiting = [i for i, line in enumerate(lines)
               if f"> {full(name)}: waiting for the broker at redis://127.0.0.1:" in line]
    failed = [i for i, line in enumerate(lines) if f"> {full(name)}: FAILED" in line]
    assert waiting and failed and waiting[0] < failed[0], run  # told while it waited
    assert "not ready after 3s" in run.output and "it was stopped" in run.output, run
    assert ".." not in run.output.replace("...", ""), run
    assert procs_like(name) == [], "the node it reported FAILED is still running"
    assert not multi.pidfile(name).exists()
    status = multi("status", name)
    assert f"> {full(name)}: DOWN" in status.stdout, status


# -- 7. one log file per pool process ------------------------------------------------------------


@pytest.mark.timeout(60)
def test_log_file_per_pool_process_from_percent_I_template(multi, client, rec):
    run = multi("start", "w1", "-A", APP, "-c", "2", "-l", "INFO")
    assert run.returncode == 0, run

    assert sorted(p.name for p in multi.log_dir.iterdir()) == ["w1-1.log", "w1-2.log",
                                                                "w1.log"]
    assert f"{full('w1')} ready" in multi.log("w1")
    # two tasks that overlap, so each child runs one and logs it to its own file
    results = [client.send_task(TASK("hold"), args=[f"log{i}", 1]) for i in range(2)]
    assert sorted(r.get(timeout=10)[0] for r in results) == [1, 1]
    for index in (1, 2):
        wait_until(lambda index=index: "succeeded" in multi.log("w1", index), timeout=5,
                   message=f"nothing logged to w1-{index}.log: {multi.log('w1', index)!r}")
        lines = multi.log("w1", index).splitlines()
        assert all(f"ForkPoolWorker-{index}" in line for line in lines if "Task " in line), \
            lines
    assert "succeeded" not in multi.log("w1")
    assert not multi.logfile("w1", 3).exists()


# -- 8. node syntax ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_count_with_per_node_concurrency(multi):
    names = [f"multiq{i}" for i in (1, 2, 3)]
    listed = multi("names", "3")
    assert listed.stdout.split() == [full(n) for n in names], listed

    run = multi("start", "3", "-A", APP, "-c:1", "1", "-c", "2")
    assert run.returncode == 0, run
    for name in names:
        assert f"> {full(name)}: OK" in run.stdout, run
    pids = [multi.pid(n) for n in names]
    assert all(pid is not None and alive(pid) for pid in pids), pids
    assert [len(children(pid)) for pid in pids] == [1, 2, 2], [tree(p) for p in pids]
    assert multi.logfile("multiq1", 1).exists() and not multi.logfile("multiq1", 2).exists()
    assert multi.logfile("multiq2", 2).exists() and multi.logfile("multiq3", 2).exists()


@pytest.mark.timeout(60)
def test_per_node_queue_only_that_node_consumes_it(multi, client, redis_client):
    run = multi("start", "w1", "w2", "-A", APP, "-c", "1", "-Q:w2", "images")
    images = [client.send_task(TASK("where"), queue="images") for _ in range(5)]
    default = [client.send_task(TASK("where")) for _ in range(5)]
    assert run.returncode == 0, run

    assert [r.get(timeout=10) for r in images] == [full("w2")] * 5
    assert [r.get(timeout=10) for r in default] == [full("w1")] * 5
    beats = heartbeats(redis_client)
    assert beats[full("w1")]["queues"] == ["multiq"], beats
    assert beats[full("w2")]["queues"] == ["images"], beats
