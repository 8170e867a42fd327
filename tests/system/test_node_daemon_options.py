"""Detached nodes honour --workdir, --umask, --uid and --gid (SPEC §4 "Daemonizing")."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_node_support import TASK, multiq_cmd, node_env, read_text, run_cli  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def shared_dir():
    """A directory every user may write to (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="multiq-daemon-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _launch(tmp: Path, env, process_tracker, *extra):
    name = f"o{uuid.uuid4().hex[:8]}"
    args = multiq_cmd("worker", "-P", "prefork", "-c", "1", "-l", "info", "-n", f"{name}@%h",
                      "-D", "--pidfile", str(tmp / "run" / "%n.pid"),
                      "--logfile", str(tmp / "log" / "%n%I.log"), *extra)
    for sub in ("run", "log"):
        (tmp / sub).mkdir(mode=0o777, exist_ok=True)
        (tmp / sub).chmod(0o777)
    done = run_cli(args, env=env, cwd=tmp)
    pidfile = tmp / "run" / f"{name}.pid"
    text = read_text(pidfile)
    pid = int(text) if text.strip().isdigit() else None
    if pid:
        process_tracker.track(pid)
    assert done.returncode == 0, (done.stdout, done.stderr,
                                  read_text(tmp / "log" / f"{name}.log")[-2000:])
    return name, pid


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not psutil.pid_exists(pid) or
               psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, timeout=15,
               message=f"node {pid} did not stop")


@pytest.mark.timeout(40)
def test_workdir_and_umask(shared_dir, worker_env, make_app, process_tracker):
    workdir = shared_dir / "work"
    workdir.mkdir()
    env = node_env(worker_env)
    name, pid = _launch(shared_dir, env, process_tracker, "--workdir", str(workdir),
                        "--umask", "027")
    node = psutil.Process(pid)
    assert node.cwd() == str(workdir)
    child_log = shared_dir / "log" / f"{name}-1.log"  # created by the daemon itself
    wait_until(child_log.exists, timeout=10, message="the pool child made no log file")
    assert stat.S_IMODE(child_log.stat().st_mode) == 0o640
    client = make_app("sysq_node_client")
    assert client.send_task(TASK("pid")).get(timeout=10)
    _stop(pid)


def _others_can_run_python() -> bool:
    """Whether another user can read this interpreter's standard library (not when Python
    lives under root's private home, as in some sandboxes)."""
    path = Path(sysconfig.get_paths()["stdlib"]).resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


@pytest.mark.timeout(40)
@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
@pytest.mark.skipif(not _others_can_run_python(),
                    reason="the interpreter's files are not readable by other users here")
def test_uid_and_gid(shared_dir, worker_env, make_app, process_tracker):
    nobody = pwd.getpwnam("nobody")
    env = node_env(worker_env)
    name, pid = _launch(shared_dir, env, process_tracker, "--uid", "nobody",
                        "--gid", str(nobody.pw_gid), "--workdir", str(shared_dir))
    node = psutil.Process(pid)
    assert node.uids().real == nobody.pw_uid and node.uids().effective == nobody.pw_uid
    assert node.gids().real == nobody.pw_gid
    for kid in node.children():
        assert kid.uids().effective == nobody.pw_uid
    pidfile = shared_dir / "run" / f"{name}.pid"
    assert pidfile.stat().st_uid == nobody.pw_uid
    client = make_app("sysq_node_client")
    assert client.send_task(TASK("pid")).get(timeout=10) in [k.pid for k in node.children()]
    _stop(pid)
    wait_until(lambda: not pidfile.exists(), timeout=10, message="pid file left behind")
