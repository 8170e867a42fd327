"""``multiq multi`` with a broker URL that carries a password: the password never reaches
multi's output, the saved command line (``<pidfile>.argv``) or a node's command line
(``ps``); it is kept only in ``<pidfile>.secret``; both files are mode 0600 and go with
the pid file; and a bare ``multi restart`` of such a node still works.

The nodes (apps/sysq_multi.py) use a private redis-server whose default user has a
password; the environment of multi holds no Redis URL, so every URL comes from ``-b`` /
``--result-backend``.
"""
from __future__ import annotations

import os
import secrets
import signal
import stat
import sys
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import RedisServer, find_redis_server, wait_until  # noqa: E402
from sysq_multi_support import APP, TASK, Multi, alive, full, tree  # noqa: E402

from multiq import MultiQ  # noqa: E402

pytestmark = pytest.mark.system

PASSWORD = "pw-" + secrets.token_hex(10)


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(find_redis_server(), tmp_path_factory.mktemp("locked-redis"),
                         args=["--requirepass", PASSWORD], password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def urls(locked_redis: RedisServer) -> Any:
    admin = locked_redis.client()
    admin.flushall()
    admin.close()
    base = f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}"
    return [f"{base}/1", f"{base}/2"]


@pytest.fixture
def multi(tmp_path, worker_env, process_tracker, urls) -> Multi:
    env = dict(worker_env)
    for name in ("MULTIQ_BROKER_URL", "MULTIQ_RESULT_BACKEND"):
        env.pop(name)
    return Multi(tmp_path, env, process_tracker)


@pytest.fixture
def client(urls) -> Iterator[MultiQ]:
    app = MultiQ("sysq_multi_client", broker=urls[0], backend=urls[1], set_as_current=False)
    yield app
    app.close()


def _start(multi: Multi, urls: Any, *names: str, extra: tuple = ()) -> Any:
    run = multi("start", *names, "-A", APP, "-c", "1", "-b", urls[0],
                f"--result-backend={urls[1]}", *extra)
    assert run.returncode == 0, run
    return run


def _argv_file(multi: Multi, name: str) -> Path:
    return multi.run_dir / f"{name}.pid.argv"


def _cmdlines(pid: int) -> str:
    out = []
    for p in tree(pid):
        try:
            out.append(" ".join(psutil.Process(p).cmdline()))
        except psutil.Error:
            continue
    return "\n".join(out)


def _private_and_masked(path: Path) -> None:
    """The saved command line: masked, and it and its secret file are the owner's only."""
    secret = path.with_suffix(".secret")
    for each in (path, secret):
        assert each.exists(), f"no {each}"
        assert stat.S_IMODE(each.stat().st_mode) == 0o600, (each, oct(each.stat().st_mode))
    text = path.read_text()
    assert PASSWORD not in text, text
    assert ":**@" in text, text


def _gone(multi: Multi, name: str) -> bool:
    argv = _argv_file(multi, name)
    return not any(p.exists() for p in (multi.pidfile(name), argv, argv.with_suffix(".secret")))


@pytest.mark.timeout(90)
def test_start_keeps_the_password_off_the_screen_disk_and_process_table(
        multi, urls, client) -> None:
    run = _start(multi, urls, "w1", extra=("--verbose",))
    assert PASSWORD not in run.output, run
    assert "-m multiq" in run.output and ":**@" in run.output, run  # --verbose shows it
    _private_and_masked(_argv_file(multi, "w1"))
    pid = multi.pid("w1")
    assert pid is not None and alive(pid)
    assert PASSWORD not in _cmdlines(pid), "the password is on the node's command line"
    assert PASSWORD not in multi.log("w1")
    assert client.send_task(TASK("where")).get(timeout=20) == full("w1")


@pytest.mark.timeout(60)
def test_show_dry_run_get_and_expand_mask_the_password(multi, urls) -> None:
    options = ["-A", APP, "-b", urls[0], f"--result-backend={urls[1]}",
               "--", f"broker_password={PASSWORD}"]
    for verb, *head in (["show", "w1", "w2"], ["dry-run", "w1", "w2"],
                        ["get", "w1", "w1", "w2"], ["expand", f"%n-{urls[0]}", "w1"]):
        run = multi(verb, *head, *options)
        assert run.returncode == 0, run
        assert PASSWORD not in run.output, run
        assert ":**@127.0.0.1" in run.stdout, run


@pytest.mark.timeout(150)
def test_bare_restart_of_a_node_started_with_a_password(multi, urls, client) -> None:
    _start(multi, urls, "w1")
    before = multi.pid("w1")

    restart = multi("restart", "w1")  # names only: the saved command line
    assert restart.returncode == 0, restart
    assert f"> {full('w1')}: restarted: OK" in restart.stdout, restart
    assert PASSWORD not in restart.output, restart
    after = multi.pid("w1")
    assert after is not None and after != before and alive(after), restart
    assert PASSWORD not in _cmdlines(after)
    _private_and_masked(_argv_file(multi, "w1"))
    assert client.send_task(TASK("where")).get(timeout=20) == full("w1")

    # A node killed outside multi leaves its files: a bare restart still has the secret.
    for p in reversed(tree(after)):
        psutil.Process(p).kill()
    wait_until(lambda: not alive(after), timeout=10, message="the node outlived SIGKILL")
    again = multi("restart", "w1")
    assert again.returncode == 0, again
    assert PASSWORD not in again.output, again
    assert client.send_task(TASK("where")).get(timeout=20) == full("w1")


@pytest.mark.timeout(120)
def test_saved_command_line_goes_with_the_pid_file(multi, urls) -> None:
    _start(multi, urls, "w1", "w2", "w3")
    for name in ("w1", "w2", "w3"):
        _private_and_masked(_argv_file(multi, name))

    stopwait = multi("stopwait", "w1")
    assert stopwait.returncode == 0, stopwait
    assert _gone(multi, "w1")

    kill = multi("kill", "w2")
    assert kill.returncode == 0, kill
    assert _gone(multi, "w2")

    pid = multi.pid("w3")
    stop = multi("stop", "w3")  # TERM, and the node removes its files as it exits
    assert stop.returncode == 0, stop
    wait_until(lambda: not alive(pid), timeout=30, message="w3 did not exit")
    assert _gone(multi, "w3"), "the node left its files behind"


@pytest.mark.timeout(120)
def test_hup_restart_in_place_keeps_the_files_and_logs_no_password(multi, urls, client) -> None:
    _start(multi, urls, "w1", extra=("-l", "INFO"))
    pid = multi.pid("w1")
    ready = multi.log("w1").count("ready.")

    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: multi.log("w1").count("ready.") > ready, timeout=30,
               message=f"no second 'ready' after HUP:\n{multi.log('w1')[-3000:]}")
    log = multi.log("w1")
    assert "Restarting node with" in log, log[-3000:]
    assert PASSWORD not in log
    assert multi.pid("w1") == pid
    _private_and_masked(_argv_file(multi, "w1"))  # the node starts again: its files stay
    assert client.send_task(TASK("where")).get(timeout=20) == full("w1")

    restart = multi("restart", "w1")
    assert restart.returncode == 0, restart
    assert f"> {full('w1')}: restarted: OK" in restart.stdout, restart
