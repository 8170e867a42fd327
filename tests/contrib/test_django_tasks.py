"""Django's task framework (``django.tasks``, or its backport ``django_tasks``) on multiq.

The Django project is ``djtasks_project/``: its settings name
``multiq.contrib.django.tasks.MultiQBackend``, its multiq app (``djt_app``) includes the
generic task, its ``@task`` functions are in ``djt_tasks``. This process enqueues them;
a real ``multiq worker`` process (with ``DJANGO_SETTINGS_MODULE`` set and an SQLite
database in the test's temp dir) runs them.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from helpers import wait_until

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parent / "djtasks_project"
RUN = "multiq.contrib.django.tasks.run"
TIMEOUT = 40.0  # seconds a task may take to come back on a loaded machine

BACKEND = "multiq.contrib.django.tasks.MultiQBackend"


def tasks_setting(**options: Any) -> Dict[str, Any]:
    return {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "high"],
                        "OPTIONS": {"APP": "djt_app:app", **options}}}


@pytest.fixture(scope="module")
def django_ready() -> Iterator[None]:
    """Django configured in this process (unless someone did it already), the project
    importable."""
    import django
    from django.conf import settings

    sys.path.insert(0, str(PROJECT))
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(SECRET_KEY="test", USE_TZ=True, INSTALLED_APPS=[], DATABASES={})
    django.setup()
    try:
        yield
    finally:
        sys.path.remove(str(PROJECT))


@pytest.fixture
def djt(django_ready: None, redis_url: str, backend_url: str) -> Iterator[Any]:
    """The ``djt_tasks`` module, its backend pointed at this test's Redis."""
    import djt_app
    from django.test import override_settings

    djt_app.app.config_from_object({"broker_url": redis_url, "result_backend": backend_url})
    with override_settings(TASKS=tasks_setting(), USE_TZ=True):
        import djt_tasks
        yield djt_tasks


@pytest.fixture
def worker(start_worker: Any, tmp_path: Path) -> Any:
    """Factory: a worker of the project (``-Q`` etc. as arguments), Django set up lazily."""

    def start(*args: str, env: Any = None) -> Any:
        full_env = {"DJANGO_SETTINGS_MODULE": "djt_settings",
                    "DJT_DB": str(tmp_path / "db.sqlite3"), "PYTHONDONTWRITEBYTECODE": "1",
                    **(env or {})}
        return start_worker("djt_app", *args, cwd=PROJECT, env=full_env, timeout=30.0)

    return start


def api() -> Any:
    import multiq.contrib.django.tasks as api

    return api


def default_backend() -> Any:
    try:
        from django.tasks import default_task_backend
    except ImportError:
        from django_tasks import default_task_backend
    return default_task_backend


def until_status(result: Any, status: Any, timeout: float = TIMEOUT) -> Any:
    def reached() -> bool:
        result.refresh()
        return bool(result.status == status)

    wait_until(reached, timeout=timeout, interval=0.05,
               message=f"task {result.id} still {result.status}, not {status}")
    return result


def envelope(redis_client: Any, stream: str) -> Dict[str, Any]:
    entries = redis_client.xrange(stream)
    assert len(entries) == 1, (stream, entries)
    return dict(json.loads(entries[0][1][b"m"]))


# -- running and results -----------------------------------------------------------------


@pytest.mark.timeout(120)
def test_enqueued_task_runs_on_a_worker_and_refresh_brings_its_value(djt: Any,
                                                                     worker: Any) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    result = djt.add.enqueue(2, 3)
    assert result.status == api().READY
    assert result.enqueued_at is not None and result.enqueued_at >= before
    assert result.args == [2, 3] and result.kwargs == {}
    assert not result.is_finished
    node = worker()

    until_status(result, api().SUCCESSFUL)
    assert result.return_value == 5
    assert result.errors == []
    assert result.is_finished
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.worker_ids[0].startswith("w") and "@" in result.worker_ids[0]
    assert RUN in node.log() and result.id in node.log()


@pytest.mark.timeout(120)
def test_async_and_context_tasks_run(djt: Any, worker: Any) -> None:
    worker()
    added = djt.async_add.enqueue(20, 22)
    context = djt.whoami.enqueue("me")

    assert until_status(added, api().SUCCESSFUL).return_value == 42
    until_status(context, api().SUCCESSFUL)
    assert context.return_value == {"tag": "me", "id": context.id, "attempt": 1,
                                    "status": str(api().RUNNING)}


@pytest.mark.timeout(120)
def test_failing_task_is_failed_with_its_exception_class_path_and_traceback(
        djt: Any, worker: Any) -> None:
    worker()
    result = djt.explode.enqueue("kaboom")

    until_status(result, api().FAILED)
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class_path == "djt_tasks.Boom"
    assert error.exception_class is djt.Boom
    assert "raise Boom(text)" in error.traceback and "Boom: kaboom" in error.traceback
    assert result.finished_at is not None and result.attempts == 1
    with pytest.raises(ValueError):
        result.return_value  # noqa: B018 - Django raises for a failed task


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: Any, tmp_path: Path) -> Iterator[Dict[str, Any]]:
    """The worker's database: an SQLite file, or a PostgreSQL database of its own (dropped
    at the end; skipped when no server answers). ``env`` for the worker, ``rows()`` to
    read back what the task wrote."""
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"

        def sqlite_rows() -> List[str]:
            with sqlite3.connect(path) as db:
                return [r[0] for r in db.execute("SELECT value FROM remembered ORDER BY value")]

        yield {"env": {"DJT_DB": str(path)}, "rows": sqlite_rows}
        return
    psycopg = pytest.importorskip("psycopg")
    server = "host=127.0.0.1 port=5432 user=postgres"
    try:
        admin = psycopg.connect(f"{server} dbname=test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers on 127.0.0.1:5432: {exc}")
    name = f"mq_djtasks_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')

    def pg_rows() -> List[str]:
        with psycopg.connect(f"{server} dbname={name}") as db:
            return [r[0] for r in db.execute("SELECT value FROM remembered ORDER BY value")]

    try:
        yield {"env": {"DJT_PG_NAME": name}, "rows": pg_rows}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.timeout(120)
def test_the_worker_sets_django_up_for_tasks_that_need_apps_and_the_database(
        djt: Any, worker: Any, database: Dict[str, Any]) -> None:
    worker(env=database["env"])
    first = until_status(djt.remember.enqueue("one"), api().SUCCESSFUL)
    second = until_status(djt.remember.enqueue("two"), api().SUCCESSFUL)

    assert "contenttypes" in first.return_value["labels"]
    assert second.return_value["rows"] == ["one", "two"]
    assert database["rows"]() == ["one", "two"]


@pytest.mark.timeout(120)
def test_a_task_is_running_while_it_runs(djt: Any, worker: Any, tmp_path: Path) -> None:
    worker()
    gate = tmp_path / "gate"
    result = djt.wait_for.enqueue(str(gate))

    until_status(result, api().RUNNING)
    assert result.started_at is not None and result.finished_at is None
    assert result.attempts == 1 and not result.is_finished
    gate.write_text("open")
    assert until_status(result, api().SUCCESSFUL).return_value == "open"


@pytest.mark.timeout(120)
def test_worker_without_django_settings_fails_the_task_saying_so(djt: Any,
                                                                  worker: Any) -> None:
    worker(env={"DJANGO_SETTINGS_MODULE": ""})
    result = until_status(djt.add.enqueue(1, 1), api().FAILED)

    assert result.errors[0].exception_class_path == "multiq.exceptions.ImproperlyConfigured"
    assert "DJANGO_SETTINGS_MODULE" in result.errors[0].traceback


# -- mapping onto multiq -----------------------------------------------------------------


@pytest.mark.parametrize("priority, band", [(-100, 0), (-80, 0), (-79, 1), (0, 4), (1, 5),
                                            (20, 5), (80, 8), (81, 9), (100, 9)])
@pytest.mark.timeout(30)
def test_priority_maps_to_a_band(priority: int, band: int) -> None:
    assert api().band(priority) == band


@pytest.mark.timeout(120)
def test_queue_and_priority_go_to_the_matching_multiq_stream(djt: Any, worker: Any,
                                                             redis_client: Any) -> None:
    low = djt.add.using(priority=-100).enqueue(1, 2)
    usual = djt.add.enqueue(3, 4)
    high = djt.urgent.enqueue(21)

    assert envelope(redis_client, "multiq:q:{multiq}:0")["id"] == low.id
    assert envelope(redis_client, "multiq:q:{multiq}:4")["id"] == usual.id
    message = envelope(redis_client, "multiq:q:{high}:9")
    assert message["id"] == high.id and message["task"] == RUN
    assert redis_client.xlen("multiq:q:{default}:4") == 0

    worker("-Q", "high")  # serves "high" only
    assert until_status(high, api().SUCCESSFUL).return_value == 42
    low.refresh()
    assert low.status == api().READY


@pytest.mark.timeout(120)
def test_run_after_waits_in_redis_until_due(djt: Any, worker: Any, redis_client: Any) -> None:
    worker()
    due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=4)
    result = djt.add.using(run_after=due).enqueue(5, 6)

    members = redis_client.zrange("multiq:q:{multiq}:delayed", 0, -1, withscores=True)
    assert len(members) == 1 and abs(members[0][1] - due.timestamp()) < 0.01
    result.refresh()
    assert result.status == api().READY
    until_status(result, api().SUCCESSFUL)
    assert result.started_at >= due
    assert result.task.run_after == due


@pytest.mark.timeout(120)
def test_get_result_by_id_from_the_backend_and_the_task(djt: Any, worker: Any) -> None:
    result = djt.add.enqueue(7, 8)
    waiting = default_backend().get_result(result.id)
    assert waiting.status == api().READY and waiting.args == [7, 8]
    assert waiting.task.func is djt.add.func and waiting.enqueued_at == result.enqueued_at

    worker()
    until_status(result, api().SUCCESSFUL)
    found = djt.add.get_result(result.id)
    assert found.status == api().SUCCESSFUL and found.return_value == 15
    assert found.started_at == result.started_at and found.worker_ids == result.worker_ids

    with pytest.raises(api().TaskResultDoesNotExist):
        default_backend().get_result("no-such-id")


# -- what is refused ---------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_queue_the_backend_does_not_list_is_refused(djt: Any) -> None:
    with pytest.raises(api().InvalidTask, match="nowhere"):
        djt.add.using(queue_name="nowhere")


@pytest.mark.timeout(30)
def test_unknown_options_and_an_app_that_is_not_one_are_clear_errors(djt: Any) -> None:
    from django.test import override_settings

    from multiq.exceptions import ImproperlyConfigured

    with override_settings(TASKS=tasks_setting(QUEUE="x")), \
            pytest.raises(ImproperlyConfigured, match="'QUEUE'.*'APP'"):
        djt.add.enqueue(1, 2)
    with override_settings(TASKS=tasks_setting(APP="djt_tasks:add")), \
            pytest.raises(ImproperlyConfigured, match="djt_tasks:add"):
        djt.add.enqueue(1, 2)


@pytest.mark.timeout(30)
def test_without_app_option_the_current_app_is_used(djt: Any) -> None:
    from django.test import override_settings

    from multiq.app import current_app

    with override_settings(TASKS={"default": {"BACKEND": BACKEND}}):
        assert default_backend().app is current_app()


@pytest.mark.timeout(30)
def test_arguments_json_cannot_carry_are_refused_before_anything_is_sent(
        djt: Any, redis_server: Any, redis_client: Any) -> None:
    with pytest.raises(TypeError):
        djt.add.enqueue(dt.datetime.now(dt.timezone.utc), 1)

    results = redis_server.client(2)
    try:
        assert redis_client.keys("*") == [] and results.keys("*") == []
    finally:
        results.close()


@pytest.mark.timeout(120)
def test_a_message_naming_no_task_fails_with_a_clear_error(djt: Any, worker: Any) -> None:
    import djt_app

    node = worker()
    sent = djt_app.app.send_task(RUN, ["os.path.join", [], {}])
    error = sent.get(timeout=TIMEOUT, propagate=False)

    assert type(error) is api().InvalidTask
    assert "'os.path.join' is a function, not a task" in str(error)
    node.wait_for_log(f"[{sent.id}] raised unexpected", timeout=10)
    assert node.alive
