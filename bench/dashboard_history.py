"""The dashboard with a large task history: how long the task list and a task page take.

    .venv/bin/python -m bench.dashboard_history            # 100,000 tasks
    .venv/bin/python -m bench.dashboard_history -n 20000 --repeat 50

Starts its own redis-server, folds ``n`` tasks' events into the history the way the
dashboard's feeder does (sent, received, started, succeeded or failed, each task with one
of 20 names and 4 nodes, spread over a day), each with a result document, then times
the pages through the ASGI app in this process (Starlette's TestClient: routing,
rendering, JSON, every Redis read; no network): the task list (first page, a deep page,
filtered by name, by name and state, by node and a time range, by id prefix) as HTML and
from ``/api/tasks``, and a task page. Prints the median and the 95th percentile of each.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

BATCH = 2000


def fill(app: Any, dash: Any, n: int, start: float) -> List[str]:
    """``n`` tasks in the history and the result store; returns their ids."""
    from multiq.backends.base import make_doc

    ids, span = [], 86400.0
    backend = app.backend
    for first in range(0, n, BATCH):
        entries: List[Tuple[str, Dict[str, Any]]] = []
        docs = []
        for i in range(first, min(n, first + BATCH)):
            task_id = str(uuid.uuid4())
            ids.append(task_id)
            t = start + span * i / n
            name, node = f"bench.task{i % 20}", f"w{i % 4}@bench"
            failed = i % 10 == 0
            entries += [
                ("0-1", {"type": "task-sent", "uuid": task_id, "name": name, "timestamp": t,
                         "args": f"({i},)", "kwargs": "{}", "queue": "multiq"}),
                ("0-1", {"type": "task-received", "uuid": task_id, "name": name,
                         "hostname": node, "timestamp": t + 0.001, "args": f"({i},)"}),
                ("0-1", {"type": "task-started", "uuid": task_id, "hostname": node,
                         "pid": 1000 + i % 4, "timestamp": t + 0.002}),
                ("0-1", {"type": "task-failed" if failed else "task-succeeded",
                         "uuid": task_id, "hostname": node, "timestamp": t + 0.003,
                         "runtime": 0.001, "result": str(i),
                         "exception": "ValueError('x')" if failed else None}),
            ]
            doc = make_doc(task_id, "FAILURE" if failed else "SUCCESS", i)
            doc.update(name=name, args=[i], kwargs={})
            docs.append((task_id, doc))
        dash.history.fold(entries, f"{first + 1}-0", now=start + span)
        pipe = backend.client.pipeline(transaction=False)
        for task_id, doc in docs:
            backend.store(task_id, doc, pipe)
        pipe.execute()
    return ids


def timed(call: Callable[[], Any], repeat: int,
          before: Callable[[], Any] = lambda: None) -> Tuple[float, float]:
    """(median, p95) milliseconds of ``call`` (``before`` runs untimed before each)."""
    samples = []
    for _ in range(repeat):
        before()
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * .95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="tasks in the history")
    parser.add_argument("--repeat", type=int, default=30, help="timings of each page")
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from bench.redisserver import RedisServer
    from multiq import MultiQ
    from multiq.dashboard.server import create_app
    from multiq.dashboard.settings import DashboardSettings

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            app = MultiQ("bench", broker=server.url(1), backend=server.url(2),
                         set_as_current=False)
            web = create_app(app, DashboardSettings(history_max_tasks=max(args.n, 1),
                                                    feed=False))
            dash = web.app.state.dashboard
            start = time.time() - 86400
            t0 = time.perf_counter()
            ids = fill(app, dash, args.n, start)
            print(f"filled {args.n} tasks in {time.perf_counter() - t0:.1f} s "
                  f"(history holds {dash.search.count()}; Redis "
                  f"{server.client().info('memory')['used_memory_human']})")
            client = TestClient(web)
            middle = ids[len(ids) // 2]
            cases = {
                "task list, first page (50)": "/tasks",
                "task list, page 100 (offset 4950)": "/tasks?offset=4950",
                "task list, by name": "/tasks?name=bench.task7",
                "task list, by name + state": "/tasks?name=bench.task0&state=FAILURE",
                "task list, by node + 1 h": f"/tasks?node=w1@bench&since={start + 3600}"
                                            f"&until={start + 7200}",
                "task list, by id prefix": f"/tasks?id={middle[:6]}",
                "task list, by name + state, uncached": "/tasks?name=bench.task3&state=SUCCESS",
                "api/tasks, first page (50)": "/api/tasks",
                "api/tasks, by name + state": "/api/tasks?name=bench.task0&state=FAILURE",
                "overview page": "/",
                "api/overview": "/api/overview",
                "task page": f"/task/{middle}",
                "api/task/info": f"/api/task/info/{middle}",
            }
            redis = server.client(1)

            def drop_searches() -> None:  # a search's intersection is kept for 10 s
                for key in redis.scan_iter(match=dash.keys.search("*")):
                    redis.delete(key)
            width = max(len(k) for k in cases)
            print(f"{'route':<{width}}  median ms    p95 ms")
            for label, path in cases.items():
                assert client.get(path).status_code == 200, path
                median, p95 = timed(lambda p=path: client.get(p), args.repeat,
                                    drop_searches if "uncached" in label else lambda: None)
                print(f"{label:<{width}}  {median:9.1f} {p95:9.1f}")
            redis.close()
            app.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
