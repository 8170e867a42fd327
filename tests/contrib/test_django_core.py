"""A Django project on multiq: the seed 002 layout with the names changed.

The project in ``djproject/`` (``myproject/multiq.py`` holding ``app = MultiQ("myproject")``
configured from ``django.conf:settings`` with the ``MULTIQ`` namespace, ``from .multiq import
app as multiq_app`` in ``myproject/__init__.py``, an ``app01`` whose ``tasks.py`` imports
its models at the top, a view that calls ``add.delay(3, 4)``) is copied into ``tmp_path``
and run as a user runs it: ``multiq -A myproject worker`` in the project directory,
``python manage.py shell -c ...`` to send. Its database is SQLite in ``tmp_path`` or, when a
server answers on 127.0.0.1:5432, a PostgreSQL database made for the test and dropped
after it; the settings read the Redis URLs and the database from ``DJP_*`` variables.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import types
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from helpers import REPO_ROOT, ProcessTracker, WorkerProcess, tail, wait_until

from multiq import MultiQ

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "djproject"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
# the project's URLs come from its Django settings, not from the fixtures' variables
OWN_URLS = {"MULTIQ_BROKER_URL": "", "MULTIQ_RESULT_BACKEND": ""}
START = 90.0  # a node's start-up, Django included, on a loaded box


# -- databases -------------------------------------------------------------------------------


def _pg_admin() -> Any:
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(**PG, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers on {PG['host']}:{PG['port']}: {exc}")


@pytest.fixture
def pg_admin() -> Iterator[Any]:
    """A connection to the server's ``test`` database (autocommit), for administration."""
    conn = _pg_admin()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def pg_database(pg_admin: Any) -> Iterator[str]:
    """The name of a PostgreSQL database of this test's own, dropped at teardown."""
    from psycopg import sql

    name = f"mq_djcore_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Dict[str, str]:
    """The project's database settings: SQLite in tmp_path, or a PostgreSQL database."""
    if request.param == "sqlite":
        return {"DJP_DB_ENGINE": "sqlite", "DJP_DB_NAME": str(tmp_path / "db.sqlite3")}
    return {"DJP_DB_ENGINE": "postgresql", "DJP_DB_NAME": request.getfixturevalue("pg_database")}


# -- the project -----------------------------------------------------------------------------


class Project:
    """The test project copied into tmp_path, its environment, and ways to run it."""

    def __init__(self, path: Path, env: Dict[str, str], tracker: ProcessTracker) -> None:
        self.path, self.env, self.tracker = path, env, tracker
        self.engine = env["DJP_DB_ENGINE"]

    def run(self, *argv: str, timeout: float = 120.0) -> str:
        """Run a program in the project directory; its stdout (it must succeed)."""
        done = subprocess.run(list(argv), cwd=str(self.path), env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{tail(done.stderr)}"
        return done.stdout

    def shell(self, code: str) -> Any:
        """``python manage.py shell -c code``; the JSON the code printed after ``RESULT``."""
        out = self.run(sys.executable, "manage.py", "shell", "-c", code)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        assert lines, out
        return json.loads(lines[-1][len("RESULT "):])

    def node(self, *args: str, pool: str = "solo") -> WorkerProcess:
        """``multiq -A myproject worker -l info -P pool`` (the installed command), ready."""
        script = Path(sys.executable).with_name("multiq")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "multiq"]
        argv = [*command, "-A", "myproject", "worker", "-l", "info", "-P", pool,
                "-n", f"dj{uuid.uuid4().hex[:6]}@%h", *args]
        log_path = self.path.parent / f"node-{uuid.uuid4().hex[:6]}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=str(self.path), env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.tracker.track(proc)
        node = WorkerProcess(proc, log_path, argv)
        node.wait_for_log(" ready.", timeout=START)
        return node

    def notes(self) -> List[str]:
        return self.shell("import json\nfrom app01.models import Note\n"
                          "print('RESULT ' + json.dumps(list(Note.objects.order_by('id')"
                          ".values_list('text', flat=True))))")


@pytest.fixture
def make_project(tmp_path: Path, worker_env: Dict[str, str],
                 process_tracker: ProcessTracker) -> Any:
    """``make_project(database_env, **env)``: the project copied, its database migrated."""

    def make(db: Dict[str, str], **env: str) -> Project:
        path = tmp_path / "djproject"
        shutil.copytree(PROJECT, path, ignore=shutil.ignore_patterns("__pycache__"))
        full = {**worker_env, **OWN_URLS, **db, **env,
                "DJP_BROKER_URL": worker_env["MULTIQ_BROKER_URL"],
                "DJP_RESULT_BACKEND": worker_env["MULTIQ_RESULT_BACKEND"],
                "DJP_PROBE_FILE": str(tmp_path / "probe.jsonl"),
                "PYTHONPATH": os.pathsep.join([str(path), str(REPO_ROOT)])}
        full.pop("DJANGO_SETTINGS_MODULE", None)
        project = Project(path, full, process_tracker)
        project.run(sys.executable, "manage.py", "migrate", "--noinput")
        return project

    return make


def _probe(path: Path) -> Dict[str, Any]:
    """What probe.py recorded in the node's main process, by event."""
    return {r["event"]: r for r in map(json.loads, path.read_text().splitlines())}


def _stop(node: WorkerProcess) -> str:
    assert node.stop(timeout=60) == 0, tail(node.log())
    log = node.log()
    assert "Traceback" not in log, tail(log)
    return log


# -- the seed project, end to end -------------------------------------------------------------

SEND_AND_READ = """
import json
from django.test import Client
from app01.tasks import add, write_note
from myproject.multiq import app

client = Client()
sent_by_view = json.loads(client.get("/add/").content)["task_id"]
note = write_note.delay("written by a task").get(timeout=60)
print("RESULT " + json.dumps({
    "add": add.delay(3, 4).get(timeout=60),
    "view": app.AsyncResult(sent_by_view).get(timeout=60),
    "note": note,
    "notes": json.loads(client.get("/notes/").content)["notes"],
}))
"""


@pytest.mark.system
@pytest.mark.timeout(240)
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_seed_project_runs_with_the_names_changed(make_project: Any, database: Dict[str, str],
                                                  pool: str) -> None:
    project = make_project(database)
    node = project.node("-c", "2", pool=pool)
    assert "app01.tasks.write_note" in node.log()  # tasks.py imports its models at the top

    seen = project.shell(SEND_AND_READ)
    assert seen["add"] == 7
    assert seen["view"] == 7  # the view's add.delay(3, 4)
    assert seen["notes"] == ["written by a task"]  # the task's row, read by the view
    if pool == "solo":
        assert seen["note"]["pid"] == node.pid
    else:
        assert seen["note"]["pid"] != node.pid  # written by a pool child
    _stop(node)


@pytest.mark.system
@pytest.mark.timeout(150)
def test_a_tasks_module_importing_models_does_not_stop_the_node(make_project: Any,
                                                               tmp_path: Path,
                                                               make_app: Any) -> None:
    project = make_project({"DJP_DB_ENGINE": "sqlite",
                            "DJP_DB_NAME": str(tmp_path / "db.sqlite3")})
    node = project.node()
    log = node.log()
    for name in ("app01.tasks.add", "app01.tasks.write_note", "myproject.multiq.debug_task"):
        assert f"  . {name}\n" in log, log
    result = make_app().send_task("app01.tasks.write_note", ["from the test"])
    assert result.get(timeout=60)["id"] == 1
    _stop(node)
    assert project.notes() == ["from the test"]


@pytest.mark.system
@pytest.mark.timeout(150)
def test_beat_sends_the_schedule_of_the_django_settings(make_project: Any, tmp_path: Path,
                                                       process_tracker: ProcessTracker) -> None:
    db_path = tmp_path / "db.sqlite3"
    project = make_project({"DJP_DB_ENGINE": "sqlite", "DJP_DB_NAME": str(db_path)},
                           DJP_BEAT="1")
    node = project.node()
    with open(tmp_path / "beat.log", "ab") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "multiq", "-A", "myproject", "beat", "-l", "info",
             "--max-interval", "1"], cwd=str(project.path), env=project.env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    process_tracker.track(beat)

    def beat_notes() -> int:
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()
        with sqlite3.connect(str(db_path), timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM app01_note WHERE text = ?",
                                    ("from beat",)).fetchone()[0])

    wait_until(beat_notes, timeout=60, message="no note written by beat's task")
    beat.send_signal(signal.SIGTERM)
    assert beat.wait(timeout=30) == 0, (tmp_path / "beat.log").read_text()
    _stop(node)


# -- settings --------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_namespace_reads_django_settings_lazily_and_without_secret_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import LazySettings

    name = f"djcore_settings_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    module.MULTIQ_BROKER_URL = "redis://django:1/1"  # type: ignore[attr-defined]
    module.MULTIQ_TASK_DEFAULT_QUEUE = "from-django"  # type: ignore[attr-defined]
    module.BROKER_URL = "redis://not-this:1/1"  # type: ignore[attr-defined]
    module.DEBUG = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)  # no SECRET_KEY at all
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", name)
    settings = LazySettings()

    app = MultiQ("proj", set_as_current=False)
    app.config_from_object(settings, namespace="MULTIQ")
    assert not settings.configured  # read when first needed, not now
    assert app.conf.broker_url == "redis://django:1/1"
    assert settings.configured
    assert app.conf.task_default_queue == "from-django"
    assert "debug" not in app.conf


@pytest.mark.timeout(30)
def test_setting_names_are_chosen_before_any_value_is_read() -> None:
    class Strict:
        MULTIQ_RESULT_EXPIRES = 60
        result_expires = 30

        @property
        def SECRET_KEY(self) -> str:  # noqa: N802 - a Django-style name
            raise RuntimeError("SECRET_KEY must not be read")

        @property
        def DEBUG(self) -> bool:  # noqa: N802
            raise RuntimeError("DEBUG must not be read")

    app = MultiQ("proj", set_as_current=False)
    app.config_from_object(Strict(), namespace="MULTIQ")
    assert app.conf.result_expires == 60
    plain = MultiQ("proj", set_as_current=False)
    plain.config_from_object(Strict())
    assert plain.conf.result_expires == 30


@pytest.mark.timeout(60)
def test_django_conf_settings_in_a_project_without_secret_key(tmp_path: Path) -> None:
    (tmp_path / "nosecret.py").write_text(
        "INSTALLED_APPS = []\nMULTIQ_BROKER_URL = 'redis://from-settings:1/1'\n")
    code = (
        "import sys\n"
        "from multiq import MultiQ\n"
        "app = MultiQ('proj')\n"
        "app.config_from_object('django.conf:settings', namespace='MULTIQ')\n"
        "from django.conf import settings\n"
        "before = settings.configured\n"
        "print(before, app.conf.broker_url, settings.configured,\n"
        "      type(app.django_fixup).__name__, app.task_cls.__name__)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "nosecret",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "redis://from-settings:1/1", "True",
                                   "DjangoFixup", "DjangoTask"]


@pytest.mark.timeout(60)
def test_an_app_of_a_django_project_imports_django_only_when_used(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from multiq import MultiQ\n"
        "app = MultiQ('proj', broker='redis://127.0.0.1:1/1')\n"
        "@app.task\n"
        "def add(x, y):\n"
        "    return x + y\n"
        "print(app.django_fixup is not None, type(add).__mro__[1].__name__,\n"
        "      sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "myproject.settings",
           "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "DjangoTask", "[]"]


# -- sending on commit -----------------------------------------------------------------------


@pytest.mark.system
@pytest.mark.timeout(120)
def test_delay_on_commit_sends_after_commit_only(make_project: Any,
                                                database: Dict[str, str]) -> None:
    project = make_project(database)
    steps = json.loads(project.run(sys.executable, "oncommit_check.py").splitlines()[-1])
    assert steps["django_task"] is True  # the project's tasks are DjangoTasks
    # rolled back: nothing sent, ever
    assert steps["rollback_returns"] is None
    assert steps["rollback_inside"] == 0 and steps["rollback_after"] == 0
    # committed: nothing while the transaction is open, each once after the commit
    assert steps["apply_async_returns"] is None
    assert steps["commit_inside"] == 0
    assert steps["commit_after"] == 1
    assert steps["commit_after_other"] == 1  # apply_async_on_commit's options kept
    # no transaction: sent at once
    assert steps["outside_returns"] is None
    assert steps["outside_after"] == 2
    assert project.notes() == ["committed"]


# -- database hygiene ------------------------------------------------------------------------


@pytest.mark.system
@pytest.mark.timeout(240)
def test_recycled_prefork_children_reach_the_database(make_project: Any,
                                                      database: Dict[str, str],
                                                      make_app: Any, tmp_path: Path) -> None:
    # persistent connections, and a main process that holds one when the pool forks
    project = make_project(database, DJP_CONN_MAX_AGE="none")
    node = project.node("-c", "1", "--max-tasks-per-child", "1", "-I", "probe",
                        pool="prefork")
    app = make_app()
    done = [app.send_task("app01.tasks.write_note", [f"note {i}"]).get(timeout=60)
            for i in range(4)]
    _stop(node)

    pids = [d["pid"] for d in done]
    assert len(set(pids)) == 4 and node.pid not in pids  # a new child for each task
    assert sorted(project.notes()) == [f"note {i}" for i in range(4)]
    probe = _probe(tmp_path / "probe.jsonl")
    assert probe["start"]["pid"] == probe["shutdown"]["pid"] == node.pid
    if project.engine == "postgresql":
        parent = probe["start"]["value"]
        assert isinstance(parent, int), probe
        sessions = [d["session"] for d in done]
        assert parent not in sessions, "a child used the connection of the main process"
        assert len(set(sessions)) == 4
        # the children closed what they inherited without ending the main process's session
        assert probe["shutdown"]["value"] == parent, probe
    else:
        assert probe["start"]["value"] == 0 and probe["shutdown"]["value"] == 4, probe


@pytest.mark.system
@pytest.mark.timeout(180)
@pytest.mark.parametrize("connections", ["per-task", "persistent"])
def test_a_task_after_the_server_closed_the_connection_succeeds(
        make_project: Any, pg_database: str, pg_admin: Any, make_app: Any,
        connections: str) -> None:
    env = {"DJP_CONN_MAX_AGE": "600", "DJP_HEALTH_CHECKS": "1"} \
        if connections == "persistent" else {}
    project = make_project({"DJP_DB_ENGINE": "postgresql", "DJP_DB_NAME": pg_database}, **env)
    node = project.node()
    app = make_app()

    def write(text: str) -> Dict[str, Any]:
        return app.send_task("app01.tasks.write_note", [text]).get(timeout=60)  # type: ignore[no-any-return]

    first = write("before")
    killed = pg_admin.execute("SELECT pg_terminate_backend(%s)",
                              (first["session"],)).fetchone()[0]
    if connections == "persistent":
        assert killed, "the node's persistent connection should still have been open"

    def gone() -> bool:
        row = pg_admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                               (first["session"],)).fetchone()
        return row[0] == 0

    wait_until(gone, timeout=30, message="the terminated session is still listed")
    second = write("after")
    assert second["session"] != first["session"]
    _stop(node)
    assert project.notes() == ["before", "after"]
