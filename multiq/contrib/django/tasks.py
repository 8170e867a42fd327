"""A ``django.tasks`` backend: Django's ``@task`` functions run on multiq workers.

::

    TASKS = {
        "default": {
            "BACKEND": "multiq.contrib.django.tasks.MultiQBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"APP": "proj.multiq:app"},   # optional: else the current app
        }
    }

Every Django task travels as one multiq task, :data:`RUN` (arguments: the task's module
path, its args and kwargs); the worker imports the task by that path and calls it, so no
task needs registering, but the worker's app must import this module
(``include=["multiq.contrib.django.tasks"]``). How Django's options map:

- ``queue_name``: ``"default"`` is the app's ``task_default_queue``; any other name is the
  multiq queue of that name.
- ``priority`` (-100..100, higher first) is a multiq band 0..9 (9 first) in steps of 20:
  -100..-80 is 0, -79..-60 is 1, ..., -19..0 (the default 0) is 4, 1..20 is 5, ...,
  81..100 is 9 (``(priority + 100) * 10 // 201``).
- ``run_after`` is the message's eta (kept in Redis until due).
- The result id is the multiq task id. Status: PENDING, RECEIVED and RETRY are READY,
  STARTED is RUNNING, SUCCESS is SUCCESSFUL; FAILURE, REVOKED and REJECTED are FAILED,
  with the exception's class path and traceback in ``errors``.

Results come from the app's result store: the multiq result document and the record
described in :mod:`multiq.contrib.django.taskrecord`.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from typing import Any, Dict, List, Optional

from multiq import states
from multiq.app import MultiQ, current_app, shared_task
from multiq.backends.base import make_doc, parse_date, utcnow
from multiq.contrib.django import taskrecord
from multiq.exceptions import BackendNotConfigured, ImproperlyConfigured

# The one place that chooses Django's own framework (6.0 and later) or the backport.
try:
    from django.tasks import base as _api
    from django.tasks import exceptions as _errors
    from django.tasks import signals as _signals
    from django.tasks.backends.base import BaseTaskBackend
    from django.utils import json as _utils  # Django 6 keeps normalize_json here
except ImportError:
    from django_tasks import base as _api
    from django_tasks import exceptions as _errors
    from django_tasks import signals as _signals
    from django_tasks import utils as _utils
    from django_tasks.backends.base import BaseTaskBackend

Status: Any = getattr(_api, "TaskResultStatus", None) or _api.ResultStatus
READY, RUNNING, FAILED = Status.READY, Status.RUNNING, Status.FAILED
SUCCESSFUL = getattr(Status, "SUCCESSFUL", None) or Status.SUCCEEDED
InvalidTask: Any = getattr(_errors, "InvalidTask", None) or _errors.InvalidTaskError
TaskResultDoesNotExist: Any = _errors.TaskResultDoesNotExist
_normalize = getattr(_utils, "normalize_json", None) or (lambda value: value)

logger = logging.getLogger("multiq.contrib.django")

RUN = "multiq.contrib.django.tasks.run"
OPTIONS = ("APP",)
DEFAULT_QUEUE = "default"
_STATUS = {
    states.PENDING: READY, states.RECEIVED: READY, states.RETRY: READY,
    states.STARTED: RUNNING, states.SUCCESS: SUCCESSFUL, states.FAILURE: FAILED,
    states.REVOKED: FAILED, states.REJECTED: FAILED,
}
_ERROR_STATES = frozenset({states.FAILURE, states.REVOKED, states.REJECTED, states.RETRY})


def band(priority: int) -> int:
    """The multiq priority band (0..9) of a Django priority (-100..100)."""
    return min(9, max(0, (int(priority) + 100) * 10 // 201))


class MultiQBackend(BaseTaskBackend):
    """Enqueues Django tasks as multiq messages and reads their results from multiq."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: Dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(params.get("OPTIONS") or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown {', '.join(map(repr, unknown))}; "
                f"the multiq backend reads {', '.join(map(repr, OPTIONS))}")
        self._app_spec: Optional[str] = options.get("APP")
        self._app: Optional[MultiQ] = None

    @property
    def app(self) -> MultiQ:
        """The multiq app named by ``OPTIONS["APP"]`` (as ``-A`` names it), else the
        current one."""
        if self._app_spec is None:
            return current_app()
        if self._app is None:
            self._app = _find_app(self._app_spec, self.alias)
        return self._app

    def queue_of(self, queue_name: str) -> str:
        """The multiq queue of a Django queue name."""
        if queue_name == DEFAULT_QUEUE:
            return str(self.app.conf.task_default_queue)
        return queue_name

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        args, kwargs = _normalize(list(args)), _normalize(dict(kwargs))
        app = self.app
        result_id = str(uuid.uuid4())
        now = utcnow()
        result = _result(task, result_id, READY, self.alias, args, kwargs, enqueued_at=now)
        run_after = _utc(task.run_after)
        store = _store(app)
        if store is not None:
            spec = {"path": task.module_path, "args": args, "kwargs": kwargs,
                    "backend": task.backend, "queue_name": task.queue_name,
                    "priority": task.priority,
                    "run_after": run_after.isoformat() if run_after else None}
            taskrecord.write(store, result_id, spec, now.isoformat())
        app.send_task(RUN, [task.module_path, args, kwargs], task_id=result_id,
                      queue=self.queue_of(task.queue_name), priority=band(task.priority),
                      eta=run_after)
        _signals.task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        record, doc = taskrecord.read(self.app.backend, str(result_id))
        spec = (record or {}).get("spec")
        if record is None or spec is None:
            raise TaskResultDoesNotExist(result_id)
        task = _import_task(spec["path"]).using(
            priority=spec.get("priority"), queue_name=spec.get("queue_name"),
            backend=spec.get("backend"), run_after=_local(parse_date(spec.get("run_after"))))
        return _from_doc(task, str(result_id), self.alias, spec, record, doc)


def _find_app(spec: str, alias: str) -> MultiQ:
    from multiq.cli.base import find_app

    try:
        return find_app(spec)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['OPTIONS']['APP'] is {spec!r}, which names no multiq app: "
            f"{exc}") from exc


def _store(app: MultiQ) -> Any:
    """The app's result store, or None when it has none."""
    try:
        return app.backend
    except BackendNotConfigured:
        return None


def _import_task(path: str) -> Any:
    from django.utils.module_loading import import_string

    if not isinstance(path, str):
        raise InvalidTask(f"A task path is a string, not {type(path).__name__}")
    try:
        task = import_string(path)
    except ImportError as exc:
        raise InvalidTask(f"Task {path!r} cannot be imported: {exc}") from exc
    if not isinstance(task, _api.Task):
        raise InvalidTask(f"{path!r} is a {type(task).__name__}, not a task "
                          "(a function decorated with @task)")
    return task


# -- results -----------------------------------------------------------------------------


def _utc(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """An aware datetime (a naive one is in Django's current time zone)."""
    if value is None or value.tzinfo is not None:
        return value
    from django.utils import timezone

    return timezone.make_aware(value)


def _local(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """A datetime as Django hands them out: aware with USE_TZ, else naive local time."""
    if value is None:
        return None
    from django.conf import settings
    from django.utils import timezone

    return value if settings.USE_TZ else timezone.make_naive(value)


def _result(task: Any, result_id: str, status: Any, alias: str, args: List[Any],
            kwargs: Dict[str, Any], enqueued_at: Optional[dt.datetime] = None,
            started_at: Optional[dt.datetime] = None,
            finished_at: Optional[dt.datetime] = None,
            last_attempted_at: Optional[dt.datetime] = None,
            errors: Optional[List[Any]] = None, worker_ids: Optional[List[str]] = None,
            value: Any = None) -> Any:
    result = _api.TaskResult(
        task=task, id=result_id, status=status, enqueued_at=_local(enqueued_at),
        started_at=_local(started_at), finished_at=_local(finished_at),
        last_attempted_at=_local(last_attempted_at), args=args, kwargs=kwargs,
        backend=alias, errors=errors or [], worker_ids=worker_ids or [],
    )
    object.__setattr__(result, "_return_value", value)
    return result


def _error(doc: Dict[str, Any]) -> Any:
    """The TaskError of a document holding an exception."""
    info = doc.get("result")
    if not isinstance(info, dict) or "exc_type" not in info:
        return _api.TaskError(exception_class_path="multiq.exceptions.TaskError",
                              traceback=doc.get("traceback") or str(info))
    name, module = str(info["exc_type"]), str(info.get("exc_module") or "builtins")
    message = info.get("exc_message")
    text = ", ".join(map(str, message)) if isinstance(message, list) else str(message or "")
    return _api.TaskError(exception_class_path=f"{module}.{name}",
                          traceback=doc.get("traceback") or f"{name}: {text}\n")


def _from_doc(task: Any, result_id: str, alias: str, spec: Dict[str, Any],
              record: Dict[str, Any], doc: Dict[str, Any]) -> Any:
    state = doc.get("status")
    status = _STATUS.get(str(state), READY)
    return _result(
        task, result_id, status, alias, spec.get("args") or [], spec.get("kwargs") or {},
        enqueued_at=parse_date(record.get("enqueued_at")),
        started_at=parse_date(record.get("started_at")),
        finished_at=parse_date(doc.get("date_done")) if state in states.READY_STATES
        else None,
        last_attempted_at=parse_date(record.get("last_attempted_at")),
        errors=[_error(doc)] if state in _ERROR_STATES else [],
        worker_ids=record.get("worker_ids") or [],
        value=doc.get("result") if state == states.SUCCESS else None,
    )


# -- the worker's side ----------------------------------------------------------------------

_setup_lock = threading.Lock()


def _setup_django() -> None:
    """``django.setup()`` once, if the worker has not done it."""
    from django.apps import apps

    if apps.ready:
        return
    with _setup_lock:
        if apps.ready:
            return
        from django.conf import settings

        if not os.environ.get("DJANGO_SETTINGS_MODULE") and not settings.configured:
            raise ImproperlyConfigured(
                "Django tasks need Django's settings on the worker: set "
                "DJANGO_SETTINGS_MODULE in its environment")
        import django

        django.setup()


@shared_task(name=RUN, bind=True, ignore_result=False)
def run(self: Any, path: str, args: List[Any], kwargs: Dict[str, Any]) -> Any:
    """Run the Django task at ``path``; its result is this task's result."""
    _setup_django()
    task = _import_task(path)
    request = self.request
    started = utcnow()
    record: Dict[str, Any] = {}
    store = _store(self.app)
    if store is not None:
        record = _attempt(store, request, path, started)
    sender = type(task.get_backend())
    result = _result(
        task, request.id, RUNNING, task.backend, args, kwargs,
        enqueued_at=parse_date(record.get("enqueued_at")),
        started_at=parse_date(record.get("started_at")) or started,
        last_attempted_at=started,
        worker_ids=record.get("worker_ids") or [str(request.hostname or "")])
    _signals.task_started.send(sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(_api.TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
    except BaseException as exc:
        _finished(sender, result, FAILED, errors=[_api.TaskError(
            exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
            traceback=_traceback(exc))])
        raise
    _finished(sender, result, SUCCESSFUL, value=value)
    return value


def _attempt(store: Any, request: Any, path: str, now: dt.datetime) -> Dict[str, Any]:
    """Record this attempt (and the STARTED state); the task runs even if Redis fails
    here, as the record only describes it."""
    doc = make_doc(request.id, states.STARTED, {"pid": os.getpid(),
                                                "hostname": request.hostname})
    try:
        return taskrecord.attempt(store, request.id, str(request.hostname or ""),
                                  now.isoformat(), doc)
    except Exception as exc:
        logger.warning("Could not record the start of Django task %s[%s]: %r", path,
                       request.id, exc)
        return {}


def _finished(sender: type, result: Any, status: Any, errors: Optional[List[Any]] = None,
              value: Any = None) -> None:
    """Send ``task_finished`` with ``result`` as it ended."""
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", _local(utcnow()))
    object.__setattr__(result, "_return_value", value)
    result.errors.extend(errors or ())
    _signals.task_finished.send(sender, task_result=result)


def _traceback(exc: BaseException) -> str:
    from multiq.trace import format_traceback

    return format_traceback(exc)
