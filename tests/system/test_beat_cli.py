"""``multiq beat`` on the command line: ``--detach --pidfile --logfile`` (the launcher returns
0 once beat runs; the pid file is held while it lives and removed on TERM), ``-s`` accepted
for compatibility, and the ``ExecStart`` of ``systemd/multiq-beat.service`` run as systemd
would run it.

The daemon's pid (from its pid file) is registered with ``process_tracker``; nothing else
is ever signalled.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import REPO_ROOT, wait_until  # noqa: E402
from sysq_beat_support import (  # noqa: E402
    LEADS,
    STARTING,
    beat_cmd,
    beat_env,
    records,
    sending_lines,
)

pytestmark = pytest.mark.system

LOCK = "multiq:beat:lock"
UNIT = REPO_ROOT / "systemd" / "multiq-beat.service"


@pytest.fixture
def env(worker_env):
    return beat_env(worker_env)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(45)
def test_detach_pidfile_logfile_and_schedule_option(env, rec, redis_client, tmp_path,
                                                    process_tracker):
    pidfile = tmp_path / "run" / "beat.pid"
    logfile = tmp_path / "log" / "beat.log"
    argv = beat_cmd("--detach", "--pidfile", str(pidfile), "--logfile", str(logfile),
                    "-l", "info", "--max-interval", "1", "-s", "celerybeat-schedule")
    done = subprocess.run(argv, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    text = _read(pidfile)
    pid = int(text) if text.strip().isdigit() else None
    if pid is not None:
        process_tracker.track(pid)
    assert done.returncode == 0, (done.stdout, done.stderr, _read(logfile)[-2000:])
    assert pid is not None and text == f"{pid}\n", text
    assert _alive(pid) and pid != os.getpid()
    assert psutil.Process(pid).ppid() != os.getpid()  # really detached

    # the launcher returned once beat ran: it has started and leads
    log = _read(logfile)
    assert "multiq beat v" in log and STARTING in log and LEADS in log, log
    assert f". logfile -> {logfile}@%INFO" in log, log
    wait_until(lambda: sending_lines(_read(logfile)) >= 2, timeout=10,
               message=f"no task sent:\n{_read(logfile)[-2000:]}")

    # a second beat on the same pid file refuses to start (and the first is untouched)
    again = subprocess.run(argv, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 73, (again.returncode, again.stdout, again.stderr)
    assert _read(pidfile) == f"{pid}\n" and _alive(pid)

    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _alive(pid), timeout=10, message="beat did not exit on TERM")
    assert not pidfile.exists(), "TERM did not remove the pid file"
    assert redis_client.exists(LOCK) == 0  # the lease was released
    # a log line per task sent
    assert sending_lines(_read(logfile)) == len(records(rec, "sent")) >= 2
    assert [p for _t, p in records(rec, "sent")] == [pid] * len(records(rec, "sent"))
    # -s is accepted and ignored: the state is in Redis, not in a file
    assert not list(tmp_path.glob("celerybeat-schedule*"))
    assert redis_client.hexists("multiq:beat:last", "tick")


def _exec_start(unit: Path) -> list:
    """``ExecStart=`` of a unit, continuation lines joined as systemd does, as argv."""
    joined, pending = [], ""
    for raw in unit.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        joined.append(line)
    [value] = [line[len("ExecStart="):] for line in joined if line.startswith("ExecStart=")]
    return shlex.split(value)


@pytest.mark.timeout(40)
def test_systemd_unit_exec_start_runs_beat_as_the_main_process(env, rec, redis_client,
                                                               tmp_path, process_tracker):
    """What ``multiq-beat.service`` starts (with the variables of /etc/conf.d/multiq):
    beat in the foreground as the service's main process (exec), writing its pid file and
    log file, sending tasks, and exiting 0 with its pid file removed on systemd's TERM."""
    argv = _exec_start(UNIT)
    assert argv[:2] == ["/bin/sh", "-c"], argv
    (tmp_path / "run").mkdir()  # made by multiq.tmpfiles on a real system
    pidfile = tmp_path / "run" / "beat.pid"
    logfile = tmp_path / "log" / "beat.log"
    unit_env = dict(env, MULTIQ_BIN=f"{sys.executable} -m multiq", MULTIQ_APP="sysq_beat",
                    MULTIQ_BEAT_PID_FILE=str(pidfile), MULTIQ_BEAT_LOG_FILE=str(logfile),
                    MULTIQ_LOG_LEVEL="INFO")
    proc = subprocess.Popen(argv, env=unit_env, cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    process_tracker.track(proc)
    wait_until(lambda: _read(pidfile) == f"{proc.pid}\n", timeout=15,
               message=f"pid file {_read(pidfile)!r}, main pid {proc.pid}; "
                       f"log:\n{_read(logfile)[-2000:]}")
    wait_until(lambda: sending_lines(_read(logfile)) >= 1, timeout=10,
               message=f"no task sent:\n{_read(logfile)[-2000:]}")
    assert LEADS in _read(logfile)

    proc.send_signal(signal.SIGTERM)  # systemctl stop
    assert proc.wait(timeout=10) == 0
    assert not pidfile.exists()
    assert redis_client.exists(LOCK) == 0
    assert {p for _t, p in records(rec, "sent")} == {proc.pid}
    assert [p for _t, p in records(rec, "beat_init")] == [proc.pid]


@pytest.mark.timeout(40)
def test_beat_started_before_redis_waits_for_it(worker_env, tmp_path, process_tracker):
    """Redis not up yet when beat starts (a reboot, a Redis restart): beat keeps trying,
    as the worker does with ``broker_connection_retry_on_startup``, and sends once Redis
    answers; TERM then stops it and removes its pid file."""
    from helpers import find_redis_server, free_port
    from sysq_support import AOFRedis

    port = free_port()
    env = beat_env(worker_env, MULTIQ_BROKER_URL=f"redis://127.0.0.1:{port}/1",
                   MULTIQ_RESULT_BACKEND=f"redis://127.0.0.1:{port}/2")
    pidfile = tmp_path / "beat.pid"
    logfile = tmp_path / "beat.log"
    proc = subprocess.Popen(beat_cmd("-l", "info", "--max-interval", "1", "--pidfile",
                                     str(pidfile), "--logfile", str(logfile)),
                            env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    process_tracker.track(proc)
    server = AOFRedis(find_redis_server(), tmp_path / "redis")
    try:
        try:
            proc.wait(timeout=2)  # about time: it must still be running after a while
        except subprocess.TimeoutExpired:
            pass
        assert proc.poll() is None, (
            f"beat exited with {proc.returncode} while Redis was down; pid file left: "
            f"{pidfile.exists()}\n{proc.stderr.read().decode()[-2000:]}")
        server.port = port
        server.restart()  # now Redis comes up, on the port beat was told about
        wait_until(lambda: sending_lines(_read(logfile)) >= 1, timeout=15,
                   message=f"nothing sent once Redis was up:\n{_read(logfile)[-2000:]}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not pidfile.exists()
    finally:
        server.stop()
        if proc.stderr:
            proc.stderr.close()
