"""An app on a test Redis: a fresh one, or the project's own re-configured for the test.

``configured(redis_url, settings, app=None)`` flushes the app's two databases on the test
Redis (broker and results: 1 and 2 for a test's app, 3 and 4 for the session's, so that one
never sees the other's tasks), points the app at them, makes it current, and undoes all of
that afterwards.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from multiq.config import ENV_OVERRIDES

TEST_DBS = (1, 2)  # broker, results
SESSION_DBS = (3, 4)
_UNSET = object()


def settings_for(redis_url: str, config: Mapping[str, Any],
                 dbs: Tuple[int, int] = TEST_DBS) -> Dict[str, Any]:
    """The test settings: broker and results on ``redis_url``, never eager, then ``config``."""
    base = redis_url.rstrip("/")
    return {
        "broker_url": f"{base}/{dbs[0]}",
        "result_backend": f"{base}/{dbs[1]}",
        "task_always_eager": False,
        **config,
    }


def flush(redis_url: str, dbs: Tuple[int, ...] = TEST_DBS) -> None:
    """Empty these databases of ``redis_url`` (and only those)."""
    import redis

    base = redis_url.rstrip("/")
    for db in dbs:
        client = redis.Redis.from_url(f"{base}/{db}", socket_timeout=10.0)
        try:
            client.flushdb()
        finally:
            client.close()


@contextlib.contextmanager
def configured(redis_url: str, settings: Mapping[str, Any], app: Optional[Any] = None,
               dbs: Tuple[int, int] = TEST_DBS) -> Iterator[Any]:
    """A clean test Redis and an app using it: ``app`` re-configured (restored afterwards)
    or, without one, a new ``MultiQ("pytest")`` (forgotten afterwards)."""
    from multiq import MultiQ
    from multiq import _state as state

    flush(redis_url, dbs)
    previous_current = getattr(state.local, "current", None)
    saved: Dict[str, Any] = {}
    target: Any = app
    if app is None:
        target = MultiQ("pytest", **settings)
    else:
        app.close()  # its connections may lead elsewhere
        saved = {key.lower(): app.conf.changes.get(key.lower(), _UNSET) for key in settings}
        app.conf.update(settings)
        app.set_current()
    for key in ENV_OVERRIDES:  # the test Redis, whatever MULTIQ_BROKER_URL says
        if key in settings:
            target.conf.pin(key, settings[key])
    try:
        yield target
    finally:
        target.close()
        for key in ENV_OVERRIDES:
            target.conf.unpin(key)
        _restore(target.conf, saved)
        state.local.current = previous_current
        if app is None and target in state.apps:
            state.apps.remove(target)


def _restore(conf: Any, saved: Mapping[str, Any]) -> None:
    for key, value in saved.items():
        if value is not _UNSET:
            conf[key] = value
        elif key in conf:
            del conf[key]
