"""The README's "Redis users and ACLs" section, against a real redis-server: its
``ACL SETUSER`` lines are read from README.rst and run on a private server whose default
user has a password, so every process here works only with the rights the README gives.

- a worker runs as ``multiq-worker`` (solo pool, task events on, beat inside);
- a producer (``multiq-producer``) sends tasks (with a countdown, one that retries, one
  that fails) and gets their results from that worker;
- the monitor (``multiq-monitor``) runs ``inspect ping``, ``status`` and ``events --dump``;
- each is refused something outside its role, and while they do their job the server's
  ``ACL LOG`` stays empty (a refused background command would show there even where
  multiq shrugs it off).
"""
from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import (  # noqa: E402
    REPO_ROOT,
    ProcessTracker,
    RedisServer,
    find_redis_server,
    start_worker_process,
    wait_until,
)
from sysq_control_support import APPS, env_for, node  # noqa: E402

from multiq import MultiQ  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.acl]

ROLES = ("producer", "worker", "monitor")
WORKER = node("acl")


def readme_acl_blocks() -> List[List[str]]:
    """The ``ACL SETUSER`` lines of the README's ACL section, one list per literal block."""
    text = (REPO_ROOT / "README.rst").read_text()
    start = text.index("Redis users and ACLs\n")
    end = text.index("\n---", start + len("Redis users and ACLs\n---"))
    section = text[start:text.rindex("\n", 0, end)]
    blocks: List[List[str]] = []
    for block in section.split("::\n")[1:]:
        literal = re.match(r"(?:[ \t]*\n|[ \t]+\S.*\n)*", block + "\n")
        assert literal is not None
        lines = [line.strip() for line in literal.group().splitlines()
                 if line.strip().startswith("ACL SETUSER")]
        blocks += [lines] if lines else []
    return blocks


def _run_acl_lines(admin: Any, lines: List[str], passwords: Dict[str, str]) -> None:
    for line in lines:
        for role, password in passwords.items():
            line = line.replace(f">{role.upper()}_PASSWORD", f">{password}")
        admin.execute_command(*line.split())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    admin_password = secrets.token_hex(12)
    directory = tmp_path_factory.mktemp("acl-redis")
    redis_server = RedisServer(find_redis_server(), directory,
                               args=["--requirepass", admin_password], password=admin_password)
    redis_server.start()
    admin = redis_server.client()
    passwords = {role: secrets.token_hex(12) for role in ROLES}
    blocks = readme_acl_blocks()
    assert len(blocks) == 2, blocks  # the roles, then the producer's optional rights
    _run_acl_lines(admin, blocks[0], passwords)
    tracker = ProcessTracker()
    state = _Server(redis_server, admin, passwords, blocks, tracker, directory)
    try:
        yield state
    finally:
        tracker.cleanup()
        admin.close()
        state.broker.close()
        redis_server.stop()


class _Server:
    def __init__(self, redis_server: RedisServer, admin: Any, passwords: Dict[str, str],
                 blocks: List[List[str]], tracker: ProcessTracker, directory: Path) -> None:
        self.redis_server, self.admin, self.passwords = redis_server, admin, passwords
        self.broker = redis_server.client(1)  # the administrator, on the broker's db
        self.blocks, self.tracker, self.directory = blocks, tracker, directory

    def url(self, role: str, db: int) -> str:
        port = self.redis_server.port
        return f"redis://multiq-{role}:{self.passwords[role]}@127.0.0.1:{port}/{db}"

    def client(self, role: str, db: int = 1) -> Any:
        return redis.Redis.from_url(self.url(role, db))

    def env(self, role: str) -> Dict[str, str]:
        return env_for(self.url(role, 1), self.url(role, 2))

    def denials(self) -> List[Dict[str, Any]]:
        """``ACL LOG`` entries of the README's users (redis-py's ``CLIENT SETINFO`` greeting
        aside: the README adds it on Redis 7.2+ only, and a refusal there is harmless)."""
        return [entry for entry in self.admin.acl_log()
                if str(entry.get("username", "")).startswith("multiq-")
                and entry.get("object") != "client|setinfo"]


@pytest.fixture(scope="module")
def worker(server: _Server) -> Any:
    node_proc = start_worker_process(
        server.tracker, "sysq_acl", "-E", "-B", cwd=APPS, env=server.env("worker"),
        hostname="acl@%h", wait_ready=False, log_path=server.directory / "worker.log")
    node_proc.wait_for_log("ready", timeout=30)
    return node_proc


@pytest.fixture
def producer(server: _Server) -> Iterator[Any]:
    app = MultiQ("sysq_acl_producer", broker=server.url("producer", 1),
                 backend=server.url("producer", 2), set_as_current=False)
    yield app
    app.close()


@pytest.fixture
def clean_log(server: _Server) -> _Server:
    server.admin.execute_command("ACL", "LOG", "RESET")
    return server


def _monitor(server: _Server, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "multiq", "-A", "sysq_acl", *args]
    return subprocess.run(argv, env=server.env("monitor"), cwd=str(APPS),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(90)
def test_producer_gets_results_from_a_worker_each_with_its_own_user(
        clean_log: _Server, worker: Any, producer: Any) -> None:
    now = producer.send_task("sysq_acl.where")
    later = producer.send_task("sysq_acl.add", args=[2, 3], countdown=0.5)
    retried = producer.send_task("sysq_acl.flaky")
    failed = producer.send_task("sysq_acl.boom")
    assert now.get(timeout=20) == WORKER
    assert later.get(timeout=20) == 5
    assert retried.get(timeout=20) == 2
    with pytest.raises(ValueError):
        failed.get(timeout=20)
    wait_until(lambda: clean_log.broker.hget("multiq:beat:last", "tick"), timeout=20,
               message="beat sent no tick")
    assert clean_log.denials() == []
    for password in clean_log.passwords.values():
        assert password not in worker.log(), "a password reached the worker's log"


@pytest.mark.timeout(90)
def test_monitor_runs_inspect_status_and_events(clean_log: _Server, worker: Any,
                                                producer: Any) -> None:
    ping = _monitor(clean_log, "inspect", "ping")
    assert ping.returncode == 0, ping
    assert f"{WORKER}: OK" in ping.stdout and "pong" in ping.stdout, ping
    status = _monitor(clean_log, "status")
    assert status.returncode == 0, status
    assert f"{WORKER}: OK" in status.stdout, status

    result = producer.send_task("sysq_acl.add", args=[1, 1])
    assert result.get(timeout=20) == 2
    wait_until(lambda: _succeeded(clean_log.broker, result.id), timeout=20,
               message="the worker wrote no task-succeeded event")
    dump = _monitor(clean_log, "events", "--dump", "--from-start", "--timeout", "2")
    assert dump.returncode == 0, dump
    lines = [x for x in dump.stdout.splitlines() if result.id in x]
    assert any("task-succeeded" in x for x in lines), dump
    assert clean_log.denials() == []


@pytest.mark.timeout(60)
def test_monitor_scrapes_the_metrics_the_worker_counts(clean_log: _Server, worker: Any,
                                                       producer: Any) -> None:
    """The worker's counters need only its README rights; the monitor's scrape only
    reads (the queue script runs read-only, sent whole when the server lost it)."""
    from multiq.metrics import scrape

    assert producer.send_task("sysq_acl.add", args=[2, 2]).get(timeout=20) == 4
    clean_log.admin.script_flush()
    monitor = MultiQ("sysq_acl_monitor", broker=clean_log.url("monitor", 1),
                     set_as_current=False)
    try:
        text = wait_until(lambda: (lambda t: 'name="sysq_acl.add",state="SUCCESS"' in t
                                   and t)(scrape(monitor)), timeout=10)
    finally:
        monitor.close()
    assert f'multiq_worker_up{{hostname="{WORKER}"}} 1' in text
    assert 'multiq_queue_length{queue="multiq",band="0"} 0' in text
    assert clean_log.denials() == []


def _succeeded(broker: Any, task_id: str) -> bool:
    entries = broker.xrange("multiq:events")
    return any(task_id.encode() in fields[b"e"] and b"task-succeeded" in fields[b"e"]
               for _, fields in entries)


@pytest.mark.timeout(60)
def test_each_user_is_refused_outside_its_role(server: _Server, worker: Any) -> None:
    stream = "multiq:q:{multiq}:0"
    consumer = next(iter(server.broker.zrange("multiq:nodes", 0, -1)), b"acl").decode()
    producer, node_user, monitor = (server.client(r) for r in ROLES)
    try:
        refused = {
            "producer XREADGROUP": lambda: producer.xreadgroup(
                "multiq", "thief", {stream: ">"}, count=1),
            "producer DEL node": lambda: producer.delete(f"multiq:node:{consumer}"),
            "producer ZREM nodes": lambda: producer.zrem("multiq:nodes", consumer),
            "monitor XADD": lambda: monitor.xadd(stream, {"m": "{}", "n": 0}),
            "monitor DEL nodes": lambda: monitor.delete("multiq:nodes"),
            "worker SET elsewhere": lambda: node_user.set("someone-else:key", "x"),
            "worker FLUSHALL": lambda: node_user.flushall(),
            "worker CONFIG GET": lambda: node_user.config_get("requirepass"),
        }
        allowed = []
        for what, call in refused.items():
            try:
                call()
            except redis.exceptions.NoPermissionError:
                continue
            allowed.append(what)
        assert allowed == [], f"allowed outside the role: {allowed}"
    finally:
        for client in (producer, monitor, node_user):
            client.close()
    assert server.broker.exists(f"multiq:node:{consumer}"), "the node record was deleted"


@pytest.mark.timeout(60)
def test_producer_with_the_optional_rights_revokes_and_forgets(
        clean_log: _Server, worker: Any, producer: Any) -> None:
    _run_acl_lines(clean_log.admin, clean_log.blocks[1], clean_log.passwords)
    done = producer.send_task("sysq_acl.add", args=[4, 4])
    assert done.get(timeout=20) == 8
    done.forget()
    assert done.state == "PENDING"
    later = producer.send_task("sysq_acl.add", args=[5, 5], countdown=2)
    later.revoke()
    wait_until(lambda: later.state == "REVOKED", timeout=20,
               message=f"the revoked task ended {later.state}")
    assert clean_log.denials() == []


@pytest.mark.timeout(60)
def test_worker_stops_cleanly_with_its_user(clean_log: _Server, worker: Any) -> None:
    """Last: the module's worker hands back, leaves its groups and forgets its record."""
    worker.stop(timeout=30)
    assert not worker.alive
    assert clean_log.broker.zrange("multiq:nodes", 0, -1) == []
    assert clean_log.denials() == []
