"""What the dashboard's system tests share: nodes of ``sysq_dash`` on the session's Redis,
a dashboard over it (in-process, through Starlette's TestClient, or a real ``multiq
dashboard`` process), and small helpers to read pages."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from helpers import ProcessTracker, free_port, start_worker_process, wait_until
from sysq_control_support import env_for

APPS = Path(__file__).resolve().parent
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def fleet_of(redis_server: Any, logs: Path, nodes: Dict[str, Sequence[str]]) -> Iterator[Any]:
    """A module fixture's body: the server flushed, ``nodes`` started, a client app on
    db 1 / db 2 (``fleet.app``) and a Redis client on db 1 (``fleet.redis``)."""
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    broker_url, backend_url = redis_server.url(1), redis_server.url(2)
    fleet = Fleet(env_for(broker_url, backend_url), logs)
    fleet.app = client_app(broker_url, backend_url)
    fleet.redis = redis_server.client(1)
    try:
        fleet.start(nodes)
        yield fleet
    finally:
        fleet.stop()
        fleet.redis.close()
        fleet.app.close()


class Fleet:
    """Nodes started at once (``name -> (pool, args...)``), waited for together."""

    def __init__(self, env: Dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.tracker = ProcessTracker()
        self.workers: Dict[str, Any] = {}
        self.app: Any = None
        self.redis: Any = None

    def start(self, nodes: Dict[str, Sequence[str]]) -> None:
        for short, (pool, *args) in nodes.items():
            self.workers[short] = start_worker_process(
                self.tracker, "sysq_dash", "-E", *args, cwd=APPS, env=self.env, pool=pool,
                hostname=f"{short}@%h", wait_ready=False, log_path=self.logs / f"{short}.log")
        for w in self.workers.values():
            w.wait_for_log("ready", timeout=40)

    def hostname(self, short: str) -> str:
        import socket

        return f"{short}@{socket.gethostname()}"

    def stop(self) -> None:
        import signal

        for w in self.workers.values():
            if w.alive:
                w.send_signal(signal.SIGQUIT)
        self.tracker.cleanup()


def client_app(broker_url: str, backend_url: str) -> Any:
    """A client app of the same name and settings as the nodes' (tasks sent by name)."""
    from multiq import MultiQ

    return MultiQ("sysq_dash", broker=broker_url, backend=backend_url, result_extended=True,
                  task_send_sent_event=True, set_as_current=False)


def dashboard(app: Any, **settings: Any) -> Any:
    """A TestClient of the dashboard of ``app`` (use it as a context manager: its start
    catches up on the events and follows them)."""
    from starlette.testclient import TestClient

    from multiq.dashboard.server import create_app
    from multiq.dashboard.settings import DashboardSettings

    return TestClient(create_app(app, DashboardSettings(**settings)))


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def wait_task(client: Any, task_id: str, state: str, timeout: float = 10.0) -> Dict[str, Any]:
    """The task's API record once the dashboard's history (its events) has it in
    ``state``."""
    wait_until(lambda: history_state(client, task_id) == state, timeout=timeout,
               message=f"{task_id} never {state} in the history")
    info: Dict[str, Any] = client.get(f"/api/task/info/{task_id}").json()
    return info


def history_state(client: Any, task_id: str) -> Optional[str]:
    """The state the dashboard's history (events only, not the result) holds."""
    rows = client.get("/api/tasks", params={"id": task_id}).json()["tasks"]
    return rows[0]["state"] if rows else None


class Server:
    """A real ``multiq -A sysq_dash dashboard`` process on a free port."""

    def __init__(self, env: Dict[str, str], args: Sequence[str], log: Path,
                 tracker: ProcessTracker) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "multiq", "-A", "sysq_dash", "dashboard", "--port",
                 str(self.port), *args], cwd=str(APPS), env=env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        tracker.track(self.proc)

    def wait_ready(self, timeout: float = 20.0) -> None:
        import httpx

        def up() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/static/dash.css", timeout=1.0)
            except httpx.HTTPError:
                return False
            return True
        wait_until(up, timeout=timeout, interval=0.1, message="dashboard never listened")


def pages(client: Any, paths: List[str]) -> Iterator[Any]:
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        yield response


def now() -> float:
    return time.time()
