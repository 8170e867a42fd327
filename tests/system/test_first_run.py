"""What a new user meets first: the errors of a worker without a broker or with ``-A`` given
a file name, and the broker URL of ``MULTIQ_BROKER_URL`` reaching the client program too."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict

import pytest
from helpers import REPO_ROOT, free_port

NO_BROKER_APP = textwrap.dedent("""
    from multiq import MultiQ

    app = MultiQ("fresh")


    @app.task
    def add(x, y):
        return x + y
""")


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIQ_")}
    env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def _multiq(cwd: Path, *args: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "multiq", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command", [["worker", "-l", "info"], ["beat"], ["inspect", "ping"],
                                     ["events", "--dump"], ["call", "main.add"]])
def test_no_broker_is_one_line_naming_the_three_ways(tmp_path: Path, command: list) -> None:
    (tmp_path / "main.py").write_text(NO_BROKER_APP)
    done = _multiq(tmp_path, "-A", "main", *command, env=_env())
    assert done.returncode == 78, done.stderr
    assert done.stdout == ""  # no banner before the error
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for way in ("-b", "MULTIQ_BROKER_URL", "broker_url"):
        assert way in lines[0]


def test_app_given_as_a_file_suggests_the_module(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(NO_BROKER_APP)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "__init__.py").write_text("")
    (tmp_path / "proj" / "tasks.py").write_text(NO_BROKER_APP)
    for given, hint in (("main.py", "use -A main"), ("proj/tasks.py", "use -A proj.tasks")):
        done = _multiq(tmp_path, "-A", given, "worker", env=_env())
        assert done.returncode == 2
        assert hint in done.stderr, done.stderr
        assert "AttributeError" not in done.stderr


def test_the_client_program_follows_multiq_broker_url_too(
        tmp_path: Path, start_worker, worker_env: Dict[str, str]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"  # what main.py says: nothing listens there
    (tmp_path / "main.py").write_text(textwrap.dedent(f"""
        from multiq import MultiQ

        app = MultiQ("prec", broker="{dead}/1", backend="{dead}/2")


        @app.task
        def add(x, y):
            return x + y
    """))
    start_worker("main", cwd=tmp_path)  # worker_env: the test's Redis in MULTIQ_*
    client = subprocess.run(
        [sys.executable, "-c", "from main import add; print(add.delay(2, 3).get(timeout=10))"],
        cwd=tmp_path, env=dict(worker_env, PYTHONPATH=str(REPO_ROOT)), capture_output=True,
        text=True, timeout=30)
    assert client.returncode == 0, client.stderr
    assert client.stdout.strip() == "5"


def test_a_second_node_of_the_same_name_warns(tmp_path: Path, start_worker) -> None:
    (tmp_path / "main.py").write_text(NO_BROKER_APP)  # the broker comes from worker_env
    first = start_worker("main", cwd=tmp_path, hostname="twin@%h")
    second = start_worker("main", cwd=tmp_path, hostname="twin@%h")
    log = second.log()
    assert "Another node named twin@" in log and f"(pid {first.pid})" in log, log
    assert "-n" in log
    third = start_worker("main", cwd=tmp_path, hostname="other@%h")
    assert "Another node named" not in third.log() + first.log()
