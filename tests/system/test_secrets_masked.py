"""A broker URL whose query carries a secret (``?sentinel_password=…``) is masked wherever
multiq shows it: the worker's start-up banner and log, ``inspect stats`` (its ``broker``
URL), ``inspect conf`` and ``multiq report``.

A private master and one sentinel that wants a password; the node (apps/sysq_acl.py)
finds the master through the sentinel, so the URL really is used, not only printed.
"""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import RedisServer, find_redis_server, free_port, wait_until  # noqa: E402
from sysq_control_support import APPS, env_for, node  # noqa: E402

pytestmark = pytest.mark.system

SENTINEL_PASSWORD = "sentinel-" + secrets.token_hex(10)


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    master = RedisServer(find_redis_server(), tmp_path / "master")
    master.start()
    directory = tmp_path / "sentinel"
    directory.mkdir()
    port = free_port()
    conf = directory / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                    f"requirepass {SENTINEL_PASSWORD}\n")
    with open(directory / "sentinel.log", "ab") as log:
        sentinel = subprocess.Popen([find_redis_server(), str(conf), "--sentinel"],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
    watcher = redis.Redis(port=port, password=SENTINEL_PASSWORD, socket_timeout=2)
    try:
        def names_master() -> Any:
            try:
                return watcher.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                               "mymaster")
            except redis.ConnectionError:
                return None

        wait_until(names_master, timeout=20, message="the sentinel does not name the master")
        yield (f"redis+sentinel://127.0.0.1:{port}/1?master=mymaster"
               f"&sentinel_password={SENTINEL_PASSWORD}")
    finally:
        watcher.close()
        sentinel.terminate()
        try:
            sentinel.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sentinel.kill()
            sentinel.wait(timeout=5)
        master.stop()


def _cli(env: Any, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "multiq", "-A", "sysq_acl", *args], env=env,
                          cwd=str(APPS), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.timeout(120)
def test_sentinel_password_is_masked_in_banner_stats_conf_and_report(
        sentinel_url: str, start_worker: Any) -> None:
    backend = sentinel_url.replace("/1?", "/2?")
    env = env_for(sentinel_url, backend)
    worker = start_worker("sysq_acl", cwd=APPS, env={"MULTIQ_BROKER_URL": sentinel_url,
                                                     "MULTIQ_RESULT_BACKEND": backend},
                          hostname="masked@%h")
    banner = worker.log()
    assert "transport:   redis+sentinel://127.0.0.1:" in banner, banner
    assert "sentinel_password=**" in banner, banner

    stats = _cli(env, "inspect", "stats", "-j", "-d", node("masked"))
    assert stats.returncode == 0, stats
    reply = json.loads(stats.stdout.strip().splitlines()[-1])
    assert "sentinel_password=**" in reply[node("masked")]["broker"]["url"], stats.stdout
    conf = _cli(env, "inspect", "conf", "-j", "-d", node("masked"))
    assert conf.returncode == 0, conf
    assert "sentinel_password=**" in conf.stdout, conf.stdout
    report = _cli(env, "report")
    assert report.returncode == 0, report
    assert "sentinel_password=**" in report.stdout, report.stdout

    for shown in (banner, worker.log(), stats.stdout + stats.stderr, conf.stdout + conf.stderr,
                  report.stdout + report.stderr):
        assert SENTINEL_PASSWORD not in shown, shown
