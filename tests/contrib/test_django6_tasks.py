"""The ``django.tasks`` backend against Django 6's own framework, in Python 3.12+.

The suite's interpreter may be older than Django 6 allows, so this builds a virtualenv of
its own (once, cached in ``<repo>/.venv-django6/`` and rebuilt when setup.cfg or
pyproject.toml change) from a Python 3.12+ found on this machine (``PYTHON312``, else
``python3.12`` / ``python3.13`` on PATH, else pyenv's), with ``Django>=6.0,<7``,
``redis[hiredis]`` and multiq itself. ``django6_driver.py`` runs in it against the
project of ``test_django_tasks.py`` (``djtasks_project/``): it enqueues, a real
``multiq worker`` of that venv runs the tasks, the driver reads the results back and
prints them as JSON, which the tests check.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from helpers import REPO_ROOT, WorkerProcess, tail

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "djtasks_project"
DRIVER = HERE / "django6_driver.py"
CACHE = REPO_ROOT / ".venv-django6"
REQUIREMENTS = ("Django>=6.0,<7", "redis[hiredis]")
BUILD_TIMEOUT = 420.0  # seconds for venv + pip on a slow, loaded machine
DRIVER_TIMEOUT = 120.0
TEST_TIMEOUT = int(BUILD_TIMEOUT + 2 * DRIVER_TIMEOUT + 60)  # the first test builds
RUN = "multiq.contrib.django.tasks.run"
PROBE = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"


# -- the interpreter and its venv ----------------------------------------------------------


def _version(python: str) -> Optional[str]:
    """``"3.12"`` etc. when ``python`` runs and can make a venv, else None."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _candidates() -> List[str]:
    explicit = os.environ.get("PYTHON312")
    if explicit:
        return [explicit]
    found = [p for p in map(shutil.which, ("python3.12", "python3.13")) if p]
    # A pyenv shim fails unless its version is selected; the interpreters behind it run.
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for minor in ("3.12", "3.13"):
        found += sorted(str(p) for p in versions.glob(f"{minor}*/bin/python{minor}"))
    return found


def find_python() -> Any:
    """(path, "3.x") of the first Python 3.12+ that runs, else (None, why not)."""
    tried = []
    for python in _candidates():
        version = _version(python)
        if version and tuple(map(int, version.split("."))) >= (3, 12):
            return python, version
        tried.append(f"{python} ({version or 'does not run'})")
    return None, "no Python 3.12+ runs here (set PYTHON312); tried: " + (
        ", ".join(tried) or "nothing on PATH")


def _stamp(python: str) -> str:
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((REPO_ROOT / name).read_bytes())
    digest.update("\n".join((python, *REQUIREMENTS)).encode())
    return digest.hexdigest()


def _run(argv: List[str], what: str) -> None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                             stdin=subprocess.DEVNULL, cwd=str(REPO_ROOT))
    except subprocess.TimeoutExpired as exc:
        said = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else exc.stdout or ""
        pytest.fail(f"{what} took more than {BUILD_TIMEOUT:.0f}s:\n{tail(said)}",
                    pytrace=False)
    if out.returncode != 0:
        pytest.fail(f"{what} failed ({out.returncode}):\n{tail(out.stdout + out.stderr)}",
                    pytrace=False)


def build_venv(python: str, version: str) -> Path:
    """The venv's python: built (or rebuilt) unless its stamp matches."""
    CACHE.mkdir(exist_ok=True)
    venv = CACHE / f"py{version}"
    stamp = venv / ".multiq-install-stamp"
    want = _stamp(python)
    with open(CACHE / ".lock", "w") as lock:  # another session may be building it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text().strip() == want:
            return venv / "bin" / "python"
        shutil.rmtree(venv, ignore_errors=True)
        _run([python, "-m", "venv", str(venv)], f"{python} -m venv")
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
              "--disable-pip-version-check", "--no-input", *REQUIREMENTS,
              "-e", str(REPO_ROOT)], "pip install of Django 6 and multiq")
        stamp.write_text(want + "\n")
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def django6_python() -> Path:
    """The python of the Django 6 venv (the test skips when no Python 3.12+ runs)."""
    python, version = find_python()
    if python is None:
        pytest.skip(version)
    return build_venv(python, version)


# -- the project in that venv --------------------------------------------------------------


@pytest.fixture
def project_env(worker_env: Dict[str, str], tmp_path: Path) -> Dict[str, str]:
    """Environment of the driver and the worker: the project, its SQLite file, Redis."""
    env = {k: v for k, v in worker_env.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(DJANGO_SETTINGS_MODULE="djt_settings", PYTHONPATH=str(PROJECT),
               DJT_DB=str(tmp_path / "db.sqlite3"), PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.fixture
def driver(django6_python: Path, project_env: Dict[str, str]) -> Any:
    """``driver(scenario, phase, given=None)``: the driver's JSON output."""

    def run(scenario: str, phase: str, given: Any = None) -> Dict[str, Any]:
        out = subprocess.run(
            [str(django6_python), str(DRIVER), scenario, phase], cwd=str(PROJECT),
            env=project_env, input=json.dumps(given), capture_output=True, text=True,
            timeout=DRIVER_TIMEOUT)
        assert out.returncode == 0, f"driver {scenario} {phase}:\n{tail(out.stderr)}"
        return dict(json.loads(out.stdout))

    return run


@pytest.fixture
def worker(django6_python: Path, project_env: Dict[str, str], process_tracker: Any,
           tmp_path: Path) -> Any:
    """Factory: a ``multiq worker`` of the project run by the Django 6 venv's python."""

    def start(*args: str) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        argv = [str(django6_python), "-m", "multiq", "-A", "djt_app", "worker", "-l", "info",
                "-P", "solo", "-n", f"w{len(started) + 1}@%h", *args]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=str(PROJECT), env=project_env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        process_tracker.track(proc)
        node = WorkerProcess(proc, log_path, argv)
        started.append(node)
        node.wait_for_log("ready", timeout=60)
        return node

    started: List[WorkerProcess] = []
    return start


def when(text: Optional[str]) -> dt.datetime:
    assert text is not None
    return dt.datetime.fromisoformat(text)


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT)
def test_django6_tasks_run_on_a_worker_and_come_back_with_their_results(
        driver: Any, worker: Any) -> None:
    before = driver("results", "enqueue")
    assert before["python"] >= [3, 12] and before["django"].startswith("6.")
    assert before["backend"] == {"class": "multiq.contrib.django.tasks.MultiQBackend",
                                 "supports_defer": True, "supports_async_task": True,
                                 "supports_get_result": True, "supports_priority": True}
    for name in ("enqueued", "async_enqueued", "waiting", "awaited"):
        seen = before[name]
        assert seen["status"] == "READY", name
        assert seen["status_type"] == "django.tasks.base.TaskResultStatus"
        assert seen["enqueued_at"] is not None and seen["worker_ids"] == []
        assert seen["return_value_error"] == "Task has not finished yet"
    assert before["waiting"]["args"] == [2, 3] and before["awaited"]["args"] == [20, 22]
    assert before["waiting"]["enqueued_at"] == before["enqueued"]["enqueued_at"]
    assert before["missing"]["raised"] == "django.tasks.exceptions.TaskResultDoesNotExist"
    assert before["bad_queue"]["raised"] == "django.tasks.exceptions.InvalidTask"
    assert "nowhere" in before["bad_queue"]["message"]
    assert before["mismatch"]["raised"] == "django.tasks.exceptions.TaskResultMismatch"

    node = worker()
    after = driver("results", "collect", before["ids"])

    added = after["add"]
    assert added["status"] == "SUCCESSFUL" and added["return_value"] == 5
    assert added["errors"] == [] and added["is_finished"]
    assert added["attempts"] == 1 and added["worker_ids"][0].startswith("w1@")
    assert when(added["enqueued_at"]) <= when(added["started_at"]) \
        <= when(added["finished_at"])
    assert added["last_attempted_at"] == added["started_at"]
    assert after["async_add"]["status"] == "SUCCESSFUL"
    assert after["async_add"]["return_value"] == 42
    assert after["whoami"]["return_value"] == {
        "tag": "me", "id": before["ids"]["whoami"], "attempt": 1, "status": "RUNNING"}

    failed = after["explode"]
    assert failed["status"] == "FAILED" and failed["is_finished"]
    assert failed["return_value_error"] == "Task failed"
    assert failed["finished_at"] is not None and failed["attempts"] == 1
    [error] = failed["errors"]
    assert error["exception_class_path"] == error["exception_class"] == "djt_tasks.Boom"
    assert "raise Boom(text)" in error["traceback"] and "Boom: kaboom" in error["traceback"]
    assert RUN in node.log() and before["ids"]["add"] in node.log()


@pytest.mark.timeout(TEST_TIMEOUT)
def test_django6_priority_queue_and_run_after_map_onto_multiq(driver: Any,
                                                              worker: Any) -> None:
    before = driver("mapping", "enqueue")
    ids = before["ids"]
    streams = before["streams"]
    assert [m["id"] for m in streams["multiq:q:{multiq}:0"]] == [ids["low"]]
    assert [m["id"] for m in streams["multiq:q:{multiq}:4"]] == [ids["usual"]]
    assert streams["multiq:q:{high}:9"] == [{"id": ids["high"], "task": RUN}]
    due = when(before["due"])
    [(_, score)] = before["delayed"]
    assert abs(score - due.timestamp()) < 0.01
    assert before["later"]["status"] == "READY"
    assert when(before["later"]["task"]["run_after"]) == due

    worker("-Q", "multiq,high")
    after = driver("mapping", "collect", ids)

    assert {name: r["status"] for name, r in after.items() if name in ids} == dict.fromkeys(
        ids, "SUCCESSFUL")
    assert [after[n]["return_value"] for n in ("low", "usual", "high", "later")] == \
        [3, 7, 42, 11]
    assert after["high"]["task"] == {"path": "djt_tasks.urgent", "priority": 100,
                                     "queue_name": "high", "run_after": None}
    assert after["low"]["task"]["priority"] == -100
    assert when(after["later"]["started_at"]) >= due
    assert when(after["later"]["task"]["run_after"]) == due
