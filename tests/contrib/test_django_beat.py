"""Periodic tasks kept in the database: ``multiq.contrib.django.beat`` and ``beat -S django``.

The Django project under ``djbeat_project/`` (the tutorials' layout: ``djbeat_site/multiq.py``
creates the app from ``django.conf:settings``) runs against SQLite in ``tmp_path`` and, when
a server answers, a PostgreSQL database of its own. Real ``multiq beat`` and ``multiq
worker`` processes run; rows are created and edited through the ORM by ``dbagent.py``, a
process of its own, so this process never configures Django. Each run of the task
``beatdemo.record`` appends a JSON line to a file: the runs are counted outside the queue.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from helpers import REPO_ROOT, WorkerProcess, tail, wait_until

pytestmark = pytest.mark.system

PROJECT = Path(__file__).resolve().parent / "djbeat_project"
APP = "djbeat_site"
TASK = "beatdemo.record"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
LEADS = "now sends the periodic tasks"
STARTING = "beat: Starting..."
MAX_INTERVAL = 1.0


# -- the database, the project, its processes ----------------------------------------------


@pytest.fixture(params=["sqlite3", "postgresql"])
def database(request: Any, tmp_path: Path) -> Any:
    """Settings environment of a fresh database: SQLite in tmp_path, or PostgreSQL."""
    if request.param == "sqlite3":
        yield {"DJBEAT_DB_ENGINE": "sqlite3", "DJBEAT_DB_NAME": str(tmp_path / "db.sqlite3")}
        return
    yield from _postgres_database()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Dict[str, str]:
    return {"DJBEAT_DB_ENGINE": "sqlite3", "DJBEAT_DB_NAME": str(tmp_path / "db.sqlite3")}


def _postgres_database() -> Any:
    try:
        import psycopg
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no driver or no server
        pytest.skip(f"no PostgreSQL server answers at 127.0.0.1:5432 ({exc})")
    name = f"mq_djbeat_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DJBEAT_DB_ENGINE": "postgresql", "DJBEAT_DB_NAME": name}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class Agent:
    """``dbagent.py``: runs ORM code in the project's settings, answers ``result``."""

    def __init__(self, env: Dict[str, str], tracker: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROJECT / "dbagent.py")], cwd=str(PROJECT), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        tracker.track(self.proc)
        assert self._reply() == "ready"

    def _reply(self) -> Any:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"dbagent exited with {self.proc.poll()}"
        reply = json.loads(line)
        assert reply["ok"], reply["error"]
        return reply["result"]

    def __call__(self, code: str) -> Any:
        self.proc.stdin.write(json.dumps({"code": code}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=10)


class Project:
    """The test project on one database: ``manage()``, ``db(code)``, ``beat()``,
    ``worker()``, ``runs(label)``."""

    def __init__(self, env: Dict[str, str], tmp_path: Path, tracker: Any,
                 start_worker: Any) -> None:
        self.env, self.tmp_path, self.tracker = env, tmp_path, tracker
        self._start_worker = start_worker
        self.record = Path(env["DJBEAT_RECORD"])
        self.beats: List[WorkerProcess] = []
        self._agent: Optional[Agent] = None

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=str(PROJECT),
                              env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, (done.stdout, done.stderr)
        return done

    def db(self, code: str) -> Any:
        if self._agent is None:
            self._agent = Agent(self.env, self.tracker)
        return self._agent(code)

    def beat(self, *args: str, env: Optional[Dict[str, str]] = None) -> WorkerProcess:
        """``multiq -A djbeat_site beat -l info --max-interval 1 <args>``, started."""
        log_path = self.tmp_path / f"beat-{len(self.beats) + 1}.log"
        argv = [sys.executable, "-m", "multiq", "-A", APP, "beat", "-l", "info",
                "--max-interval", str(MAX_INTERVAL), *args]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=str(self.tmp_path), env={**self.env, **(env or {})},
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.tracker.track(proc)
        beat = WorkerProcess(proc, log_path, argv)
        beat.wait_for_log(STARTING, timeout=30)
        self.beats.append(beat)
        return beat

    def wait_for_leader(self) -> None:
        wait_until(lambda: any(LEADS in b.log() for b in self.beats), timeout=20,
                   message="no beat took the lead")

    def worker(self, *args: str) -> WorkerProcess:
        return self._start_worker(APP, *args, cwd=PROJECT, env=self.env, timeout=40)

    def runs(self, label: str) -> List[Dict[str, Any]]:
        """The runs of the rows sending ``label``, oldest first."""
        out = []
        try:
            text = self.record.read_text()
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            try:
                run = json.loads(line)
            except ValueError:  # a line being written
                continue
            if run["label"] == label:
                out.append(run)
        return out

    def sent_lines(self, name: str) -> int:
        return sum(b.log().count(f"Sending due task {name} ({TASK})") for b in self.beats)

    def send_times(self, name: str) -> List[float]:
        """When any beat sent ``name`` (epoch, from the log lines), oldest first."""
        mark = f"Sending due task {name} ({TASK})"
        out = []
        for beat in self.beats:
            for line in beat.log().splitlines():
                if mark in line:
                    stamp = line[1:line.index(": ")]  # "[2024-05-01 10:00:00,123: INFO..."
                    at = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")  # beat's TZ
                    out.append(at.replace(tzinfo=dt.timezone.utc).timestamp())
        return sorted(out)

    def logs(self) -> str:
        return "\n".join(f"--- {b.log_path.name}\n{tail(b.log(), 30)}" for b in self.beats)

    def close(self) -> None:
        if self._agent is not None:
            self._agent.close()


def _project(database: Dict[str, str], tmp_path: Path, worker_env: Dict[str, str],
             process_tracker: Any, start_worker: Any) -> Any:
    env = dict(worker_env)
    env.update(database)
    env.update(DJANGO_SETTINGS_MODULE=f"{APP}.settings", DJBEAT_RECORD=str(tmp_path / "runs"),
               TZ="UTC",  # the settings' TIME_ZONE: beat logs in it from its first line
               PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(PROJECT), str(REPO_ROOT)]))
    project = Project(env, tmp_path, process_tracker, start_worker)
    project.manage("migrate", "--noinput")
    try:
        yield project
    finally:
        project.close()


@pytest.fixture
def project(database, tmp_path, worker_env, process_tracker, start_worker):
    yield from _project(database, tmp_path, worker_env, process_tracker, start_worker)


@pytest.fixture
def sqlite_project(sqlite_database, tmp_path, worker_env, process_tracker, start_worker):
    yield from _project(sqlite_database, tmp_path, worker_env, process_tracker, start_worker)


def _every(name: str, seconds: int = 1, **fields: str) -> str:
    """ORM code creating a row that sends ``record(name)`` every ``seconds``; ``fields``
    are more fields of the row, as code."""
    fields.setdefault("args", f"json.dumps([{name!r}])")
    extra = "".join(f", {key}={code}" for key, code in fields.items())
    return (f"i = IntervalSchedule.objects.create(every={seconds}, period='seconds')\n"
            f"t = PeriodicTask.objects.create(name={name!r}, task={TASK!r}, interval=i"
            f"{extra})\n"
            "result = t.pk")


def _gaps(times: List[float]) -> List[float]:
    return [round(b - a, 3) for a, b in zip(times, times[1:])]


def _row(project: Project, name: str) -> Dict[str, Any]:
    return project.db(
        f"t = PeriodicTask.objects.get(name={name!r})\n"
        "result = {'enabled': t.enabled, 'total_run_count': t.total_run_count,\n"
        "          'last_run_at': t.last_run_at and t.last_run_at.timestamp()}")


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_two_beats_send_each_due_run_once_and_stop_on_disable_or_delete(project):
    project.worker()
    project.beat("-S", "django")
    project.beat("-S", "django")
    project.wait_for_leader()
    for name in ("clock", "to-disable", "to-delete"):  # created while both beats run
        project.db(_every(name))
    wait_until(lambda: min(len(project.runs(n)) for n in ("to-disable", "to-delete")) >= 4,
               timeout=40, message=f"rows not sent:\n{project.logs()}")

    project.db("t = PeriodicTask.objects.get(name='to-disable'); t.enabled = False; t.save()")
    off = time.time()
    project.db("PeriodicTask.objects.get(name='to-delete').delete()")
    gone = time.time()
    clock = len(project.runs("clock"))
    # long enough past the settling time below for rows still sent to show
    wait_until(lambda: len(project.runs("clock")) >= clock + 5, timeout=30,
               message="the clock row stopped")

    settle = MAX_INTERVAL + 1.5  # the next tick sees the change; one tick may be under way
    assert [t for t in project.send_times("to-disable") if t > off + settle] == []
    assert [t for t in project.send_times("to-delete") if t > gone + settle] == []
    for name in ("clock", "to-disable", "to-delete"):  # never two sends of one due time
        sends = project.send_times(name)  # by either beat: runs are due 1 s after a send
        assert min(_gaps(sends)) > 0.5, (name, _gaps(sends))
    for beat in project.beats:
        assert beat.stop(signal.SIGTERM, timeout=15) == 0
    # every send was counted on its row, once, and ran once
    sent = project.sent_lines("clock")
    wait_until(lambda: len(project.runs("clock")) == sent, timeout=15,
               message="the worker did not run every send")
    row = _row(project, "clock")
    assert row["total_run_count"] == sent == len(project.runs("clock"))
    assert abs(row["last_run_at"] - project.runs("clock")[-1]["at"]) < 2.0, row
    assert project.sent_lines("to-disable") == len(project.runs("to-disable"))
    assert _row(project, "to-disable")["last_run_at"] is None  # cleared when disabled


@pytest.mark.timeout(150)
def test_crontab_row_is_picked_up_with_its_send_options(project):
    project.worker("-Q", "multiq,special")
    project.beat("-S", "multiq.contrib.django.beat.schedulers:DatabaseScheduler")
    project.wait_for_leader()
    minute = (dt.datetime.now(dt.timezone.utc).minute + 30) % 60
    # last ran two hours ago: the hourly run at :<minute> since then is due now, once
    project.db(
        f"c = CrontabSchedule.objects.create(minute='{minute}', hour='*', "
        "timezone='Asia/Shanghai')\n"
        f"PeriodicTask.objects.create(name='cron', task={TASK!r}, crontab=c, "
        "args=json.dumps(['cron']), kwargs=json.dumps({'n': 1}), queue='special', "
        "priority=7, headers=json.dumps({'x-origin': 'db'}), expire_seconds=600, "
        "last_run_at=timezone.now() - dt.timedelta(hours=2))")
    project.db(_every("clock"))
    wait_until(lambda: project.runs("cron"), timeout=30,
               message=f"the crontab row was not sent:\n{project.logs()}")
    clock = len(project.runs("clock"))
    wait_until(lambda: len(project.runs("clock")) >= clock + 4, timeout=30,
               message="the clock row stopped")

    [run] = project.runs("cron")  # the missed run once, the next one is half an hour away
    assert run["kwargs"] == {"n": 1}
    assert run["queue"] == "special"
    assert run["priority"] == 7
    assert (run["headers"] or {}).get("x-origin") == "db", run
    assert run["expires"] is not None, run
    row = _row(project, "cron")
    assert row["total_run_count"] == 1 and row["last_run_at"] >= run["at"] - 5


@pytest.mark.timeout(150)
def test_interval_edit_one_off_clocked_and_start_time(sqlite_project):
    project = sqlite_project
    project.worker()
    project.beat("-S", "django")
    project.wait_for_leader()
    project.db(_every("edit"))
    project.db(_every("once", one_off="True"))
    start = time.time() + 6
    project.db(_every("later",
                      start_time=f"dt.datetime.fromtimestamp({start!r}, dt.timezone.utc)"))
    clocked = time.time() + 4
    project.db(
        f"c = ClockedSchedule.objects.create(clocked_time="
        f"dt.datetime.fromtimestamp({clocked!r}, dt.timezone.utc))\n"
        f"PeriodicTask.objects.create(name='clocked', task={TASK!r}, clocked=c, "
        "one_off=True, args=json.dumps(['clocked']))")
    wait_until(lambda: len(project.runs("edit")) >= 3, timeout=30,
               message=f"the row was not sent:\n{project.logs()}")

    project.db("t = PeriodicTask.objects.get(name='edit')\n"
               "t.interval.every = 4\n"
               "t.interval.save()")  # the schedule row itself, as in the admin
    edited = time.time() + MAX_INTERVAL + 1.5  # the next tick sees it (one may be under way)
    wait_until(lambda: len([t for t in project.send_times("edit") if t > edited]) >= 3,
               timeout=40, message="the edited row stopped")
    after = [t for t in project.send_times("edit") if t > edited]
    assert min(_gaps(after)) > 3.0, _gaps(after)

    assert len(project.runs("once")) == 1
    once = _row(project, "once")
    assert once["enabled"] is False and once["total_run_count"] == 1
    [run] = project.runs("clocked")
    assert run["at"] >= clocked
    assert _row(project, "clocked")["enabled"] is False
    later = project.runs("later")
    assert later and later[0]["at"] >= start, (later[:1], start)


@pytest.mark.timeout(120)
def test_bad_json_row_is_logged_by_name_and_the_others_still_run(sqlite_project):
    project = sqlite_project
    project.worker()
    beat = project.beat(env={"DJBEAT_SCHEDULER": "django"})  # the beat_scheduler setting
    project.wait_for_leader()
    bad = project.db(_every("bad-args", args=repr("[1, 2")))
    project.db(_every("bad-kwargs", kwargs=repr('{"a": }')))
    project.db(_every("good"))
    wait_until(lambda: len(project.runs("good")) >= 3, timeout=30,
               message=f"the good row was not sent:\n{project.logs()}")

    log = beat.log()
    line = f"ERROR/MainProcess] beat: periodic task 'bad-args' (id {bad}) is not scheduled: " \
           "args is not valid JSON"
    assert line in log, log
    assert "periodic task 'bad-kwargs'" in log and "kwargs is not valid JSON" in log, log
    assert project.runs("bad-args") == [] and project.runs("bad-kwargs") == []

    project.db("t = PeriodicTask.objects.get(name='bad-args')\n"
               "t.args = json.dumps(['bad-args']); t.save()")
    wait_until(lambda: project.runs("bad-args"), timeout=20,
               message=f"the fixed row was not sent:\n{project.logs()}")


LEGACY_SCHEMA = """
CREATE TABLE django_celery_beat_intervalschedule (
    id integer PRIMARY KEY, every integer NOT NULL, period varchar(24) NOT NULL);
CREATE TABLE django_celery_beat_crontabschedule (
    id integer PRIMARY KEY, minute varchar(240) NOT NULL, hour varchar(96) NOT NULL,
    day_of_week varchar(64) NOT NULL, day_of_month varchar(124) NOT NULL,
    month_of_year varchar(64) NOT NULL, timezone varchar(63) NOT NULL);
CREATE TABLE django_celery_beat_solarschedule (
    id integer PRIMARY KEY, event varchar(24) NOT NULL, latitude decimal(9, 6) NOT NULL,
    longitude decimal(9, 6) NOT NULL);
CREATE TABLE django_celery_beat_clockedschedule (
    id integer PRIMARY KEY, clocked_time {time} NOT NULL);
CREATE TABLE django_celery_beat_periodictasks (
    ident smallint PRIMARY KEY, last_update {time} NOT NULL);
CREATE TABLE django_celery_beat_periodictask (
    id integer PRIMARY KEY, name varchar(200) NOT NULL UNIQUE, task varchar(200) NOT NULL,
    args text NOT NULL, kwargs text NOT NULL, queue varchar(200) NULL,
    exchange varchar(200) NULL, routing_key varchar(200) NULL, expires {time} NULL,
    enabled boolean NOT NULL, last_run_at {time} NULL, total_run_count integer NOT NULL,
    date_changed {time} NOT NULL, description text NOT NULL,
    crontab_id integer NULL, interval_id integer NULL, solar_id integer NULL,
    one_off boolean NOT NULL, start_time {time} NULL, priority integer NULL,
    headers text NOT NULL, clocked_id integer NULL, expire_seconds integer NULL)
"""
LEGACY_ROWS = """
INSERT INTO django_celery_beat_intervalschedule VALUES (1, 10, 'seconds');
INSERT INTO django_celery_beat_crontabschedule VALUES (1, '0', '*/2', '*', '*', '*',
    'Asia/Shanghai');
INSERT INTO django_celery_beat_solarschedule VALUES (1, 'sunrise', 40.7128, -74.006);
INSERT INTO django_celery_beat_clockedschedule VALUES (1, '2030-01-01 08:00:00');
INSERT INTO django_celery_beat_periodictask VALUES
 (1, 'every-10s', 'app.tasks.add', '[3, 5]', '{"x": 1}', 'special', NULL, NULL, NULL, {true},
  '2024-05-01 10:00:00', 5, '2024-05-01 10:00:00', 'adds', NULL, 1, NULL, {false}, NULL, 3,
  '{"h": 1}', NULL, 60),
 (2, 'cron', 'app.tasks.report', '[]', '{}', NULL, NULL, NULL, NULL, {true}, NULL, 0,
  '2024-05-01 10:00:00', '', 1, NULL, NULL, {false}, NULL, NULL, '{}', NULL, NULL),
 (3, 'sun', 'app.tasks.wake', '[]', '{}', NULL, NULL, NULL, NULL, {true}, NULL, 0,
  '2024-05-01 10:00:00', '', NULL, NULL, 1, {false}, NULL, NULL, '{}', NULL, NULL),
 (4, 'clock', 'app.tasks.once', '[]', '{}', NULL, NULL, NULL, NULL, {true}, NULL, 0,
  '2024-05-01 10:00:00', '', NULL, NULL, NULL, {true}, NULL, NULL, '{}', 1, NULL),
 (5, 'also-10s', 'app.tasks.add', '[1, 1]', '{}', NULL, NULL, NULL, NULL, {false}, NULL, 2,
  '2024-05-01 10:00:00', '', NULL, 1, NULL, {false}, NULL, NULL, '{}', NULL, NULL),
 (6, 'orphan', 'app.tasks.add', '[]', '{}', NULL, NULL, NULL, NULL, {true}, NULL, 0,
  '2024-05-01 10:00:00', '', NULL, NULL, NULL, {false}, NULL, NULL, '{}', NULL, NULL)
"""
IMPORTED = """
from django.db.models import Count
tasks = {t.name: t for t in PeriodicTask.objects.select_related(
    'interval', 'crontab', 'solar', 'clocked')}
e, c, s, k = tasks['every-10s'], tasks['cron'].crontab, tasks['sun'].solar, tasks['clock']
result = {
    'names': sorted(tasks),
    'every': [e.interval.every, e.interval.period, e.args, e.kwargs, e.queue, e.priority,
              e.headers, e.expire_seconds, e.total_run_count, e.description,
              e.last_run_at.isoformat()],
    'cron': [c.minute, c.hour, c.day_of_week, c.timezone],
    'sun': [s.event, float(s.latitude), float(s.longitude)],
    'clock': [k.one_off, k.clocked.clocked_time.isoformat()],
    'also': [tasks['also-10s'].enabled, tasks['also-10s'].interval_id == e.interval_id],
    'counts': [IntervalSchedule.objects.count(), CrontabSchedule.objects.count(),
               SolarSchedule.objects.count(), ClockedSchedule.objects.count()],
}
"""


@pytest.mark.timeout(120)
def test_import_copies_django_celery_beat_rows_once(project):
    schema = (
        "from django.db import connection\n"
        "pg = connection.vendor == 'postgresql'\n"
        "time_type = 'timestamp with time zone' if pg else 'datetime'\n"
        "flags = {'true': 'true' if pg else '1', 'false': 'false' if pg else '0'}\n"
        f"sql = {LEGACY_SCHEMA!r}.replace('{{time}}', time_type) + ';' + "
        f"{LEGACY_ROWS!r}.replace('{{true}}', flags['true']).replace('{{false}}', flags['false'])\n"
        "with connection.cursor() as cursor:\n"
        "    for statement in filter(str.strip, sql.split(';')):\n"
        "        cursor.execute(statement)\n"
        "import importlib.util\n"
        "result = importlib.util.find_spec('django_celery_beat') is None")
    assert project.db(schema) is True  # django-celery-beat is not installed

    first = project.manage("multiq_beat_import")
    assert "5 periodic tasks created, 0 updated, 1 skipped" in first.stdout, first
    assert "skipped 'orphan': no schedule" in first.stderr, first
    again = project.manage("multiq_beat_import")
    assert "0 periodic tasks created, 5 updated, 1 skipped" in again.stdout, again

    got = project.db(IMPORTED)
    assert got["names"] == ["also-10s", "clock", "cron", "every-10s", "sun"]
    assert got["every"] == [10, "seconds", "[3, 5]", '{"x": 1}', "special", 3, '{"h": 1}', 60,
                            5, "adds", "2024-05-01T10:00:00+00:00"]
    assert got["cron"] == ["0", "*/2", "*", "Asia/Shanghai"]
    assert got["sun"] == ["sunrise", pytest.approx(40.7128), pytest.approx(-74.006)]
    assert got["clock"] == [True, "2030-01-01T08:00:00+00:00"]
    assert got["also"] == [False, True]  # disabled stays disabled; one interval row, shared
    assert got["counts"] == [1, 1, 1, 1]  # the second import created nothing


@pytest.mark.timeout(120)
def test_admin_lists_periodic_tasks_and_disables_them(sqlite_project):
    project = sqlite_project
    project.db(_every("listed", 2))
    got = project.db(
        "from django.contrib.auth.models import User\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "client.force_login(User.objects.create_superuser('admin', 'a@example.com', 'pw'))\n"
        "pages = {m: client.get(f'/admin/multiq_beat/{m}/') for m in ('periodictask', "
        "'intervalschedule', 'crontabschedule', 'solarschedule', 'clockedschedule')}\n"
        "before = PeriodicTasks.last_change()\n"
        "pk = PeriodicTask.objects.get(name='listed').pk\n"
        "client.post('/admin/multiq_beat/periodictask/', {'action': 'disable_tasks', "
        "'_selected_action': [pk]})\n"
        "result = {'status': {m: p.status_code for m, p in pages.items()},\n"
        "          'tasks': pages['periodictask'].content.decode(),\n"
        "          'enabled': PeriodicTask.objects.get(pk=pk).enabled,\n"
        "          'marker_moved': PeriodicTasks.last_change() > before}")
    assert set(got["status"].values()) == {200}, got["status"]
    html = got["tasks"]
    assert "listed" in html and "interval: every 2 seconds" in html
    for column in ("name", "enabled", "task", "schedule_display", "last_run_at",
                   "total_run_count"):
        assert f"column-{column}" in html, column
    assert got["enabled"] is False and got["marker_moved"] is True


@pytest.mark.timeout(60)
def test_migrations_are_complete(sqlite_database, tmp_path):
    env = dict(os.environ, **sqlite_database, DJANGO_SETTINGS_MODULE=f"{APP}.settings",
               PYTHONPATH=os.pathsep.join([str(PROJECT), str(REPO_ROOT)]),
               PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "manage.py", "makemigrations", "--check",
                           "--dry-run", "multiq_beat"], cwd=str(PROJECT), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "No changes detected" in done.stdout, done


@pytest.mark.timeout(60)
def test_unknown_scheduler_is_a_clear_error(sqlite_database, worker_env, tmp_path):
    env = dict(worker_env, **sqlite_database, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(PROJECT), str(REPO_ROOT)]))
    try:
        done = subprocess.run([sys.executable, "-m", "multiq", "-A", APP, "beat", "-S",
                               "nosuch.module:Scheduler"], cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("beat started with an unknown scheduler")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Unknown beat scheduler 'nosuch.module:Scheduler'" in done.stderr, done.stderr
