"""What the system tests of the green pools share (test_gevent_pool.py,
test_eventlet_pool.py): nodes of apps/sysq_green.py, started from the command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT, WorkerProcess, wait_until
from sysq_node_support import recorded, records

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
#: On PYTHONPATH, hides eventlet from a node (apps/without_eventlet/sitecustomize.py).
WITHOUT_EVENTLET = APPS / "without_eventlet"
TASK = "sysq_green.{}".format
ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def start(start_worker, pool, *args, **options):
    """``python -m multiq -A sysq_green worker -P <pool> *args``."""
    env = dict(ENV)
    env.update(options.pop("env", None) or {})
    options.setdefault("pool", pool)
    return start_worker("sysq_green", *args, cwd=APPS, env=env, **options)


def started(rec, tag, n=1, timeout=10.0):
    return wait_until(lambda: len(recorded(rec, tag)) >= n, timeout=timeout,
                      message=f"{tag} did not start {n} times: {records(rec)}")


def pending(broker):
    """Messages of the default queue held by some consumer, and messages ready in it."""
    held = ready = 0
    for band in range(10):
        name = f"multiq:q:{{multiq}}:{band}"
        if broker.exists(name):
            ready += int(broker.xlen(name))
            try:
                held += int(broker.xpending(name, "multiq")["pending"])
            except Exception:  # no group
                pass
    return held, ready


def node_without_pool_option(process_tracker, worker_env, tmp_path, *args, env=None,
                             paths=()):
    """``python -m multiq -A sysq_green worker`` with no ``-P`` (unless in ``args``);
    ``paths`` go first on its PYTHONPATH."""
    full = dict(worker_env)
    full.update(ENV)
    full.update(env or {})
    full["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(APPS), str(REPO_ROOT)])
    argv = [sys.executable, "-m", "multiq", "-A", "sysq_green", "worker", "-l", "info",
            "-n", "conf@%h", *args]
    log_path = tmp_path / "conf-node.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=str(APPS), env=full, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    process_tracker.track(proc)
    return WorkerProcess(proc, log_path, argv)
