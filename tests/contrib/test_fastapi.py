"""The FastAPI example (examples/fastapi) served by uvicorn, against a real worker: its
async endpoints await task results without blocking the server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any, Dict, Iterator

import pytest
from helpers import REPO_ROOT, free_port, wait_until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

EXAMPLE = REPO_ROOT / "examples" / "fastapi"
pytestmark = pytest.mark.system


@pytest.fixture
def server(redis_url: str, backend_url: str, start_worker: Any,
           tmp_path: Any) -> Iterator[str]:
    env = {"MULTIQ_BROKER_URL": redis_url, "MULTIQ_RESULT_BACKEND": backend_url}
    start_worker("tasks", "-c", "4", cwd=EXAMPLE, pool="threads", env=env)
    port = free_port()
    with open(tmp_path / "uvicorn.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "web:api", "--port", str(port), "--log-level",
             "warning"], cwd=EXAMPLE, env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(
                 [str(EXAMPLE), str(REPO_ROOT)])}, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(base), timeout=30, interval=0.1,
                       message="uvicorn did not start")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _up(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/docs", timeout=2).read()
        return True
    except OSError:
        return False


def _call(base: str, method: str, path: str) -> Dict[str, Any]:
    request = urllib.request.Request(f"{base}{path}", method=method)
    with urllib.request.urlopen(request, timeout=40) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.mark.timeout(120)
def test_endpoints_send_tasks_and_await_their_values(server: str) -> None:
    assert _call(server, "POST", "/add?x=2&y=3")["value"] == 5
    assert _call(server, "POST", "/squares?n=6")["values"] == [0, 1, 4, 9, 16, 25]
    task_id = _call(server, "POST", "/later?x=20&y=22")["id"]
    assert _call(server, "GET", f"/result/{task_id}")["state"] == "PENDING"
    found = wait_until(lambda: _call(server, "GET", f"/result/{task_id}")["value"],
                       timeout=30, interval=0.2, message="the delayed task never ran")
    assert found == 42


@pytest.mark.timeout(120)
def test_the_server_keeps_serving_while_requests_wait_for_tasks(server: str) -> None:
    import concurrent.futures

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        waits = [pool.submit(_call, server, "POST", "/squares?n=4") for _ in range(8)]
        assert _call(server, "POST", "/add?x=1&y=1")["value"] == 2
        assert all(w.result()["values"] == [0, 1, 4, 9] for w in waits)
    assert time.monotonic() - started < 30
