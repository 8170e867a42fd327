"""``multiq --config mod worker`` without ``-A``: the node runs Celery's default app, made
from the configuration module (its broker, backend, queue and ``imports``)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from helpers import WorkerProcess  # noqa: E402

from multiq import MultiQ  # noqa: E402

pytestmark = pytest.mark.system
REPO = HERE.parent.parent


def test_worker_from_a_config_module_runs_its_tasks(
    tmp_path: Path, redis_url: str, backend_url: str, process_tracker: Any,
) -> None:
    (tmp_path / "nodecfg.py").write_text(textwrap.dedent(f"""
        broker_url = {redis_url!r}
        result_backend = {backend_url!r}
        task_default_queue = "cfgq"
        imports = ["nodecfg_tasks"]
    """))
    (tmp_path / "nodecfg_tasks.py").write_text(textwrap.dedent("""
        from multiq import shared_task

        @shared_task(name="nodecfg.add")
        def add(x, y):
            return x + y
    """))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MULTIQ_APP", "MULTIQ_BROKER_URL", "MULTIQ_RESULT_BACKEND")}
    env.update(PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    argv = [sys.executable, "-m", "multiq", "--config", "nodecfg", "worker", "-P", "solo",
            "-l", "info", "-n", "cfg@%h"]
    log_path = tmp_path / "node.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=str(tmp_path), env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    process_tracker.track(proc)
    node = WorkerProcess(proc, log_path, argv)
    node.wait_for_log("ready", timeout=20)
    banner = node.log()
    assert ".> app:         default:" in banner
    assert "cfgq" in banner and "nodecfg.add" in banner

    client = MultiQ("client", broker=redis_url, backend=backend_url, set_as_current=False)
    try:
        result = client.send_task("nodecfg.add", (2, 3), queue="cfgq")
        assert result.get(timeout=15) == 5
    finally:
        client.close()
    assert node.stop() == 0
