"""Runs Django tasks through the multiq backend in another interpreter (Django 6's own
``django.tasks``) and prints what it saw as JSON, for ``test_django6_tasks.py``.

``python django6_driver.py <scenario> enqueue`` enqueues the scenario's tasks (no worker
runs yet) and prints their ids with what can be seen before they run;
``python django6_driver.py <scenario> collect`` reads those ids back as JSON on stdin,
waits (``refresh()``) until every task has finished and prints the results.

The environment names the Django project (``DJANGO_SETTINGS_MODULE`` and the project on
``PYTHONPATH``) and the Redis URLs (``MULTIQ_BROKER_URL``, ``MULTIQ_RESULT_BACKEND``).
Standard library, Django, redis and multiq only: nothing from the test suite.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

FINISH_WITHIN = 60.0  # seconds a task may take to come back on a loaded machine


def _setup() -> Any:
    import django

    django.setup()
    import djt_tasks

    return djt_tasks


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _failure(call: Callable[[], Any]) -> Dict[str, Any]:
    """The class path and message of what ``call`` raises (None when nothing)."""
    try:
        call()
    except Exception as exc:
        return {"raised": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "message": str(exc)}
    return {"raised": None, "message": ""}


def describe(result: Any) -> Dict[str, Any]:
    """Everything a user reads on a ``TaskResult``, as JSON."""
    try:
        value, value_error = result.return_value, None
    except ValueError as exc:
        value, value_error = None, str(exc)
    errors = []
    for error in result.errors:
        cls = error.exception_class
        errors.append({"exception_class_path": error.exception_class_path,
                       "exception_class": f"{cls.__module__}.{cls.__qualname__}",
                       "traceback": error.traceback})
    return {
        "id": result.id, "status": str(result.status),
        "status_type": f"{type(result.status).__module__}.{type(result.status).__name__}",
        "is_finished": result.is_finished, "return_value": value,
        "return_value_error": value_error, "errors": errors, "args": result.args,
        "kwargs": result.kwargs, "backend": result.backend,
        "worker_ids": list(result.worker_ids), "attempts": result.attempts,
        "enqueued_at": _iso(result.enqueued_at), "started_at": _iso(result.started_at),
        "finished_at": _iso(result.finished_at),
        "last_attempted_at": _iso(result.last_attempted_at),
        "task": {"path": result.task.module_path, "priority": result.task.priority,
                 "queue_name": result.task.queue_name,
                 "run_after": _iso(result.task.run_after)},
    }


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["MULTIQ_BROKER_URL"])


# -- scenarios: results ------------------------------------------------------------------


def results_enqueue(tasks: Any) -> Dict[str, Any]:
    from django.tasks import task_backends

    backend = task_backends["default"]
    added = tasks.add.enqueue(2, 3)
    async_added = asyncio.run(tasks.async_add.aenqueue(20, 22))
    context = tasks.whoami.enqueue("me")
    failed = tasks.explode.enqueue("kaboom")
    waiting = backend.get_result(added.id)
    awaited = asyncio.run(backend.aget_result(async_added.id))
    return {
        "ids": {"add": added.id, "async_add": async_added.id, "whoami": context.id,
                "explode": failed.id},
        "backend": {"class": f"{type(backend).__module__}.{type(backend).__qualname__}",
                    **{name: getattr(backend, name) for name in (
                        "supports_defer", "supports_async_task", "supports_get_result",
                        "supports_priority")}},
        "enqueued": describe(added), "async_enqueued": describe(async_added),
        "waiting": describe(waiting), "awaited": describe(awaited),
        "missing": _failure(lambda: backend.get_result("no-such-id")),
        "bad_queue": _failure(lambda: tasks.add.using(queue_name="nowhere")),
        "mismatch": _failure(lambda: tasks.explode.get_result(added.id)),
    }


def results_collect(tasks: Any, ids: Dict[str, str]) -> Dict[str, Any]:
    found = {"add": tasks.add.get_result(ids["add"]),
             "async_add": asyncio.run(tasks.async_add.aget_result(ids["async_add"])),
             "whoami": tasks.whoami.get_result(ids["whoami"]),
             "explode": tasks.explode.get_result(ids["explode"])}
    wait_finished(list(found.values()))
    return {name: describe(result) for name, result in found.items()}


# -- scenarios: mapping onto multiq ------------------------------------------------------


def mapping_enqueue(tasks: Any) -> Dict[str, Any]:
    low = tasks.add.using(priority=-100).enqueue(1, 2)
    usual = tasks.add.enqueue(3, 4)
    high = tasks.urgent.enqueue(21)
    due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=4)
    later = tasks.add.using(run_after=due).enqueue(5, 6)
    client = _redis()
    streams = {}
    for name in ("multiq:q:{multiq}:0", "multiq:q:{multiq}:4", "multiq:q:{high}:9"):
        streams[name] = [json.loads(fields[b"m"]) for _, fields in client.xrange(name)]
    delayed = client.zrange("multiq:q:{multiq}:delayed", 0, -1, withscores=True)
    return {"ids": {"low": low.id, "usual": usual.id, "high": high.id, "later": later.id},
            "due": due.isoformat(), "later": describe(later),
            "streams": {name: [{"id": m["id"], "task": m["task"]} for m in messages]
                        for name, messages in streams.items()},
            "delayed": [[member.decode(), score] for member, score in delayed]}


def mapping_collect(tasks: Any, ids: Dict[str, str]) -> Dict[str, Any]:
    from django.tasks import default_task_backend

    found = {name: default_task_backend.get_result(result_id)
             for name, result_id in ids.items()}
    wait_finished(list(found.values()))
    return {name: describe(result) for name, result in found.items()}


# -- running ------------------------------------------------------------------------------


def wait_finished(results: List[Any]) -> None:
    """``refresh()`` each result until all have finished (or the time is up)."""
    deadline = time.monotonic() + FINISH_WITHIN
    pending = list(results)
    while pending and time.monotonic() < deadline:
        for result in list(pending):
            result.refresh()
            if result.is_finished:
                pending.remove(result)
        if pending:
            time.sleep(0.05)


SCENARIOS = {"results": (results_enqueue, results_collect),
             "mapping": (mapping_enqueue, mapping_collect)}


def main(argv: List[str]) -> int:
    scenario, phase = argv
    enqueue, collect = SCENARIOS[scenario]
    tasks = _setup()
    out = {"python": list(sys.version_info[:3])}
    if phase == "enqueue":
        import django

        out.update(django=django.get_version(), **enqueue(tasks))
    else:
        out.update(collect(tasks, json.load(sys.stdin)))
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
