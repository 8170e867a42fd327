"""pytest fixtures to test multiq tasks against a real Redis and a real worker node.

Installed as the ``multiq`` pytest plugin (a ``pytest11`` entry point) and inactive until a
test asks for one of its fixtures: it adds no options and no hooks, imports neither Redis
nor the worker, and starts nothing for a project that does not use it (``-p no:multiq``
leaves it out altogether; with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, ``-p multiq`` loads it).

- ``multiq_redis`` (session): a private ``redis-server`` on a free loopback port in a temp
  dir, no persistence, stopped at the end; its URL, ``redis://127.0.0.1:<port>``. The binary
  is ``$MULTIQ_TEST_REDIS_SERVER``, else ``redis-server`` / ``valkey-server`` on PATH.
  Override it to use a Redis of your own (databases 1 to 4 are the fixtures', flushed).
- ``multiq_config``: settings merged into the test app (``{}``; override to change them).
- ``multiq_project_app``: the app to test; ``None`` makes a fresh ``MultiQ`` for each test.
  Override it to return your project's app: it is pointed at the private Redis for the
  test and restored afterwards.
- ``multiq_app``: that app, broker on db 1 and results on db 2 of ``multiq_redis``, both
  flushed before the test; current while it runs.
- ``multiq_worker``: a worker node in a thread of the test process (so tasks defined in a
  test module run), consuming before the test starts, stopped warm after it:
  ``.hostname``, ``.wait_for_task(result_or_id, timeout)``.
- ``multiq_worker_parameters``: keyword arguments of that node (``pool``: ``"solo"`` or
  ``"threads"``, ``concurrency``, ``queues``, ``hostname``, ``ready_timeout``,
  ``stop_timeout``).
- ``multiq_session_config``, ``multiq_session_app``, ``multiq_session_worker``: the same
  for a whole session: a fresh app on databases 3 and 4, flushed once, when it is made.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

import pytest


@pytest.fixture(scope="session")
def multiq_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a private redis-server for the session (``redis://127.0.0.1:<port>``)."""
    from multiq.contrib.testing.server import RedisServer, RedisServerError, find_binary

    server, why = None, ""
    try:
        server = RedisServer(find_binary(), tmp_path_factory.mktemp("multiq-redis"))
        server.start()
    except RedisServerError as exc:
        why = str(exc)
    if server is None or why:
        pytest.fail(why, pytrace=False)  # (outside the except: the message only once)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def multiq_config() -> Dict[str, Any]:
    """Settings merged into ``multiq_app`` (after the Redis URLs): override to set some."""
    return {}


@pytest.fixture
def multiq_project_app() -> Optional[Any]:
    """The app ``multiq_app`` configures: ``None``, a fresh one; override to return yours."""
    return None


@pytest.fixture
def multiq_app(multiq_redis: str, multiq_config: Dict[str, Any],
               multiq_project_app: Optional[Any]) -> Iterator[Any]:
    """The test's app on ``multiq_redis`` (broker db 1, results db 2, flushed first)."""
    from multiq.contrib.testing import app

    settings = app.settings_for(multiq_redis, multiq_config)
    with app.configured(multiq_redis, settings, multiq_project_app) as configured:
        yield configured


@pytest.fixture
def multiq_worker_parameters() -> Dict[str, Any]:
    """Keyword arguments of ``multiq_worker``'s node (``pool`` is ``"solo"`` unless set)."""
    return {}


@pytest.fixture
def multiq_worker(multiq_app: Any, multiq_worker_parameters: Dict[str, Any]) -> Iterator[Any]:
    """A worker node of ``multiq_app`` in a thread, ready before the test, stopped after."""
    yield from _worker(multiq_app, multiq_worker_parameters)


@pytest.fixture(scope="session")
def multiq_session_config() -> Dict[str, Any]:
    """Settings merged into ``multiq_session_app``: override (session scope) to set some."""
    return {}


@pytest.fixture(scope="session")
def multiq_session_app(multiq_redis: str, multiq_session_config: Dict[str, Any]
                       ) -> Iterator[Any]:
    """A fresh app for the session (broker db 3, results db 4), flushed once, when made."""
    from multiq.contrib.testing import app

    settings = app.settings_for(multiq_redis, multiq_session_config, app.SESSION_DBS)
    with app.configured(multiq_redis, settings, dbs=app.SESSION_DBS) as configured:
        yield configured


@pytest.fixture(scope="session")
def multiq_session_worker(multiq_session_app: Any) -> Iterator[Any]:
    """A worker node of ``multiq_session_app`` (solo pool) for the whole session."""
    yield from _worker(multiq_session_app, {})


def _worker(app: Any, parameters: Dict[str, Any]) -> Iterator[Any]:
    from multiq.contrib.testing.worker import WorkerThread, WorkerThreadError

    node, why = None, ""
    try:
        node = WorkerThread(app, **parameters).start()
    except (WorkerThreadError, ValueError) as exc:
        why = f"multiq_worker: {exc}"
    if node is None or why:
        pytest.fail(why, pytrace=False)
    try:
        yield node
    finally:
        node.stop()
