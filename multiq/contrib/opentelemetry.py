"""Tracing with OpenTelemetry: a span for each send and for each run of a task.

``instrument()`` connects receivers to multiq's signals; nothing else changes. A send
(``before_task_publish`` to ``after_task_publish``) is a PRODUCER span ``send <task name>``
whose context travels in the message's headers (W3C ``traceparent`` / ``tracestate``
through the global propagator). A run (``task_prerun`` to ``task_postrun``) is a CONSUMER
span ``process <task name>``, the child of the send's span in whichever process sent it,
and the current span while the task runs: what the task sends, and what other
instrumentations record in it, is its child.

Names and attributes follow the messaging semantic conventions (``{operation}
{destination}``, the task name standing for the destination: the queue is
``messaging.destination.name``): ``messaging.system`` ``multiq``,
``messaging.operation.type`` / ``.name`` ``send`` or ``process``,
``messaging.message.id`` (the task id), ``multiq.task.name`` and, on runs,
``multiq.task.state`` (``SUCCESS``, ``FAILURE``, ``RETRY``...), ``multiq.task.retries``
and ``messaging.client.id`` (the worker's hostname). A failed run has status ERROR and the
exception recorded; a retry is a ``retry`` event with its reason.

Pools: solo, threads and asyncio need nothing more (spans are kept by task id, and the
current span is the thread's or the asyncio Task's own). With prefork, call
``instrument()`` (and set the tracer provider) in the app module, which the worker
imports before it forks: the children inherit both, and the SDK's span processors
restart their threads after a fork. A child ends with ``os._exit``, so each child flushes
the tracer provider at ``worker_process_shutdown``; set the provider up in a
``worker_process_init`` receiver instead when an exporter cannot be inherited.

opentelemetry is imported by this module only, never by ``import multiq``.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextvars import Token
from typing import Any, Dict, Generic, Hashable, List, Optional, Tuple, TypeVar

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "multiq.contrib.opentelemetry needs opentelemetry-api: pip install 'multiq[otel]'"
    ) from exc

from multiq import __version__, signals, states
from multiq.describe import safe_str

logger = logging.getLogger(__name__)

SYSTEM = "multiq"
#: Spans kept open at once, per kind; past it the oldest is dropped unfinished (its
#: ``after_task_publish`` or ``task_postrun`` never came: a send that raised, a killed call).
MAX_OPEN = 10_000

V = TypeVar("V")


class OpenSpans(Generic[V]):
    """Spans begun and not yet ended, by key; bounded, thread-safe."""

    def __init__(self, limit: int = MAX_OPEN) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get(self, key: Hashable) -> Optional[V]:
        with self._lock:
            return self._items.get(key)

    def pop(self, key: Hashable) -> Optional[V]:
        with self._lock:
            return self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class _Getter(Getter[Any]):
    """Reads a propagated context from ``request.headers`` (a dict, or None)."""

    def get(self, carrier: Any, key: str) -> Optional[List[str]]:
        value = carrier.get(key) if isinstance(carrier, dict) else None
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)

    def keys(self, carrier: Any) -> List[str]:
        return list(carrier) if isinstance(carrier, dict) else []


_getter = _Getter()


class Tracing:
    """The signal receivers of one ``instrument()`` call, and the spans they hold open."""

    def __init__(self, tracer: Any, app: Any = None, provider: Any = None) -> None:
        self.tracer = tracer
        self.app = app
        self.provider = provider
        self.producers: OpenSpans[Span] = OpenSpans()
        self.consumers: OpenSpans[Tuple[Span, Token[Any]]] = OpenSpans()

    # -- sends ------------------------------------------------------------------------

    def before_publish(self, sender: Any = None, headers: Optional[Dict[str, Any]] = None,
                       routing_key: Optional[str] = None, **_: Any) -> None:
        task_id = (headers or {}).get("id")
        if headers is None or task_id is None:
            return
        name = str(sender or headers.get("task"))
        span = self.tracer.start_span(
            f"send {name}", kind=SpanKind.PRODUCER,
            attributes=_attributes("send", name, task_id, routing_key))
        self.producers.put(task_id, span)
        propagate.inject(headers, context=trace.set_span_in_context(span))

    def after_publish(self, sender: Any = None, headers: Optional[Dict[str, Any]] = None,
                      **_: Any) -> None:
        span = self.producers.pop((headers or {}).get("id"))
        if span is not None:
            span.end()

    # -- runs -------------------------------------------------------------------------

    def prerun(self, sender: Any = None, task_id: Optional[str] = None, task: Any = None,
               **_: Any) -> None:
        if task is None or task_id is None or not self._ours(task):
            return
        request = task.request
        # the parent is the sender's span, not what this thread had current (an eager
        # call's caller is its sender)
        here = otel_context.get_current() if getattr(request, "is_eager", False) else None
        parent = propagate.extract(getattr(request, "headers", None) or {}, context=here,
                                   getter=_getter)
        queue = (getattr(request, "delivery_info", None) or {}).get("routing_key")
        attributes = _attributes("process", task.name, task_id, queue)
        attributes["multiq.task.retries"] = int(getattr(request, "retries", 0) or 0)
        hostname = getattr(request, "hostname", None)
        if hostname:
            attributes["messaging.client.id"] = str(hostname)
        span = self.tracer.start_span(f"process {task.name}", context=parent,
                                      kind=SpanKind.CONSUMER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self.consumers.put(task_id, (span, token))

    def postrun(self, sender: Any = None, task_id: Optional[str] = None,
                state: Optional[str] = None, **_: Any) -> None:
        held = self.consumers.pop(task_id)
        if held is None:
            return
        span, token = held
        if state is not None:
            span.set_attribute("multiq.task.state", str(state))
        otel_context.detach(token)
        span.end()

    def failure(self, sender: Any = None, task_id: Optional[str] = None,
                exception: Optional[BaseException] = None, **_: Any) -> None:
        held = self.consumers.get(task_id)
        if held is None:
            return
        span = held[0]
        if exception is not None:
            span.record_exception(exception)
            description = f"{type(exception).__name__}: {safe_str(exception)}"
        else:
            description = states.FAILURE
        span.set_status(Status(StatusCode.ERROR, description))

    def retry(self, sender: Any = None, request: Any = None, reason: Any = None,
              **_: Any) -> None:
        held = self.consumers.get(getattr(request, "id", None))
        if held is not None:
            held[0].add_event("retry", {"multiq.retry.reason": safe_str(reason)})

    def flush(self, **_: Any) -> None:
        """Export what is buffered (a prefork child is about to ``os._exit``)."""
        provider = self.provider or trace.get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            try:
                force_flush()
            except Exception:
                logger.exception("Could not flush the tracer provider")

    def _ours(self, task: Any) -> bool:
        return self.app is None or getattr(task, "app", None) is self.app

    # -- wiring -----------------------------------------------------------------------

    def _pairs(self) -> Tuple[Tuple[signals.Signal, Any], ...]:
        return (
            (signals.before_task_publish, self.before_publish),
            (signals.after_task_publish, self.after_publish),
            (signals.task_prerun, self.prerun),
            (signals.task_postrun, self.postrun),
            (signals.task_failure, self.failure),
            (signals.task_retry, self.retry),
            (signals.worker_process_shutdown, self.flush),
        )

    def connect(self) -> None:
        for signal, receiver in self._pairs():
            signal.connect(receiver)

    def disconnect(self) -> None:
        for signal, receiver in self._pairs():
            signal.disconnect(receiver)


def _attributes(operation: str, name: str, task_id: str,
                queue: Optional[str]) -> Dict[str, Any]:
    attributes: Dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.message.id": str(task_id),
        "multiq.task.name": name,
    }
    if queue:
        attributes["messaging.destination.name"] = str(queue)
    return attributes


_lock = threading.Lock()
_current: Optional[Tracing] = None


def instrument(app: Any = None, tracer_provider: Any = None) -> None:
    """Trace sends and runs of tasks in this process (again: nothing more happens).

    ``tracer_provider``: where spans go (default: the global one, looked up per span).
    ``app``: only runs of this app's tasks are traced; sends are traced whichever app
    makes them (``before_task_publish`` does not say).
    """
    global _current
    with _lock:
        if _current is not None:
            return
        tracer = trace.get_tracer(__name__, __version__, tracer_provider=tracer_provider)
        _current = Tracing(tracer, app, tracer_provider)
        _current.connect()


def uninstrument() -> None:
    """Stop tracing (again, or before any ``instrument()``: nothing happens)."""
    global _current
    with _lock:
        if _current is None:
            return
        _current.disconnect()
        _current = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _current is not None
