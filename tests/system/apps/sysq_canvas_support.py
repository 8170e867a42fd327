"""Shared by tests/system/test_canvas_*.py: the environment of a ``sysq_canvas`` node, the
test process's copy of the app pointed at the test's server, what errbacks recorded."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import sysq_canvas

APPS = Path(__file__).resolve().parent
REPO = APPS.parent.parent.parent
WORKER_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def env_for(broker_url: str, backend_url: str) -> Dict[str, str]:
    """The environment of a node run against these URLs (apps/ and the repo on its path)."""
    env = dict(os.environ)
    env.update(WORKER_ENV)
    env.update(MULTIQ_BROKER_URL=broker_url, MULTIQ_RESULT_BACKEND=backend_url,
               PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(APPS), str(REPO)] + ([os.environ["PYTHONPATH"]]
                                  if os.environ.get("PYTHONPATH") else []))
    return env


def point_app(broker_url: str, backend_url: str) -> Any:
    """The test process's ``sysq_canvas.app``, connected to these URLs from its next use."""
    app = sysq_canvas.app
    app.close()
    app.conf.update(broker_url=broker_url, result_backend=backend_url)
    return app


def errbacks(rec: Any, task_id: str) -> List[Dict[str, Any]]:
    """Every errback call recorded for the failed task ``task_id``, in order."""
    calls = [json.loads(x) for x in rec.lrange(sysq_canvas.ERRBACKS, 0, -1)]
    return [c for c in calls if c["id"] == task_id]


def errback_runs(rec: Any, task_id: str) -> int:
    return int(rec.get(f"errback-runs:{task_id}") or 0)


def runs(rec: Any) -> List[str]:
    return [x.decode() for x in rec.lrange(sysq_canvas.RUNS, 0, -1)]
