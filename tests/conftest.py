"""Fixtures for all suites: a real redis-server per session, a clean database per
test, app and worker factories that clean up after themselves by pid.

Redis: one ``redis-server`` (or ``valkey-server``; see ``helpers.find_redis_server``)
on a free loopback port for the whole session. ``redis_url`` (db 1, the broker)
and ``backend_url`` (db 2, results) come after a ``FLUSHALL``.

Workers: ``start_worker("app_module", "-Q", "images", cwd=tmp_path)`` runs
``python -m multiq -A app_module worker -l info -P solo -n wN@%h -Q images``
and waits for ``ready`` in its log; whatever is still alive at teardown is
killed with its descendants.

Topologies (``topologies.py``): ``redis_cluster`` (3 masters, 3 replicas) and
``redis_sentinel`` (master, replica, 3 sentinels) are started once per session;
``cluster_url`` / ``sentinel_url`` flush them first. Tests that kill nodes use
``fresh_cluster`` / ``fresh_sentinel``, private to the test.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import (  # noqa: E402
    REPO_ROOT,
    ProcessTracker,
    RedisServer,
    WorkerProcess,
    find_redis_server,
    start_worker_process,
    wait_until,
)
from redis_features import CLUSTER_FIXTURES, features  # noqa: E402
from topologies import ClusterTopology, SentinelTopology  # noqa: E402

BROKER_DB = 1
BACKEND_DB = 2

# These win over an app's own URLs (as Celery's CELERY_BROKER_URL does): one exported in the
# shell must not send the tests' apps to that Redis. Subprocesses get the test's own.
for _name in ("MULTIQ_BROKER_URL", "MULTIQ_RESULT_BACKEND"):
    os.environ.pop(_name, None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip, with the reason, a test that needs what the tests' redis-server lacks: a
    cluster (``cluster`` mark or fixture) or ``acl`` Redis 7+, ``tls`` a build with TLS."""
    needs = {
        "cluster": item.get_closest_marker("cluster") is not None or bool(
            CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ()))),
        "acl": item.get_closest_marker("acl") is not None,
        "tls": item.get_closest_marker("tls") is not None,
    }
    if not any(needs.values()):
        return
    try:
        found = features(find_redis_server())
    except (FileNotFoundError, OSError):
        return  # the fixtures fail with the reason
    reasons = {"cluster": found.cluster_skip(), "acl": found.acl_skip(),
               "tls": found.tls_skip()}
    for what, needed in needs.items():
        if needed and reasons[what]:
            pytest.skip(reasons[what])


@pytest.fixture(autouse=True)
def _keep_time_zone() -> Iterator[None]:
    """The test process's time zone outlives no test: Django sets ``TZ`` (and calls
    ``tzset``) to its settings' ``TIME_ZONE`` when it reads them, America/Chicago by
    default, and the tests that follow would read local times in it."""
    before = os.environ.get("TZ")
    yield
    if os.environ.get("TZ") != before:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(name="wait_until")
def _wait_until() -> Any:
    """``helpers.wait_until`` as a fixture, for tests that prefer not to import it."""
    return wait_until


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server: ``.host``, ``.port``, ``.url(db)``, ``.proc``."""
    try:
        binary = find_redis_server()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def _clean_redis(redis_server: RedisServer) -> RedisServer:
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


@pytest.fixture
def redis_url(_clean_redis: RedisServer) -> str:
    """Broker URL (db 1) on an empty server."""
    return _clean_redis.url(BROKER_DB)


@pytest.fixture
def backend_url(_clean_redis: RedisServer) -> str:
    """Result backend URL (db 2) on an empty server."""
    return _clean_redis.url(BACKEND_DB)


@pytest.fixture
def redis_client(redis_server: RedisServer, redis_url: str) -> Iterator[Any]:
    """A ``redis.Redis`` on the broker db (replies are bytes)."""
    client = redis_server.client(BROKER_DB)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def process_tracker() -> Iterator[ProcessTracker]:
    """``.track(pid or Popen)``: processes killed (with descendants) at teardown."""
    tracker = ProcessTracker()
    try:
        yield tracker
    finally:
        tracker.cleanup()


@pytest.fixture
def worker_env(redis_url: str, backend_url: str) -> Dict[str, str]:
    """Environment for multiq subprocesses: the test's Redis URLs, unbuffered output."""
    env = dict(os.environ)
    env.update(
        MULTIQ_BROKER_URL=redis_url,
        MULTIQ_RESULT_BACKEND=backend_url,
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def start_worker(
    tmp_path: Path, worker_env: Dict[str, str], process_tracker: ProcessTracker
) -> Any:
    """Factory: ``start_worker(app, *extra_args, cwd=tmp_path, env=None, pool="solo",
    loglevel="info", hostname=None, wait_ready=True, timeout=20.0, log_path=None)``.

    ``cwd`` is where the app module lives (it is put first on PYTHONPATH);
    ``env`` entries override the defaults. Returns a ``helpers.WorkerProcess``
    (``.proc``, ``.pid``, ``.log_path``, ``.log()``, ``.wait_for_log(s, timeout)``,
    ``.stop(sig=SIGTERM, timeout=15)``). Without ``hostname`` or ``-n`` in
    ``extra_args`` each worker gets a unique ``wN@%h``.
    """

    def factory(
        app: str,
        *extra_args: str,
        cwd: Optional[Path] = None,
        env: Optional[Dict[str, str]] = None,
        **options: Any,
    ) -> WorkerProcess:
        cwd = Path(cwd) if cwd is not None else tmp_path
        full_env = dict(worker_env)
        full_env.update(env or {})
        paths: List[str] = [str(cwd), str(REPO_ROOT)]
        if full_env.get("PYTHONPATH"):
            paths.append(full_env["PYTHONPATH"])
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
        options.setdefault("log_path", tmp_path / f"worker-{len(started) + 1}.log")
        worker = start_worker_process(
            process_tracker, app, *extra_args, cwd=cwd, env=full_env, **options
        )
        started.append(worker)
        return worker

    started: List[WorkerProcess] = []
    return factory


@pytest.fixture
def make_app(redis_url: str, backend_url: str) -> Iterator[Any]:
    """Factory: ``make_app(main="tests", **settings)`` -> a ``MultiQ`` on the test's Redis.

    ``broker=`` / ``backend=`` may be overridden. Apps are closed at teardown
    when they have a ``close()`` method.
    """
    apps: List[Any] = []

    def factory(main: str = "tests", **settings: Any) -> Any:
        from multiq import MultiQ

        settings.setdefault("broker", redis_url)
        settings.setdefault("backend", backend_url)
        app = MultiQ(main, **settings)
        apps.append(app)
        return app

    try:
        yield factory
    finally:
        for app in reversed(apps):
            close = getattr(app, "close", None)
            if callable(close):
                close()


# -- Redis Cluster and Sentinel ------------------------------------------------


def _start_topology(factory: Any, directory: Path) -> Any:
    """Build and start a topology, or fail the test with the process logs."""
    try:
        binary = find_redis_server()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    topology = factory(binary, directory)
    try:
        topology.start()
    except RuntimeError as exc:
        pytest.fail(f"{factory.__name__} could not start: {exc}", pytrace=False)
    return topology


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """The session's Redis Cluster: 3 masters with a replica each (never killed)."""
    cluster = _start_topology(ClusterTopology, tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelTopology]:
    """The session's Sentinel setup: master, replica, 3 sentinels (never killed)."""
    sentinel = _start_topology(SentinelTopology, tmp_path_factory.mktemp("sentinel"))
    try:
        yield sentinel
    finally:
        sentinel.stop()


@pytest.fixture
def cluster_url(redis_cluster: ClusterTopology) -> str:
    """``redis+cluster://...`` of the session cluster, every master flushed."""
    redis_cluster.flush()
    return redis_cluster.url()


@pytest.fixture
def sentinel_url(redis_sentinel: SentinelTopology) -> str:
    """``redis+sentinel://.../0?master=mymaster`` of the session setup, flushed."""
    redis_sentinel.flush()
    return redis_sentinel.url()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[ClusterTopology]:
    """A private cluster for one test, which may kill and restart its nodes."""
    cluster = _start_topology(ClusterTopology, tmp_path / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_sentinel(tmp_path: Path) -> Iterator[SentinelTopology]:
    """A private Sentinel setup for one test, which may kill and restart its nodes."""
    sentinel = _start_topology(SentinelTopology, tmp_path / "sentinel")
    try:
        yield sentinel
    finally:
        sentinel.stop()
