"""MultiQ: the application — configuration, task registry, sending, and its connections."""
from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import importlib
import inspect
import logging
import os
import sys
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
    overload,
)

from multiq import _state as state
from multiq import config as config_mod
from multiq import publishing, signals
from multiq import task as task_mod  # in MultiQ's body, "Task" is the property
from multiq.connopts import backend_options, broker_options
from multiq.exceptions import (
    BackendNotConfigured,
    BrokerNotConfigured,
    ImproperlyConfigured,
    OperationalError,
)
from multiq.message import envelope
from multiq.task import Task, check_time_limits

if TYPE_CHECKING:
    from typing import Coroutine, Literal

    from multiq._typing import BoundTaskDecorator, P, R, TaskDecorator
    from multiq.broker.base import Broker
    from multiq.task import AsyncTask

class Spares(NamedTuple):
    """A broker and a backend made for a forked child (see ``MultiQ._spares``)."""

    settings: Tuple[Any, ...]
    broker: Optional[Broker]
    backend: Any


logger = logging.getLogger("multiq.app")

_state = state.local
_shared_tasks: List[Callable[[MultiQ], Task]] = []
_AsyncResult: Any = None
_NO_ROUTE: Dict[str, Any] = {}
_uuid4 = state.new_id
current_app = state.current_app
# app.conf.<name> without Settings' attribute machinery (the send path)
_setting: Callable[[Dict[str, Any], str], Any] = dict.get


class TaskRegistry(dict):
    """Task name -> Task instance."""

    def register(self, task: Task) -> Task:
        self[task.name] = task
        return task

    def regular(self) -> Dict[str, Task]:
        return {k: v for k, v in self.items() if not k.startswith("multiq.")}


class MultiQ:
    """A task queue application: ``app = MultiQ("proj", broker=..., backend=...)``."""

    def __init__(
        self, main: Optional[str] = None, *, broker: Optional[str] = None,
        backend: Optional[str] = None, include: Optional[Iterable[str]] = None,
        config_source: Any = None, set_as_current: bool = True,
        task_cls: Union[str, type, None] = None, **settings: Any,
    ) -> None:
        self.main = main
        self._conf = config_mod.Settings()
        self._pending_config: List[Tuple[Any, Optional[str]]] = []  # read on first use
        self._lock = threading.RLock()
        self.tasks = TaskRegistry()
        #: The base of this app's tasks: a Task subclass or its ``"module:Class"`` name.
        self.task_cls: Union[str, type] = task_cls or Task
        self._task_base: Optional[type] = None  # app.Task, made on first use
        #: the Django fix-up (multiq.contrib.django.fixup) when this app is a Django project's
        self.django_fixup: Any = None
        self._include = list(include or ())
        self._autodiscover: List[Any] = []
        self._broker: Optional[Broker] = None
        self._node = False  # a worker node runs in this process (see serve_as_node)
        self._backend: Any = None
        self._control: Any = None
        self._sender: Optional[Tuple[Any, Any]] = None  # (broker, its Sender or None)
        self._finalized = False
        #: Celery's app signals: ``on_after_configure`` (``source``: the settings) and
        #: ``on_after_finalize`` are sent once, when a worker or beat starts (``finalize``),
        #: after the app's modules are imported; ``on_configure`` just before them.
        self.on_configure = signals.Signal("on_configure")
        self.on_after_configure = signals.Signal("on_after_configure")
        self.on_after_finalize = signals.Signal("on_after_finalize")
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            self._use_django()
        if config_source is not None:
            self.config_from_object(config_source)
        if broker:
            self.conf["broker_url"] = broker
        if backend:
            self.conf["result_backend"] = backend
        if settings:
            self.conf.update(settings)
        state.apps.append(self)
        from multiq import builtins
        builtins.register(self)
        if set_as_current:
            _state.current = self
        for make in _shared_tasks:
            make(self)

    def __repr__(self) -> str:
        return f"<MultiQ {self.main or '__main__'} at {id(self):#x}>"

    def set_current(self) -> None:
        """Make this the current app of this thread."""
        _state.current = self

    def set_default(self) -> None:
        """Make this the app of threads with no current app of their own (a web server's
        request threads): ``current_app()``, ``shared_task`` and ``AsyncResult(id)`` use
        it."""
        state.chosen[:] = [self]

    # -- configuration -----------------------------------------------------------------

    @property
    def conf(self) -> config_mod.Settings:
        """The settings; what ``config_from_object`` deferred is read on first use."""
        if self._pending_config:
            self._read_pending_config()
        return self._conf

    def config_from_object(self, obj: Any, namespace: Optional[str] = None, force: bool = True,
                           silent: bool = False) -> None:
        """Load settings from a module, an object, or ``"module"`` / ``"module:attr"``.

        ``"django.conf:settings"`` makes this a Django project's app (see
        :mod:`multiq.contrib.django`); settings not configured yet (Django's, before their
        first use) are read when the configuration is first used, not now.
        """
        if _names_django_settings(obj):
            self._use_django()
        try:
            source = config_mod.resolve(obj)
        except ImportError:
            if silent:
                return
            raise
        if config_mod.is_deferred(source):
            with self._lock:
                self._pending_config.append((source, namespace))
        else:
            self.conf.update(config_mod.load_object(source, namespace=namespace))
        self._reset_connections()

    def _read_pending_config(self) -> None:
        with self._lock:
            pending, self._pending_config = self._pending_config, []
            try:
                for source, namespace in pending:
                    self._conf.update(config_mod.load_object(source, namespace=namespace))
            except BaseException:
                self._pending_config[:0] = pending  # still to read: the next use says why
                raise

    def _use_django(self) -> None:
        """Install the Django fix-up (django.setup(), the project's apps, DB hygiene)."""
        if self.django_fixup is None:
            from multiq.contrib.django.fixup import install
            self.django_fixup = install(self)

    def config_from_envvar(self, variable_name: str, silent: bool = False,
                           force: bool = False) -> bool:
        """Load settings from the module named by an environment variable."""
        try:
            module = config_mod.load_envvar(variable_name)
        except ImproperlyConfigured:
            if silent:
                return False
            raise
        self.config_from_object(module)
        return True

    def serve_as_node(self) -> None:
        """A worker node runs in this process: its broker client is not held to
        ``broker_pool_limit`` (a node's consumer and control connections are not Celery's
        producer pool either)."""
        if self._node:
            return
        self._node = True
        if self._broker is not None and \
                broker_options(self.conf) != broker_options(self.conf, node=True):
            self._reset_connections()

    def _reset_connections(self) -> None:
        self._broker = self._backend = None
        self._sender = None

    def _spares(self) -> Spares:
        """A broker and a result backend built from the current settings and never
        connected: a prefork node builds them before it forks, for each child to adopt
        (:meth:`_adopt`), so the children share what building them touches instead of
        each touching a copy of its own. None for a Redis Cluster's client, which connects
        as it is built, and for a backend not configured."""
        broker = backend = None
        if not getattr(self.broker, "cluster", False):
            broker = self._new_broker()
        if self.conf.result_backend and not getattr(self.backend, "sharded", False):
            backend = self._new_backend()
        return Spares(self._settings(), broker, backend)

    def _adopt(self, spares: Optional[Spares]) -> None:
        """In a forked child: the ``spares`` become the broker and the backend, unless one
        was made meanwhile or the settings changed since they were built (then the next
        use builds its own)."""
        if spares is None or spares.settings != self._settings():
            return
        if self._broker is None:
            self._broker = spares.broker
        if self._backend is None:
            self._backend = spares.backend

    def _settings(self) -> Tuple[Any, ...]:
        """What the broker and the backend are built from."""
        conf = self.conf
        return (conf.broker_url, broker_options(conf, self._node), conf.result_backend,
                conf.result_expires, backend_options(conf))

    def _new_broker(self) -> Broker:
        from multiq.broker.redis import RedisBroker
        url = self.conf.broker_url
        if not url:
            raise BrokerNotConfigured()
        return RedisBroker(url, broker_options(self.conf, self._node))

    def _new_backend(self) -> Any:
        from multiq.backends.redis import RedisBackend
        url = self.conf.result_backend
        if not url:
            raise BackendNotConfigured(
                "No result backend is configured: pass backend=... to MultiQ() "
                "or set result_backend to read task results"
            )
        if url == "redis":  # Celery's shorthand: results next to the broker
            url = self.conf.broker_url
        return RedisBackend(url, self.conf.result_expires, backend_options(self.conf))

    def autodiscover_tasks(self, packages: Any = None, related_name: str = "tasks",
                           force: bool = False) -> None:
        """Import ``<package>.<related_name>`` of each package (lazily, unless ``force``)."""
        self._autodiscover.append((packages, related_name))
        if force:
            self._run_autodiscover()

    def _run_autodiscover(self) -> None:
        pending, self._autodiscover = self._autodiscover, []
        for packages, related_name in pending:
            if packages is None:
                packages = self._default_packages()
            if callable(packages):
                packages = packages()
            for pkg in packages or ():
                name = f"{pkg}.{related_name}" if related_name else pkg
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError as exc:
                    if exc.name not in (name, pkg):
                        raise

    def _default_packages(self) -> List[str]:
        """What ``autodiscover_tasks()`` without packages searches: a Django project's apps."""
        if self.django_fixup is None and _django_configured():
            self._use_django()
        return self.django_fixup.packages() if self.django_fixup is not None else []

    def import_default_modules(self) -> None:
        """Import ``include`` / ``imports`` modules and run autodiscovery (worker start-up)."""
        if self.django_fixup is not None:
            self.django_fixup.setup()  # models importable before any task module
        signals.import_modules.send(sender=self)
        for name in [*self._include, *(self.conf.include or ()), *(self.conf.imports or ())]:
            importlib.import_module(name)
        self._run_autodiscover()

    def finalize(self) -> None:
        with self._lock:
            if self._finalized:
                return
            self._finalized = True
        self.on_configure.send(sender=self)
        self.on_after_configure.send(sender=self, source=self.conf)
        with self._lock:
            for task in self.tasks.values():
                self._annotate(task)
        self.on_after_finalize.send(sender=self)

    def add_periodic_task(self, schedule: Any, sig: Any, args: Sequence[Any] = (),
                          kwargs: Optional[Dict[str, Any]] = None, name: Optional[str] = None,
                          **options: Any) -> str:
        """Add ``sig`` (a signature, e.g. ``add.s(2, 2)``) to ``beat_schedule`` to run on
        ``schedule`` (seconds, a timedelta, a ``crontab``...); returns the entry's name
        (``name``, else the signature's repr). Typically from an ``on_after_configure``
        receiver, as with Celery."""
        if args or kwargs:
            sig = sig.clone(args, kwargs)
        key = name or repr(sig)
        table = self.conf.get("beat_schedule")
        if table is None:
            table = self.conf["beat_schedule"] = {}
        if name is None and key in table:
            logger.warning("Periodic task %r replaced an unnamed one of the same call; give "
                           "add_periodic_task a name to keep both", key)
        table[key] = {"task": sig.name, "schedule": schedule, "args": list(sig.args),
                      "kwargs": dict(sig.kwargs),
                      "options": {**dict(sig.options), **options}}
        return key

    def _annotate(self, task: Task) -> None:
        annotations = self.conf.task_annotations or {}
        if isinstance(annotations, dict):
            annotations = [annotations]
        for mapping in annotations:
            for key in ("*", task.name):
                for attr, value in (mapping.get(key) or {}).items():
                    setattr(task, attr, value)

    # -- tasks -------------------------------------------------------------------------

    @overload
    def task(self, fun: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fun: Callable[P, R], /) -> task_mod.Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = ..., **options: Any) -> TaskDecorator: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """Decorator making a function a task: ``@app.task`` or ``@app.task(name=..., ...)``.

        Typed: a function taking ``P`` and returning ``R`` (or an ``async def`` returning
        ``R``) becomes a ``Task[P, R]``; with ``bind=True`` its first parameter, the task, is
        not part of ``P``."""
        if len(args) == 1 and callable(args[0]) and not options:
            return self._create_task(args[0])
        if args:
            raise TypeError("@app.task takes keyword options only")

        def decorator(fun: Callable[..., Any]) -> Task:
            return self._create_task(fun, **options)
        return decorator

    def _create_task(self, fun: Callable[..., Any], *, name: Optional[str] = None,
                     base: Optional[type] = None, bind: bool = False, **options: Any) -> Task:
        task_name = name or self.gen_task_name(fun.__name__, fun.__module__)
        existing = self.tasks.get(task_name)
        if existing is not None and getattr(existing, "__wrapped__", None) is fun:
            return existing
        base_cls = base or self.Task
        body, dump = fun, None
        if options.pop("pydantic", False):
            from multiq.validation import wrap

            body, dump = wrap(fun, task_name, bind, options.pop("pydantic_strict", False),
                              options.pop("pydantic_context", None),
                              options.pop("pydantic_dump_kwargs", None))
            dump = staticmethod(dump)
        run = body if bind else staticmethod(body)
        attrs = {
            "name": task_name, "app": self, "run": run, "_bind": bind, "__wrapped__": fun,
            "__doc__": fun.__doc__, "__module__": fun.__module__,
            "__qualname__": fun.__qualname__, "_dump_arguments": dump, **options,
        }
        cls = type(fun.__name__, (base_cls,), attrs)
        task: Task = cls()
        if self._finalized:
            self._annotate(task)
        return self.tasks.register(task)

    @property
    def Task(self) -> type:  # noqa: N802 - Celery's name
        """The app's base task class (``task_cls`` bound to this app): ``@app.task`` and
        ``shared_task`` make this app's tasks from it unless given ``base=``."""
        if self._task_base is None:
            with self._lock:
                if self._task_base is None:
                    base = _task_class(self.task_cls)
                    self._task_base = type(base.__name__, (base,), {
                        "app": self, "__module__": base.__module__,
                        "__qualname__": base.__qualname__, "__doc__": base.__doc__})
        return self._task_base

    @Task.setter
    def Task(self, cls: type) -> None:  # noqa: N802
        self._task_base = _task_class(cls)

    def gen_task_name(self, name: str, module: str) -> str:
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{name}"

    # -- connections -------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The broker connection, made on first use."""
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = self._new_broker()
        return self._broker

    @property
    def backend(self) -> Any:
        """The result backend, made on first use; a clear error when none is configured."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._new_backend()
        return self._backend

    @property
    def beat(self) -> Any:
        """The dynamic beat table: ``app.beat.add(name, task, schedule)``, ``remove``,
        ``list``."""
        from multiq.beat.table import BeatTable
        return BeatTable(self)

    @property
    def control(self) -> Any:
        if self._control is None:
            from multiq.control.client import Control
            self._control = Control(self)
        return self._control

    def close(self) -> None:
        if self._sender is not None and self._sender[1] is not None:
            self._sender[1].close()
        for conn in (self._broker, self._backend):
            if conn is not None:
                conn.close()
        self._reset_connections()

    # -- sending -----------------------------------------------------------------------

    def send_task(
        self, name: str, args: Optional[Sequence[Any]] = None,
        kwargs: Optional[Dict[str, Any]] = None, *, countdown: Optional[float] = None,
        eta: Union[dt.datetime, float, None] = None, expires: Any = None,
        task_id: Optional[str] = None, queue: Optional[str] = None,
        priority: Optional[int] = None, serializer: Optional[str] = None,
        compression: Optional[str] = None, headers: Optional[Dict[str, Any]] = None,
        link: Any = None, link_error: Any = None, shadow: Optional[str] = None,
        ignore_result: Optional[bool] = None, retry: Optional[bool] = None,
        retry_policy: Optional[Dict[str, Any]] = None, task_type: Optional[task_mod.Task] = None,
        parent_id: Optional[str] = None, root_id: Optional[str] = None,
        time_limit: Optional[float] = None, soft_time_limit: Optional[float] = None,
        **extra: Any,
    ) -> Any:
        """Send a task by name; returns its AsyncResult."""
        conf = self.conf
        if kwargs is None:
            kwargs = {}
        elif not isinstance(kwargs, dict):
            raise TypeError("kwargs must be a mapping")
        if args is None:
            args = []
        elif not isinstance(args, (list, tuple)):
            raise TypeError("args must be a list or tuple")
        route = self.route(name, args, kwargs, task_type) if _setting(conf, "task_routes") \
            else _NO_ROUTE
        queue = queue or extra.pop("routing_key", None) or route.get("queue") \
            or _setting(conf, "task_default_queue")
        if priority is None:
            priority = route.get("priority", _setting(conf, "task_default_priority"))
        now = time.time()
        due = None if countdown is None and eta is None else self._eta(eta, countdown, now)
        if expires is not None:
            expires = self._expires(expires, now)
        stack = state.tasks.get()  # the task running here: the parent
        if stack:
            parent = stack[-1]
            root_id = root_id or parent.root_id or parent.id
            parent_id = parent_id or parent.id
        if ignore_result is None and task_type is not None:
            ignore_result = task_type.ignore_result
        options = _message_options(link, link_error, ignore_result, time_limit,
                                   soft_time_limit, extra)
        task_id = str(task_id) if task_id else _uuid4()
        if stack:
            stack[-1].__dict__.setdefault("children", []).append(task_id)
        out = None
        if signals.before_task_publish.has_receivers() or _setting(
                conf, "task_send_sent_event") or signals.after_task_publish.has_receivers():
            out = publishing.Outgoing(name, task_id, queue, list(args), dict(kwargs),
                                      dict(headers or {}), options, due, expires, root_id,
                                      parent_id, priority, shadow, _client_name())
            headers = publishing.before(out, retry_policy)
        data = envelope(
            task_id, name, queue, now, args, kwargs, priority=priority, eta=due,
            expires=expires, root_id=root_id, parent_id=parent_id, shadow=shadow,
            headers=headers, options=options,
            serializer=serializer or _setting(conf, "task_serializer"),
            compression=compression or _setting(conf, "task_compression"),
        )
        limit = _setting(conf, "task_message_max_bytes")
        if limit and len(data) > limit:
            raise ValueError(f"Message of task {name} is {len(data)} bytes; "
                             f"task_message_max_bytes is {limit}")
        self._publish(name, queue, data, priority, due, task_id, retry, retry_policy)
        if out is not None:
            if _setting(conf, "task_send_sent_event"):
                self._sent_event(out)
            publishing.after(out)
        return self._sent(task_id, name, ignore_result)

    def _sent(self, task_id: str, name: str, ignore_result: Optional[bool]) -> Any:
        """The AsyncResult of a task just sent (``ignored`` when it stores no result)."""
        result = _async_result()(task_id, self, name)
        if ignore_result or (ignore_result is None
                             and _setting(self.conf, "task_ignore_result")):
            result.ignored = True
        return result

    async def asend_task(self, name: str, args: Optional[Sequence[Any]] = None,
                         kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        """``send_task()`` for asyncio code: the write to Redis is awaited."""
        from multiq import aio
        return await aio.send(self, name, args, kwargs, **options)

    @contextlib.contextmanager
    def deferred_publishes(self) -> Iterator[List[Any]]:
        """Messages sent inside the block are not written but collected, as (queue, data,
        priority, eta, member), for the worker to write with the task's ack (so a chain's
        next step and the ack of the step before are one transaction)."""
        previous = getattr(_state, "deferred", None)
        collected: List[Any] = []
        _state.deferred = collected
        try:
            yield collected
        finally:
            _state.deferred = previous

    @contextlib.contextmanager
    def publish_batch(self, flush_every: int = 1000) -> Iterator[None]:
        """Send every task sent inside the block in pipelined round trips (``group``)."""
        if getattr(_state, "batch", None) is not None:  # nested: the outer batch sends
            yield
            return
        sender = self._get_sender()
        _state.batch = batch = _Batch(sender, self.broker, flush_every)
        try:
            yield
            batch.flush()
        finally:
            _state.batch = None

    def _get_sender(self) -> Any:
        """The fast sender for the current broker (None when it has none): see
        :mod:`multiq.broker.wire`."""
        broker = self.broker
        sender = self._sender
        if sender is None or sender[0] is not broker:
            from multiq.broker.wire import Sender
            with self._lock:
                sender = self._sender
                if sender is None or sender[0] is not broker:
                    sender = self._sender = (broker, Sender.of(broker))
        return sender[1]

    def _publish(self, name: str, queue: str, data: bytes, priority: Optional[int],
                 eta: Optional[float], task_id: str, retry: Optional[bool],
                 policy: Optional[Dict[str, Any]]) -> None:
        """Write one message to the broker; a lost connection is retried per the policy."""
        captured = getattr(_state, "capture", None)
        if captured:  # a chord's body: kept with the chord's state, sent when it completes
            captured[-1].messages.append((queue, data, priority))
            return
        deferred = getattr(_state, "deferred", None)
        if deferred is not None:  # a worker's callbacks: sent with the task's ack
            deferred.append((queue, data, priority, eta, f"{task_id}:0"))
            return
        batch = getattr(_state, "batch", None)
        if batch is not None:
            batch.add(queue, data, priority, eta, f"{task_id}:0")
            return
        try:
            self._publish_now(queue, data, priority, eta, task_id)
        except _connection_errors() as exc:
            self._publish_again(lambda: self._publish_now(queue, data, priority, eta, task_id),
                                name, task_id, retry, policy, exc)

    def _chord_state(self, chord_id: str, size: int, messages: List[Any]) -> None:
        """Create a chord's state before its header is sent: in the current batch when the
        results share the broker's server (one round trip for the whole chord), else on the
        result backend now."""
        from multiq import chordstate as chord

        backend = self.backend
        batch = getattr(_state, "batch", None)
        sender = getattr(batch, "sender", None)
        if batch is not None and sender is not None and sender.same_server(backend.client):
            commands = _commands()
            chord.state_commands(commands, chord_id, size, messages, backend.expires,
                                 backend.prefix)
            batch.raw([("SELECT", int(backend.client.connection_pool.connection_kwargs.get(
                "db") or 0)), *commands.stack, ("SELECT", sender.db)])
            return
        pipe = backend.client.pipeline(transaction=False)
        chord.state_commands(pipe, chord_id, size, messages, backend.expires, backend.prefix)
        pipe.execute()

    def _publish_now(self, queue: str, data: bytes, priority: Optional[int],
                     eta: Optional[float], task_id: str) -> None:
        """One message, in Redis when this returns: the broker records its commands and the
        fast sender writes them (delayed messages, rarer, take the broker's own path)."""
        sender = self._get_sender() if eta is None else None
        if sender is None:
            self.broker.publish(queue, data, priority=priority, eta=eta, member=f"{task_id}:0")
            return
        commands = _commands()
        self.broker.publish(queue, data, priority=priority, member=f"{task_id}:0", pipe=commands)
        self.broker.seal(commands)
        sender.execute(commands.stack)

    def _publish_again(self, again: Callable[[], None], name: str, task_id: str,
                       retry: Optional[bool], policy: Optional[Dict[str, Any]],
                       exc: Exception) -> None:
        """The retries after a first attempt failed with ``exc``, as the policy says."""
        retry = self.conf.task_publish_retry if retry is None else retry
        policy = {**(self.conf.task_publish_retry_policy or {}), **(policy or {})}
        attempts = int(policy.get("max_retries", 3) or 0) if retry else 0
        interval = float(policy.get("interval_start", 0))
        for _ in range(attempts):
            logger.warning("Publishing %s failed (%s); retrying in %.1fs", task_id, exc, interval)
            time.sleep(interval)
            interval = min(interval + float(policy.get("interval_step", 0.2)),
                           float(policy.get("interval_max", 0.2)))
            try:
                again()
                return
            except _connection_errors() as error:
                exc = error
        raise OperationalError(f"Could not publish {name}: {exc}") from exc

    def _sent_event(self, out: publishing.Outgoing) -> None:
        from multiq import events

        pipe = self.broker.client.pipeline(transaction=False)
        events.add(pipe, self.broker.keys.events, events.event(
            "task-sent", uuid=out.task_id, name=out.name, queue=out.queue,
            args=events.safe_repr(out.args), kwargs=events.safe_repr(out.kwargs),
            eta=out.eta, expires=out.expires, retries=0, hostname=out.origin))
        pipe.execute()

    def route(self, name: str, args: Any = None, kwargs: Any = None,
              task: Optional[task_mod.Task] = None) -> Dict[str, Any]:
        """Options from ``task_routes`` for this task name (first match wins)."""
        routes = self.conf.task_routes
        if not routes:
            return {}
        for router in routes if isinstance(routes, (list, tuple)) else [routes]:
            found = _match_route(router, name, args, kwargs, task)
            if found:
                return found
        return {}

    def _eta(self, eta: Any, countdown: Optional[float], now: float) -> Optional[float]:
        if countdown is not None:
            return now + float(countdown)
        if eta is None:
            return None
        if isinstance(eta, dt.datetime):
            return self._aware(eta).timestamp()
        return float(eta)

    def _expires(self, expires: Any, now: float) -> Optional[float]:
        if expires is None:
            return None
        if isinstance(expires, dt.datetime):
            return self._aware(expires).timestamp()
        if isinstance(expires, dt.timedelta):
            return now + expires.total_seconds()
        return now + float(expires)

    def _aware(self, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            return value
        if self.conf.enable_utc or not self.conf.timezone:
            return value.replace(tzinfo=dt.timezone.utc)
        from zoneinfo import ZoneInfo
        return value.replace(tzinfo=ZoneInfo(self.conf.timezone))

    def signature(self, *args: Any, **kwargs: Any) -> Any:
        """``multiq.signature`` bound to this app: ``app.signature("proj.add", (2, 2))``."""
        from multiq.canvas import signature
        kwargs["app"] = self
        return signature(*args, **kwargs)

    def GroupResult(self, group_id: str, results: Any = None) -> Any:  # noqa: N802
        from multiq.result import GroupResult
        return GroupResult(group_id, results, app=self)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> Any:  # noqa: N802 - Celery's name
        from multiq.result import AsyncResult
        return AsyncResult(task_id, app=self, **kwargs)

    def store_eager(self, task: task_mod.Task, task_id: str, state: str, value: Any,
                    tb: Optional[str]) -> None:
        from multiq.backends.base import exception_to_dict, make_doc
        result = exception_to_dict(value) if isinstance(value, BaseException) else value
        self.backend.store(task_id, make_doc(task_id, state, result, tb))


class _Batch:
    """Publishes recorded, sent every ``flush_every`` messages and at the end: through the
    fast sender, or else a pipeline of the broker's client."""

    def __init__(self, sender: Any, broker: Any, flush_every: int) -> None:
        self.sender, self.broker, self.flush_every, self.count = sender, broker, flush_every, 0
        self.pipe = _commands() if sender is not None else broker.client.pipeline(
            transaction=False)

    def add(self, queue: str, data: bytes, priority: Optional[int], eta: Optional[float],
            member: str) -> None:
        self.broker.publish(queue, data, priority=priority, eta=eta, member=member,
                            pipe=self.pipe)
        self.count += 1
        if self.count >= self.flush_every:
            self.flush()

    def raw(self, commands: List[Any]) -> None:
        """Commands to write before the messages added after them (a chord's state)."""
        self.pipe.stack.extend(commands)
        self.count += 1

    def flush(self) -> None:
        if not self.count:
            return
        self.broker.seal(self.pipe)
        if self.sender is not None:
            commands, self.pipe = self.pipe.stack, _commands()
            self.sender.execute(commands)
        else:
            self.pipe.execute()
        self.count = 0


def _match_route(router: Any, name: str, args: Any, kwargs: Any,
                 task: Optional[Task]) -> Optional[Dict[str, Any]]:
    if callable(router):
        params = inspect.signature(router).parameters
        found = router(name, args, kwargs, {}, task=task) if len(params) >= 4 else router(name)
        return {"queue": found} if isinstance(found, str) else found
    if isinstance(router, dict):
        for pattern, target in router.items():
            if pattern == name or fnmatch.fnmatchcase(name, pattern):
                return {"queue": target} if isinstance(target, str) else dict(target)
    return None


_CANVAS_OPTIONS = frozenset(("chain", "group_id", "group_index", "chord", "chord_of",
                             "replaced_task_nesting"))


def _message_options(link: Any, link_error: Any, ignore_result: Optional[bool],
                     time_limit: Optional[float], soft_time_limit: Optional[float],
                     extra: Dict[str, Any]) -> Dict[str, Any]:
    """The ``options`` of a message sent with these send_task arguments."""
    options: Dict[str, Any] = {}
    if link:
        options["link"] = _sig_list(link)
    if link_error:
        options["link_error"] = _sig_list(link_error)
    if ignore_result:
        options["ignore_result"] = True
    if time_limit is not None or soft_time_limit is not None:
        check_time_limits(soft_time_limit, time_limit)
        options["timelimit"] = [time_limit, soft_time_limit]
    if extra:
        _canvas_options(options, extra)
    return options


def _canvas_options(options: Dict[str, Any], extra: Dict[str, Any]) -> None:
    """The work-flow options a message carries (see multiq.canvas), from send_task's extra
    keywords; the others (Celery's AMQP-only options) are ignored."""
    for name, value in extra.items():
        if value is not None and name in _CANVAS_OPTIONS:
            options[name] = [dict(s) for s in value] if name == "chain" else value


def _sig_list(value: Any) -> List[Any]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [dict(item) for item in items]


def _async_result() -> Any:
    global _AsyncResult
    if _AsyncResult is None:
        from multiq.result import AsyncResult
        _AsyncResult = AsyncResult
    return _AsyncResult


def _commands() -> Any:
    from multiq.broker.wire import Commands
    return Commands()


def _connection_errors() -> Tuple[Type[Exception], ...]:
    from multiq.redisconn import UNAVAILABLE
    return UNAVAILABLE


def _client_name() -> str:
    import socket
    return f"client@{socket.gethostname()}"


def _task_class(spec: Union[str, type]) -> type:
    """The Task subclass ``spec`` is or names (``"pkg.mod:Class"`` or ``"pkg.mod.Class"``)."""
    cls: Any = spec
    if isinstance(spec, str):
        module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
        if not module_name or not attr:
            raise ImproperlyConfigured(f"task_cls {spec!r} is not 'module:Class'")
        try:
            cls = importlib.import_module(module_name)
            for part in attr.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError) as exc:
            raise ImproperlyConfigured(f"task_cls {spec!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ImproperlyConfigured(f"task_cls {spec!r} is not a subclass of multiq.Task")
    return cls


def _names_django_settings(obj: Any) -> bool:
    """Whether ``obj`` is (or names) Django's settings (without importing Django; and
    without isinstance, which asks a lazy object for its ``__class__``: that configures it)."""
    if issubclass(type(obj), str):
        return obj.replace(":", ".").startswith("django.conf.settings")
    return type(obj).__module__ == "django.conf"


def _django_configured() -> bool:
    """Whether Django's settings were configured in this process (without importing it)."""
    conf = sys.modules.get("django.conf")
    return bool(conf is not None and getattr(conf.settings, "configured", False))


@overload
def shared_task(fun: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
@overload
def shared_task(fun: Callable[P, R], /) -> Task[P, R]: ...
@overload
def shared_task(*, bind: Literal[True], **options: Any) -> BoundTaskDecorator: ...
@overload
def shared_task(*, bind: Literal[False] = ..., **options: Any) -> TaskDecorator: ...


def shared_task(*args: Any, **options: Any) -> Any:
    """Like ``@app.task`` but for every app, present and future (reusable libraries); typed
    like ``@app.task`` (it returns a proxy that acts as the current app's task)."""
    def create(fun: Callable[..., Any]) -> Any:
        def make(app: MultiQ) -> Task:
            return app._create_task(fun, **options)
        _shared_tasks.append(make)
        made = [make(app) for app in state.apps]
        return _SharedTaskProxy(fun, options, made[-1] if made else None)

    if len(args) == 1 and callable(args[0]) and not options:
        return create(args[0])
    return create


class _SharedTaskProxy:
    """Stands for a shared task; resolves to the current app's instance when used."""

    def __init__(self, fun: Callable[..., Any], options: Dict[str, Any],
                 task: Optional[Task]) -> None:
        self._fun, self._options, self._task = fun, options, task

    def _resolve(self) -> Task:
        app = current_app()
        name = self._options.get("name") or app.gen_task_name(
            self._fun.__name__, self._fun.__module__)
        task = app.tasks.get(name)
        return task if task is not None else app._create_task(self._fun, **self._options)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._resolve(), item)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)


state.make_default = lambda: MultiQ("default", set_as_current=False)
