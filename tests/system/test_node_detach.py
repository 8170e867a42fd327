"""Detached nodes (``multiq worker -D --pidfile ... --logfile ...``, SPEC §4 "Daemonizing"):
the launcher returns only once the node is ready, or reports why it could not start; pid
files are ``<pid>\\n`` with mode 0644, held while the node lives, removed at exit, replaced
when stale; HUP restarts a detached node in place.

The launcher is run to its end with ``subprocess.run``; the daemon's pid (from its pid file)
is registered with ``process_tracker`` so teardown stops it.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import free_port, wait_until  # noqa: E402
from sysq_node_support import (  # noqa: E402
    TASK,
    child_pids,
    find_node_processes,
    live,
    multiq_cmd,
    node_env,
    pid_alive,
    read_text,
    run_cli,
    title,
    wait_exit,
)

pytestmark = pytest.mark.system


@pytest.fixture
def client(make_app):
    return make_app("sysq_node_client")


@pytest.fixture
def env(worker_env):
    return node_env(worker_env)


def _name():
    """A node name no other process on this machine has (it shows in process titles)."""
    return f"d{uuid.uuid4().hex[:8]}"


def _detach_args(tmp_path, name, *extra):
    return multiq_cmd(
        "worker", "-P", "prefork", "-c", "2", "-l", "info", "-n", f"{name}@%h", "-D",
        "--pidfile", str(tmp_path / "run" / "%n.pid"),
        "--logfile", str(tmp_path / "log" / "%n%I.log"), *extra)


def _pidfile(tmp_path, name):
    return tmp_path / "run" / f"{name}.pid"


def _launch(tmp_path, env, name, process_tracker, *extra, expect=0):
    """Run the launcher; on success track the daemon and return (completed, pid)."""
    done = run_cli(_detach_args(tmp_path, name, *extra), env=env, cwd=tmp_path)
    pid = None
    text = read_text(_pidfile(tmp_path, name))
    if text.strip().isdigit():
        pid = int(text)
        process_tracker.track(pid)
    assert done.returncode == expect, (
        f"launcher exited {done.returncode}, expected {expect}\nstdout:\n{done.stdout}\n"
        f"stderr:\n{done.stderr}\nlog:\n{read_text(tmp_path / 'log' / f'{name}.log')[-3000:]}")
    return done, pid


def _two_children(pid, exclude=(), timeout=10.0):
    def check():
        kids = child_pids(pid)
        return kids if len(kids) == 2 and not set(kids) & set(exclude) else None
    return wait_until(check, timeout=timeout,
                      message=f"node {pid} does not have 2 new children: {child_pids(pid)}")


# -- 8. detach -------------------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_detach_ready_pidfile_second_start_and_term(tmp_path, env, client, process_tracker):
    name = _name()
    done, pid = _launch(tmp_path, env, name, process_tracker)
    # the launcher returned only once the node consumes: it has said so in its log, and a
    # task sent now is run at once
    main_log = read_text(tmp_path / "log" / f"{name}.log")
    assert re.search(rf"{name}@\S+ ready\.", main_log), main_log[-3000:]
    began = time.monotonic()
    r = client.send_task(TASK("pid"))
    assert r.get(timeout=10) in child_pids(pid)
    assert time.monotonic() - began < 2
    kids = _two_children(pid)

    pidfile = _pidfile(tmp_path, name)
    assert pidfile.read_text() == f"{pid}\n"
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    assert pid_alive(pid)
    node = psutil.Process(pid)
    assert "main" in title(node) and name in title(node), title(node)
    assert pid != os.getpid() and node.ppid() != os.getpid()  # really detached
    assert (tmp_path / "log" / f"{name}.log").exists()
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == [
        f"{name}-1.log", f"{name}-2.log", f"{name}.log"]

    # a second identical start is refused and leaves the running node alone
    again = run_cli(_detach_args(tmp_path, name), env=env, cwd=tmp_path)
    assert again.returncode == 73, (again.returncode, again.stdout, again.stderr)
    assert "already exists" in again.stdout + again.stderr
    assert pidfile.read_text() == f"{pid}\n"
    assert pid_alive(pid) and child_pids(pid) == kids
    assert len(find_node_processes(name)) == 3  # the node and its two children, no more

    # TERM: the node exits, with its children, and removes its pid file
    kid_procs = [psutil.Process(k) for k in kids]
    os.kill(pid, signal.SIGTERM)
    wait_exit(pid, timeout=15)
    wait_until(lambda: not any(live(k) for k in kid_procs), timeout=5)
    wait_until(lambda: not pidfile.exists(), timeout=5,
               message=f"pid file left behind: {read_text(pidfile)!r}")


@pytest.mark.timeout(40)
def test_stale_pidfile_with_dead_pid_is_replaced(tmp_path, env, client, process_tracker):
    name = _name()
    dead = subprocess.Popen(["true"])
    dead.wait()
    pidfile = _pidfile(tmp_path, name)
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{dead.pid}\n")

    _, pid = _launch(tmp_path, env, name, process_tracker)
    assert pid is not None and pid != dead.pid
    assert pidfile.read_text() == f"{pid}\n"
    assert client.send_task(TASK("pid")).get(timeout=10) in _two_children(pid)


@pytest.mark.timeout(40)
def test_stale_pidfile_naming_another_program_is_replaced(
        tmp_path, env, client, process_tracker):
    name = _name()
    other = subprocess.Popen(["sleep", "60"])
    process_tracker.track(other)
    pidfile = _pidfile(tmp_path, name)
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{other.pid}\n")

    _, pid = _launch(tmp_path, env, name, process_tracker)
    assert pid is not None and pid != other.pid
    assert pidfile.read_text() == f"{pid}\n"
    assert other.poll() is None  # the unrelated program was not touched
    assert client.send_task(TASK("pid")).get(timeout=10) in _two_children(pid)


@pytest.mark.timeout(40)
def test_detach_that_cannot_import_the_app_fails(tmp_path, env, process_tracker):
    name = _name()
    args = [sys.executable, "-m", "multiq", "-A", "no_such_module", *_detach_args(
        tmp_path, name)[5:]]
    done = run_cli(args, env=env, cwd=tmp_path)
    for proc in find_node_processes(name):
        process_tracker.track(proc.pid)
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "no_such_module" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not _pidfile(tmp_path, name).exists()
    assert find_node_processes(name) == []


@pytest.mark.timeout(40)
def test_detach_with_unreachable_redis_fails_with_reason(tmp_path, env, process_tracker):
    name = _name()
    closed = f"redis://127.0.0.1:{free_port()}/1"
    bad = dict(env, SYSQ_NODE_BROKER=closed, SYSQ_NODE_NO_RETRY="1")
    del bad["MULTIQ_BROKER_URL"]  # it would win over the app's broker= (as in Celery)
    began = time.monotonic()
    done = run_cli(_detach_args(tmp_path, name), env=bad, cwd=tmp_path)
    for proc in find_node_processes(name):  # a node that did start anyway: stop it at teardown
        process_tracker.track(proc.pid)
    assert time.monotonic() - began < 15
    assert done.returncode not in (0, 73), (done.returncode, done.stdout, done.stderr)
    out = done.stdout + done.stderr
    assert "did not start" in out and "connect" in out.lower(), out
    assert closed.rsplit("/", 1)[0].split("//")[1] in out, out  # names the broker
    wait_until(lambda: find_node_processes(name) == [], timeout=5,
               message=f"a failed node left processes: {find_node_processes(name)}")
    assert not _pidfile(tmp_path, name).exists()


@pytest.mark.timeout(40)
def test_pidfile_held_by_live_node_exits_73(tmp_path, env, process_tracker):
    name = _name()
    _, pid = _launch(tmp_path, env, name, process_tracker)
    done = run_cli(_detach_args(tmp_path, name, "-c", "1"), env=env, cwd=tmp_path)
    assert done.returncode == 73, (done.returncode, done.stdout, done.stderr)
    assert "already exists" in done.stderr
    assert str(pid) in done.stderr
    assert _pidfile(tmp_path, name).read_text() == f"{pid}\n"
    assert pid_alive(pid)


# -- 7. HUP on a detached node -------------------------------------------------------------


@pytest.mark.timeout(40)
def test_hup_restarts_detached_node_in_place(tmp_path, env, client, process_tracker):
    name = _name()
    _, pid = _launch(tmp_path, env, name, process_tracker)
    old = _two_children(pid)
    assert client.send_task(TASK("pid")).get(timeout=10) in old
    pidfile = _pidfile(tmp_path, name)
    log = tmp_path / "log" / f"{name}.log"
    ready_before = read_text(log).count("ready.")

    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: read_text(log).count("ready.") > ready_before, timeout=20,
               message=f"no second 'ready' after HUP:\n{read_text(log)[-3000:]}")
    new = _two_children(pid, exclude=old)
    assert pid_alive(pid)
    wait_until(lambda: read_text(pidfile) == f"{pid}\n", timeout=5,
               message=f"pid file after HUP: {read_text(pidfile)!r}")
    assert not any(pid_alive(k) for k in old)
    assert "main" in title(pid)
    results = [client.send_task(TASK("pid")) for _ in range(4)]
    assert {r.get(timeout=10) for r in results} <= set(new)
