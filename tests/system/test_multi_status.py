"""``multiq multi status`` (SPEC §4): RUNNING with pid, STALE for a pid file whose node died,
DOWN without a pid file; exit 0 only when every node runs. And the wall time of ``start``,
``restart`` and ``stopwait`` for four idle nodes, printed (``pytest -s``) as
``MULTI-TIMING start=..s stopwait=..s restart=..s`` with only generous bounds asserted.

Nodes run apps/sysq_multi.py; see apps/sysq_multi_support.py for how commands are run.
"""
from __future__ import annotations

import os
import re
import signal
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


def _line(run, name):
    found = re.search(rf"^\s*> {re.escape(full(name))}: (.*)$", run.stdout, re.M)
    assert found, f"no line for {name}: {run}"
    return found.group(1)


@pytest.mark.timeout(60)
def test_status_running_stale_down_and_exit_code(multi):
    run = multi("start", "w1", "w2", "w3", "-A", APP, "-c", "1")
    assert run.returncode == 0, run
    pids = {n: multi.pid(n) for n in ("w1", "w2", "w3")}

    ok = multi("status", "w1", "w2", "w3")
    assert ok.returncode == 0, ok
    for name, pid in pids.items():
        assert re.match(rf"RUNNING\b.*\bpid {pid}\b", _line(ok, name)), ok

    w2_tree = tree(pids["w2"])
    os.kill(pids["w2"], signal.SIGKILL)  # dies without removing its pid file
    wait_until(lambda: not alive(pids["w2"]), timeout=10)
    stop = multi("stopwait", "w3")
    assert stop.returncode == 0, stop

    mixed = multi("status", "w1", "w2", "w3")
    assert mixed.returncode != 0, mixed
    assert re.match(rf"RUNNING\b.*\bpid {pids['w1']}\b", _line(mixed, "w1")), mixed
    assert _line(mixed, "w2").startswith("STALE"), mixed
    assert str(pids["w2"]) in _line(mixed, "w2"), mixed
    assert str(multi.pidfile("w2")) in _line(mixed, "w2"), mixed
    assert _line(mixed, "w3").startswith("DOWN"), mixed
    assert f"no pid file at {multi.pidfile('w3')}" in _line(mixed, "w3"), mixed

    # without the --pidfile it was started with, status says which file it looked for
    files, multi.files = multi.files, []
    try:
        elsewhere = multi("status", "w1")
    finally:
        multi.files = files
    assert elsewhere.returncode != 0, elsewhere
    assert re.search(r"DOWN\s+not running \(no pid file at /\S+w1\.pid\)",
                     _line(elsewhere, "w1")), elsewhere

    only_w1 = multi("status", "w1")
    assert only_w1.returncode == 0, only_w1
    wait_until(lambda: not any(alive(p) for p in w2_tree), timeout=10,
               message=f"pool children of the killed node outlived it: {w2_tree}")


@pytest.mark.timeout(120)
def test_timing_of_start_restart_stopwait_for_four_idle_nodes(multi, client):
    names = ["w1", "w2", "w3", "w4"]
    options = ["-A", APP, "-c", "2"]

    start = multi("start", *names, *options)
    assert start.returncode == 0, start
    assert all(f"> {full(n)}: OK" in start.stdout for n in names), start
    restart = multi("restart", *names, *options)
    assert restart.returncode == 0, restart
    assert client.send_task(TASK("where")).get(timeout=10) in {full(n) for n in names}
    stopwait = multi("stopwait", *names)
    assert stopwait.returncode == 0, stopwait

    print(f"\nMULTI-TIMING start={start.seconds:.2f}s stopwait={stopwait.seconds:.2f}s "
          f"restart={restart.seconds:.2f}s (4 idle nodes, -c 2)")
    assert start.seconds < 20, start
    assert stopwait.seconds < 10, stopwait
