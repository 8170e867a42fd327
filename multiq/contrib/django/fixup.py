"""The Django fix-up: what changes when a multiq app belongs to a Django project.

- :meth:`DjangoFixup.setup` runs ``django.setup()`` once, before any task module is
  imported (the worker, beat and the command line call it), so a ``tasks.py`` may import
  models at its top.
- :meth:`DjangoFixup.packages` lists the project's app configs: what
  ``app.autodiscover_tasks()`` without arguments searches for ``tasks`` modules.
- In a worker node only (hooked at ``worker_init``, so a web process pays nothing and a
  node of a plain app neither): the main process closes its database connections before
  the pool forks; each prefork child closes the connections it inherited without ending
  the parent's sessions; and stale or broken connections are closed before and after each
  task (``django.db.close_old_connections``), as Django does around each request.

Django itself is imported only when one of these runs.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
import warnings
from typing import Any, Callable, Iterable, List, Optional

from multiq import _state, signals
from multiq.task import Task

logger = logging.getLogger("multiq.django")


class FixupWarning(UserWarning):
    """The app looks like a Django project's, but Django cannot be used."""


def install(app: Any) -> Optional[DjangoFixup]:
    """The fix-up of ``app`` (None, with a warning, when Django is not installed)."""
    if importlib.util.find_spec("django") is None:
        warnings.warn("DJANGO_SETTINGS_MODULE is set or the app reads django.conf:settings, "
                      "but Django is not installed: no Django set-up is done",
                      FixupWarning, stacklevel=4)
        return None
    fixup = DjangoFixup(app)
    if app.task_cls is Task:
        from multiq.contrib.django.task import DjangoTask
        app.task_cls = DjangoTask
        app._task_base = None  # app.Task is made again from it
    signals.worker_init.connect(fixup.on_worker_init)
    return fixup


class DjangoFixup:
    """Django set-up, app discovery and database hygiene for one app (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._local = threading.local()  # .armed: connections were checked before this task
        self._close_old: Callable[[], None] = _no_op

    def setup(self) -> None:
        """``django.setup()``, unless Django's apps are loaded or being loaded."""
        from django.apps import apps

        if apps.ready or apps.loading:
            return
        import django
        django.setup()

    def packages(self) -> List[str]:
        """The names of the project's app configs, in ``INSTALLED_APPS`` order."""
        self.setup()
        from django.apps import apps

        return [config.name for config in apps.get_app_configs()]

    # -- in a worker node ----------------------------------------------------------------

    def on_worker_init(self, sender: Any = None, **_: Any) -> None:
        """A node of this app starts (before its pool forks): hook the database hygiene."""
        if getattr(sender, "app", None) is not self.app:
            return
        self.setup()
        from django.conf import settings
        from django.db import close_old_connections, connections

        if settings.DEBUG:
            logger.warning("Django's DEBUG setting is on: every query of every task is kept "
                           "in memory (up to 9000 per connection); turn it off in production")
        connections.close_all()  # pool children must not inherit them
        self._close_old = close_old_connections
        signals.task_prerun.connect(self.before_task)
        signals.task_postrun.connect(self.after_task)
        signals.worker_process_init.connect(self.in_child)

    def before_task(self, sender: Any = None, **_: Any) -> None:
        """Close stale or broken connections before a task (not a call nested in one, and
        not an eager call: either may run inside the caller's transaction)."""
        stack = _state.task_stack()
        if stack and len(stack) == 1 and not stack[0].is_eager:
            self._local.armed = True
            self._close_old()

    def after_task(self, sender: Any = None, **_: Any) -> None:
        """Close stale connections after a task that :meth:`before_task` checked."""
        if getattr(self._local, "armed", False) and not _state.task_stack():
            self._local.armed = False
            self._close_old()

    def in_child(self, **_: Any) -> None:
        """In a new prefork child: drop the connections inherited from the main process."""
        from django.db import connections

        for conn in _initialized(connections):
            _detach_socket(conn.connection)
            try:
                conn.close()
            except Exception:
                logger.debug("Closing inherited connection %r failed", conn.alias,
                             exc_info=True)


def _no_op() -> None:
    pass


def _initialized(connections: Any) -> Iterable[Any]:
    """The database wrappers already made in this thread."""
    try:
        return connections.all(initialized_only=True)
    except TypeError:  # Django before 4.1
        return connections.all()


def _detach_socket(raw: Any) -> None:
    """Point this process's copy of an inherited connection's socket at /dev/null.

    Closing the connection here then says goodbye to nobody: the database server keeps the
    session that the parent (or a sibling) still uses. SQLite connections have no socket.
    """
    if raw is None:
        return
    try:
        fd = raw.fileno()
    except Exception:  # no socket (SQLite), or a connection already closed
        return
    if not isinstance(fd, int) or fd < 0:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
