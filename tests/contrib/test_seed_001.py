"""Seed 001's Django tutorial, with only the names changed, run as its reader runs it.

``seed001_project/`` holds the tutorial's files (``myproject/multiq.py``, the package's
``__init__.py``, the settings block, ``app/tasks.py`` with ``add`` and the retrying task);
it is copied into ``tmp_path`` and driven with the tutorial's commands: ``manage.py
migrate``, ``multiq multi start w1 ...`` in the project directory, ``multiq -A myproject beat
-l info --detach``, ``manage.py shell -c`` with the tutorial's snippets, and ``multiq multi
stopwait``. Its database is SQLite in ``tmp_path``; its Redis URLs (fixed in the tutorial)
come from ``SEED001_*`` variables pointing at the test's private server.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import psutil
import pytest
from contrib.test_django_core import Project
from helpers import REPO_ROOT, ProcessTracker, tail, wait_until

pytestmark = pytest.mark.system

SEED_PROJECT = Path(__file__).resolve().parent / "seed001_project"
ZONE = "Asia/Shanghai"  # the project's TIME_ZONE (and MULTIQ_TIMEZONE, enable_utc off)


def _multiq() -> List[str]:
    """The installed ``multiq`` command (or ``python -m multiq`` without one)."""
    script = Path(sys.executable).with_name("multiq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "multiq"]


def _pid(path: Path) -> int:
    return int(path.read_text().split()[0])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Seed:
    """The copied project, its database, the logs of its node and beat."""

    def __init__(self, project: Project, tmp_path: Path) -> None:
        self.project, self.path = project, project.path
        self.db = tmp_path / "db.sqlite3"
        self.beat_log = tmp_path / "beat.log"
        self.beat_pidfile = tmp_path / "beat.pid"

    def node_log(self) -> str:
        """The node's logs: ``./multiq/w1.log`` and its pool children's ``w1-N.log``."""
        return "\n".join(p.read_text() for p in sorted((self.path / "multiq").glob("*.log")))

    def rows(self) -> Dict[str, Dict[str, Any]]:
        """The PeriodicTask rows by name (read with sqlite3: cheap enough to poll)."""
        with sqlite3.connect(str(self.db), timeout=30) as conn:
            found = conn.execute("SELECT name, total_run_count, last_run_at "
                                 "FROM multiq_beat_periodictask").fetchall()
        return {name: {"total_run_count": count, "last_run_at": last}
                for name, count, last in found}

    def sends(self, name: str) -> int:
        return self.beat_log.read_text().count(f"Sending due task {name} (app.tasks.add)")


@pytest.fixture
def seed(tmp_path: Path, worker_env: Dict[str, str],
         process_tracker: ProcessTracker) -> Iterator[Seed]:
    """The project copied into tmp_path and migrated (``python manage.py migrate``)."""
    path = tmp_path / "myproject"
    shutil.copytree(SEED_PROJECT, path, ignore=shutil.ignore_patterns("__pycache__"))
    env = {key: value for key, value in worker_env.items()
           if key not in ("MULTIQ_BROKER_URL", "MULTIQ_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE")}
    env.update(SEED001_BROKER_URL=worker_env["MULTIQ_BROKER_URL"],
               SEED001_RESULT_BACKEND=worker_env["MULTIQ_RESULT_BACKEND"],
               SEED001_DB=str(tmp_path / "db.sqlite3"),
               DJP_DB_ENGINE="sqlite",  # what the shared Project helper reads
               PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(REPO_ROOT))
    project = Project(path, env, process_tracker)
    project.run(sys.executable, "manage.py", "migrate")
    yield Seed(project, tmp_path)


# -- the tutorial's snippets (names changed), then what the test reads back ------------------

CALLS = """
from app.tasks import add
a = add.delay(3, 5)  # <AsyncResult: 12095894-956f-4933-b880-afaae9782e44>
a.ready()  # 状态
a.result  # 结果
a.get()  # 结果

from multiq.result import AsyncResult
# 调用异步任务
async_task = add.apply_async(args=[3, 5])
# 获取任务状态和结果
AsyncResult(async_task.task_id).status
AsyncResult(async_task.task_id).result

import json
from myproject import multiq_app
from myproject.multiq import debug_task
both = add.apply_async(args=[3], kwargs={'y': 5})
debug = debug_task.delay()
debug.get(timeout=60)
print('RESULT ' + json.dumps({
    'got': a.get(timeout=60), 'ready': a.ready(), 'result': a.result,
    'async': async_task.get(timeout=60),
    'status': AsyncResult(async_task.task_id).status,
    'async_result': AsyncResult(async_task.task_id).result,
    'same_id': AsyncResult(async_task.task_id).id == async_task.id,
    'args_kwargs': both.get(timeout=60),
    'debug_id': debug.id,
    'app': multiq_app.main,
}))
"""

RETRY = """
import json
from app.tasks import send_batch_notifications
r = send_batch_notifications.delay()
try:
    r.get(timeout=90)
    raised = None
except Exception as exc:
    raised = type(exc).__name__
print('RESULT ' + json.dumps({'id': r.id, 'raised': raised, 'status': r.status}))
"""

PERIODIC = """
import json
from multiq.contrib.django.beat.schedulers import CrontabSchedule, PeriodicTask

schedule = CrontabSchedule.objects.create(minute="*/2")

PeriodicTask.objects.create(name="beat_task", task="app.tasks.add", crontab=schedule, args=json.dumps((3, 5)))
print('RESULT ' + json.dumps(schedule.timezone))
"""  # noqa: E501 - the tutorial's line, verbatim

NEXT_RUN = """
import datetime as dt, json
from zoneinfo import ZoneInfo
from multiq.contrib.django.beat.models import PeriodicTask
last = dt.datetime.fromtimestamp({last!r}, ZoneInfo({zone!r}))
due = PeriodicTask.objects.get(name='beat_task').schedule.next_after(last)
due = due.astimezone(ZoneInfo({zone!r}))
print('RESULT ' + json.dumps([due.timestamp(), due.minute, due.second]))
"""

EVERY_SECOND = """
import json
from multiq.contrib.django.beat.models import IntervalSchedule, PeriodicTask
every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
PeriodicTask.objects.create(name="every_second", task="app.tasks.add", interval=every,
                            args=json.dumps((1, 2)))
print('RESULT 0')
"""

TIME_ZONE_CHANGED = """
from multiq.contrib.django.beat.models import PeriodicTask, PeriodicTasks

PeriodicTask.objects.all().update(last_run_at=None)  # 将上次运行时间置空
for task in PeriodicTask.objects.all():  # 遍历全部任务
    PeriodicTasks.changed(task)  # 修改时区
print('RESULT 0')
"""

BULK_UPDATE = """
from multiq.contrib.django.beat.models import PeriodicTasks
from multiq.contrib.django.beat.models import PeriodicTask
PeriodicTask.objects.filter(name="every_second").update(enabled=False)  # no signal


PeriodicTasks.update_changed()
print('RESULT 0')
"""


@pytest.mark.timeout(420)
def test_seed_001_tutorial_runs_with_the_names_changed(seed: Seed, make_app: Any,
                                                      process_tracker: ProcessTracker) -> None:
    project, path = seed.project, seed.path
    out = project.run(*_multiq(), "multi", "start", "w1", "-A", "myproject", "-l", "info",
                      "--pidfile=./multiq/%n.pid", "--logfile=./multiq/%n%I.log")
    assert "w1@" in out and "OK" in out, out
    node_pid = _pid(path / "multiq" / "w1.pid")
    process_tracker.track(node_pid)

    # calling: delay / apply_async, ready, result, get, AsyncResult(id)
    seen = project.shell(CALLS)
    assert seen["got"] == 8 and seen["ready"] is True and seen["result"] == 8
    assert seen["async"] == 8 and seen["async_result"] == 8
    assert seen["status"] == "SUCCESS" and seen["same_id"] is True
    assert seen["args_kwargs"] == 8
    assert seen["app"] == "myproject"
    # debug_task printed its request: with a log file, what a task prints is in the log
    wait_until(lambda: f"Request: <Context: {{'id': '{seen['debug_id']}'" in seed.node_log(),
               timeout=30, message=f"debug_task's print is not in the log:\n"
                                   f"{tail(seed.node_log())}")

    # the retrying task: retried max_retries (3) times, 5 s apart, then a failure
    retry = project.shell(RETRY)
    assert retry["raised"] == "NameError" and retry["status"] == "FAILURE", retry
    log = seed.node_log()
    mark = f"app.tasks.send_batch_notifications[{retry['id']}]"
    assert log.count(f"{mark} received") == 4, tail(log)
    assert log.count(f"{mark} retry: Retry in 5s") == 3, tail(log)
    assert f"{mark} raised unexpected: NameError" in log, tail(log)

    # periodic tasks in the database: the tutorial's crontab row, then beat
    assert project.shell(PERIODIC) == ZONE  # the crontab's default zone: the app's
    project.run(*_multiq(), "-A", "myproject", "beat", "-l", "info", "--detach",
                f"--pidfile={seed.beat_pidfile}", f"--logfile={seed.beat_log}")
    beat_pid = _pid(seed.beat_pidfile)
    process_tracker.track(beat_pid)
    wait_until(lambda: "now sends the periodic tasks" in seed.beat_log.read_text(), timeout=60,
               message=f"beat did not start:\n{tail(seed.beat_log.read_text())}")
    banner = seed.beat_log.read_text()
    assert "scheduler -> Database" in banner and "entries -> 1" in banner, banner

    # beat loaded the row: it noted when it first saw it, and the row's schedule puts the
    # next run on the next even minute of the app's clock, at most 2 minutes on
    broker = make_app().broker
    client, beat_last = broker.client, broker.keys.beat_last
    first_seen = float(wait_until(lambda: client.hget(beat_last, "beat_task"), timeout=30,
                                  message="beat did not load the beat_task row"))
    due, minute, second = project.shell(NEXT_RUN.format(last=first_seen, zone=ZONE))
    assert 0 < due - first_seen <= 120 and minute % 2 == 0 and second == 0, (due, first_seen)

    # a row every second: its runs arrive, counted on the row
    project.shell(EVERY_SECOND)
    wait_until(lambda: seed.rows()["every_second"]["total_run_count"] >= 3, timeout=60,
               message=f"no runs of every_second:\n{tail(seed.beat_log.read_text())}")
    wait_until(lambda: re.search(r"app\.tasks\.add\[[-0-9a-f]+\] succeeded in [0-9.]+s: 3$",
                                 seed.node_log(), re.M),
               timeout=60, message="the worker ran no add(1, 2) sent by beat")

    # the tutorial's notes: after a time zone change, and after a bulk update
    project.shell(TIME_ZONE_CHANGED)  # every last_run_at cleared, beat told
    count = seed.rows()["every_second"]["total_run_count"]
    wait_until(lambda: seed.rows()["every_second"]["total_run_count"] >= count + 2
               and seed.rows()["every_second"]["last_run_at"] is not None,
               timeout=60, message="beat stopped sending every_second after the change")
    project.shell(BULK_UPDATE)  # disabled with update(): beat reloads on update_changed()
    stopped = seed.sends("every_second")
    wait_until(lambda: _quiet(seed, "every_second", seconds=4), timeout=60,
               message=f"beat still sends the disabled row:\n{tail(seed.beat_log.read_text())}")
    assert seed.sends("every_second") <= stopped + 3  # at most the ticks until it reloaded
    assert "Traceback" not in seed.beat_log.read_text(), tail(seed.beat_log.read_text())

    # stopping: the node with multi stopwait, beat by its pid file
    out = project.run(*_multiq(), "multi", "stopwait", "w1", "--pidfile=./multiq/%n.pid",
                      timeout=120)
    assert "OK" in out, out
    assert _gone(node_pid) and not (path / "multiq" / "w1.pid").exists()
    os.kill(_pid(seed.beat_pidfile), signal.SIGTERM)
    wait_until(lambda: _gone(beat_pid) and not seed.beat_pidfile.exists(), timeout=30,
               message="beat did not stop on TERM")
    assert seed.node_log().count("Traceback") == 1, tail(seed.node_log())  # the failed task's


def _quiet(seed: Seed, name: str, seconds: float) -> bool:
    """True when beat sent no ``name`` for ``seconds`` (the wait is the measurement)."""
    before = seed.sends(name)
    try:
        wait_until(lambda: seed.sends(name) > before, timeout=seconds)
    except AssertionError:
        return True
    return False
