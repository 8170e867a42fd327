"""Task: what ``@app.task`` makes of a function, and the request context it runs in."""
from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING, Any, Dict, Generic, List, Optional, Sequence, Tuple

from multiq import _state, states
from multiq._typing import P, R
from multiq.canvas import Signature
from multiq.exceptions import MaxRetriesExceededError, Retry

if TYPE_CHECKING:
    from typing import Coroutine

    from multiq.app import MultiQ
    from multiq.result import AsyncResult

_tasks = _state.tasks
_SEND_OPTIONS = ("queue", "priority", "expires", "serializer", "compression", "ignore_result")


def check_time_limits(soft: Any, hard: Any) -> None:
    """Celery's rule: a soft time limit above the hard one is an error, not a no-op.
    (Limits that are not numbers are the node's to refuse, message by message.)"""
    numbers = (int, float)
    if isinstance(soft, numbers) and isinstance(hard, numbers) and soft and hard \
            and soft > hard:
        raise ValueError("soft_time_limit must be less than or equal to time_limit")


class Context:
    """``self.request`` inside a running task."""

    id: Optional[str] = None
    task: Optional[str] = None
    args: Sequence[Any] = ()
    kwargs: Dict[str, Any] = {}
    retries: int = 0
    is_eager: bool = False
    called_directly: bool = True
    hostname: Optional[str] = None
    delivery_info: Dict[str, Any] = {}
    eta: Optional[str] = None
    expires: Optional[str] = None
    headers: Optional[Dict[str, Any]] = None
    root_id: Optional[str] = None
    parent_id: Optional[str] = None
    origin: Optional[str] = None
    priority: Optional[int] = None
    ignore_result: bool = False
    timelimit: Tuple[Optional[float], Optional[float]] = (None, None)
    callbacks: Optional[List[Any]] = None
    errbacks: Optional[List[Any]] = None
    shadow: Optional[str] = None
    chain: Optional[List[Any]] = None  # the chain's remaining steps, next last
    group: Optional[str] = None
    group_index: Optional[int] = None
    chord: Optional[Dict[str, Any]] = None  # {"id": chord id, "i": index} of a header task
    replaced_task_nesting: int = 0
    reply_to: Optional[str] = None
    correlation_id: Optional[str] = None
    stamps: Dict[str, Any] = {}
    stamped_headers: Optional[List[str]] = None

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    @property
    def time_limit(self) -> Optional[float]:
        """The hard time limit of this call, in seconds (None: none)."""
        return self.timelimit[0] if self.timelimit else None

    @property
    def soft_time_limit(self) -> Optional[float]:
        return self.timelimit[1] if self.timelimit else None

    @property
    def properties(self) -> Dict[str, Any]:
        """The message's properties, as Celery's ``request.properties``."""
        return {"correlation_id": self.correlation_id or self.id, "reply_to": self.reply_to,
                "delivery_mode": 2, "priority": self.priority,
                "delivery_info": self.delivery_info}

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __repr__(self) -> str:
        return f"<Context: {self.__dict__!r}>"


class Task(Generic[P, R]):
    """Base class of tasks; subclass it and pass ``base=`` to add hooks.

    Generic for type checkers: ``@app.task`` makes a ``Task[P, R]`` of a function taking
    ``P`` and returning ``R``, whose ``delay()`` takes ``P`` and returns ``AsyncResult[R]``.
    """

    name: str = ""
    app: MultiQ = None  # type: ignore[assignment]
    typing = True
    max_retries: Optional[int] = 3
    default_retry_delay: float = 180
    autoretry_for: Tuple[type, ...] = ()
    retry_kwargs: Dict[str, Any] = {}
    retry_backoff: Any = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    rate_limit: Optional[str] = None
    time_limit: Optional[float] = None
    soft_time_limit: Optional[float] = None
    ignore_result: Optional[bool] = None
    store_errors_even_if_ignored = False
    acks_late: Optional[bool] = None
    reject_on_worker_lost: Optional[bool] = None
    track_started: Optional[bool] = None
    serializer: Optional[str] = None
    compression: Optional[str] = None
    queue: Optional[str] = None
    priority: Optional[int] = None
    expires: Any = None
    bind = False
    #: Whether a subclass overrides ``__call__``: then workers and ``apply()`` run the task
    #: through it (e.g. to push a framework's context), else they call ``run`` directly.
    #: Set once per class, when it is made.
    _custom_call = False
    #: ``pydantic=True`` tasks: turns model arguments into JSON-able ones when sending
    _dump_arguments: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._custom_call = _overrides_call(cls)

    # -- calling -----------------------------------------------------------------------

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:  # replaced by the decorated function
        raise NotImplementedError("Tasks must define the run method.")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(*args, **kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments: ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Optional[Sequence[Any]] = None, kwargs: Optional[Dict[str, Any]] = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task to a worker; see SPEC for the options."""
        app = self.app
        check_time_limits(self.soft_time_limit, self.time_limit)
        if self._dump_arguments is not None:
            args, kwargs = self._dump_arguments(args or (), kwargs or {})
        if dict.get(app.conf, "task_always_eager"):
            return self.apply(args, kwargs, **options)
        for attr in _SEND_OPTIONS:  # the task's own defaults, unless given
            value = getattr(self, attr)
            if value is not None and options.get(attr) is None:
                options[attr] = value
        return app.send_task(self.name, args, kwargs, task_type=self, **options)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay()`` for asyncio code: the write to Redis is awaited."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(
        self, args: Optional[Sequence[Any]] = None, kwargs: Optional[Dict[str, Any]] = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async()`` for asyncio code: the write to Redis is awaited."""
        from multiq import aio

        app = self.app
        if self._dump_arguments is not None:
            args, kwargs = self._dump_arguments(args or (), kwargs or {})
        if dict.get(app.conf, "task_always_eager"):
            return self.apply(args, kwargs, **options)
        for attr in _SEND_OPTIONS:
            value = getattr(self, attr)
            if value is not None and options.get(attr) is None:
                options[attr] = value
        return await aio.send(app, self.name, args, kwargs, task_type=self,
                              **options)

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """``delay(*args, **kwargs)`` once the current Django database transaction commits
        (``transaction.on_commit``): never if it rolls back, at once outside a transaction.
        Returns None: there may be nothing sent yet."""
        _on_commit(lambda: self.delay(*args, **kwargs))

    def apply_async_on_commit(
        self, args: Optional[Sequence[Any]] = None, kwargs: Optional[Dict[str, Any]] = None,
        **options: Any,
    ) -> None:
        """``apply_async(args, kwargs, **options)`` once the current Django database
        transaction commits; see :meth:`delay_on_commit`."""
        _on_commit(lambda: self.apply_async(args, kwargs, **options))

    def apply(
        self, args: Optional[Sequence[Any]] = None, kwargs: Optional[Dict[str, Any]] = None,
        task_id: Optional[str] = None, retries: int = 0, throw: Optional[bool] = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Run the task here and now; returns an EagerResult."""
        from multiq.result import EagerResult
        from multiq.trace import run_eager

        task_id = task_id or str(uuid.uuid4())
        state, value, tb = run_eager(self, list(args or ()), dict(kwargs or {}), task_id,
                                     retries=retries, options=options)
        propagate = self.app.conf.task_eager_propagates if throw is None else throw
        if propagate and state == states.FAILURE:
            raise value
        result = EagerResult(task_id, value, state, tb, name=self.name, app=self.app)
        if self.app.conf.task_store_eager_result and self.app.conf.result_backend:
            self.app.store_eager(self, task_id, state, value, tb)
        return result

    # -- context -----------------------------------------------------------------------

    # (the stack is per thread and per asyncio Task: see multiq._state.tasks)

    @property
    def request(self) -> Context:
        stack = _tasks.get()
        return stack[-1] if stack else Context()

    def push_request(self, request: Context) -> None:
        stack = _tasks.get()
        if stack is None:
            stack = []
            _tasks.set(stack)
        stack.append(request)

    def pop_request(self) -> None:
        _tasks.get().pop()  # type: ignore[union-attr]

    # -- retrying ----------------------------------------------------------------------

    def update_state(self, task_id: Optional[str] = None, state: Optional[str] = None,
                     meta: Any = None, **_: Any) -> None:
        """Store ``state`` (a custom one, such as ``"PROGRESS"``, too) with ``meta`` as the
        task's result, for ``AsyncResult.state`` / ``.info`` (and, with events on, a
        ``task-<state>`` event); whoever waits in ``get()`` keeps waiting, and the task's
        own outcome replaces it when it ends. Outside a running task, name the ``task_id``.
        Without a result backend it does nothing."""
        from multiq.backends.base import make_doc
        from multiq.exceptions import BackendNotConfigured

        task_id = task_id or self.request.id
        if not task_id:
            raise ValueError("update_state() outside a running task needs a task_id")
        if not state:
            raise ValueError("update_state() needs a state, e.g. state='PROGRESS'")
        try:
            backend = self.app.backend
        except BackendNotConfigured:
            return
        doc = make_doc(task_id, str(state), meta)
        request = self.request
        if self.app.conf.result_extended and request.id == task_id:
            doc.update(name=self.name, args=request.args, kwargs=request.kwargs,
                       worker=request.hostname, retries=request.retries,
                       queue=(request.delivery_info or {}).get("routing_key"))
        backend.store(task_id, doc)
        if dict.get(self.app.conf, "worker_send_task_events"):
            self._state_event(task_id, str(state), meta)

    def _state_event(self, task_id: str, state: str, meta: Any) -> None:
        """``task-<state>`` (``task-progress``...): Celery's event readers (Flower too) take
        an unknown task event's name for a custom state."""
        from multiq import events

        broker = self.app.broker
        pipe = broker.client.pipeline(transaction=False)
        events.add(pipe, broker.keys.events, events.event(
            f"task-{state.lower()}", uuid=task_id, name=self.name, state=state,
            hostname=self.request.hostname, result=events.safe_repr(meta)))
        pipe.execute()

    def retry(
        self, args: Optional[Sequence[Any]] = None, kwargs: Optional[Dict[str, Any]] = None,
        exc: Optional[BaseException] = None, throw: bool = True, eta: Any = None,
        countdown: Optional[float] = None, max_retries: Optional[int] = None, **options: Any,
    ) -> Retry:
        """Ask the worker to run this task again later; raises :class:`Retry`."""
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if request.called_directly:
            if exc is not None:
                raise exc
            raise Retry("Task can be retried", None)
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        retry = Retry(exc=exc, when=eta if eta is not None else countdown)
        retry.plan = {  # type: ignore[attr-defined]
            "args": list(request.args if args is None else args),
            "kwargs": dict(request.kwargs if kwargs is None else kwargs),
            "countdown": countdown, "eta": eta, "options": options,
        }
        if throw:
            raise retry
        return retry

    def backoff_delay(self, retries: int) -> float:
        """Exponential backoff for autoretry: factor * 2**retries, capped, maybe jittered."""
        factor = 1 if self.retry_backoff is True else float(self.retry_backoff)
        delay = min(factor * (2 ** retries), float(self.retry_backoff_max))
        if self.retry_jitter:
            delay = random.randrange(int(delay) + 1)
        return delay

    # -- hooks ---------------------------------------------------------------------------

    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Dict[str, Any]) -> None:
        """Called before the task runs."""

    def on_success(self, retval: Any, task_id: str, args: Sequence[Any],
                   kwargs: Dict[str, Any]) -> None:
        """Called when the task succeeded."""

    def on_failure(self, exc: BaseException, task_id: str, args: Sequence[Any],
                   kwargs: Dict[str, Any], einfo: Any) -> None:
        """Called when the task failed."""

    def on_retry(self, exc: BaseException, task_id: str, args: Sequence[Any],
                 kwargs: Dict[str, Any], einfo: Any) -> None:
        """Called when the task is to be retried."""

    def after_return(self, status: str, retval: Any, task_id: str, args: Sequence[Any],
                     kwargs: Dict[str, Any], einfo: Any) -> None:
        """Called after the task returned, whatever the outcome."""

    # -- signatures --------------------------------------------------------------------

    def signature(self, args: Optional[Sequence[Any]] = None,
                  kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Signature:
        return Signature(self.name, args, kwargs, options, app=self.app)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs, immutable=True)

    subtask = signature

    def map(self, it: Any) -> Any:
        """One task calling this one for every item: ``[self(x) for x in it]``."""
        from multiq.canvas import xmap
        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Any) -> Any:
        """One task calling this one with every tuple: ``[self(*x) for x in it]``."""
        from multiq.canvas import xstarmap
        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Any, n: int) -> Any:
        """``it`` (argument tuples) in parts of ``n``, each part one task."""
        from multiq.canvas import chunks
        return chunks(self.s(), it, n, app=self.app)

    def replace(self, sig: Any) -> None:
        """End this task with ``sig`` in its place: ``sig`` takes this task's id, its chord
        place, callbacks, errbacks and the rest of its chain. Raises Ignore."""
        from multiq.canvas import group, maybe_signature
        from multiq.exceptions import Ignore

        request = self.request
        if request.called_directly or request.id is None:
            raise RuntimeError("replace() needs a task run by a worker or apply()")
        sig = maybe_signature(sig, self.app)
        if isinstance(sig, group):  # a chord, so its results come back as one value
            sig = sig | self.app.tasks["multiq.accumulate"].s(index=-1)
        for callback in request.callbacks or ():
            sig.link(maybe_signature(callback, self.app))
        for errback in request.errbacks or ():
            sig.link_error(maybe_signature(errback, self.app))
        nesting = (request.replaced_task_nesting or 0) + 1
        sig.freeze(request.id, root_id=request.root_id, parent_id=request.parent_id)
        for tail in sig._tails():
            if request.chord:
                tail.options["chord"] = request.chord
            if request.group:
                tail.options["group_id"] = request.group
                tail.options["group_index"] = request.group_index
            tail.options["replaced_task_nesting"] = nesting
        for step in reversed(request.chain or ()):
            sig = sig | maybe_signature(step, self.app)
        if request.is_eager:
            sig.apply()
        else:
            sig.apply_async()
        raise Ignore("Replaced by new task")

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:  # noqa: N802 - Celery's name
        from multiq.result import AsyncResult
        return AsyncResult(task_id, app=self.app, task_name=self.name)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main if self.app else None}>"


if TYPE_CHECKING:
    class AsyncTask(Task[P, R]):
        """What ``@app.task`` makes of an ``async def`` returning ``R``: its results are ``R``;
        called directly, it returns the coroutine."""

        def run(  # type: ignore[override]
            self, *args: P.args, **kwargs: P.kwargs
        ) -> Coroutine[Any, Any, R]: ...

        def __call__(  # type: ignore[override]
            self, *args: P.args, **kwargs: P.kwargs
        ) -> Coroutine[Any, Any, R]: ...
else:
    AsyncTask = Task  # one class at run time: only type checkers tell them apart


def _overrides_call(cls: type) -> bool:
    """Whether a class below :class:`Task` in ``cls``'s MRO defines ``__call__``."""
    for klass in cls.__mro__:
        if klass is Task:
            return False
        if "__call__" in vars(klass):
            return True
    return False


def _on_commit(send: Any) -> None:
    """Call ``send`` when Django's current transaction commits (now, outside one)."""
    from django.db import transaction

    transaction.on_commit(send)
