"""The multiq exception tree: everything raised by multiq derives from MultiQError."""
from __future__ import annotations

from typing import Any, Optional

from multiq.describe import describe, safe_str


class MultiQError(Exception):
    """Base class of every multiq error."""


class ImproperlyConfigured(MultiQError):
    """A setting is missing or has a value multiq cannot use."""


class BrokerNotConfigured(ImproperlyConfigured):
    """The app has no broker URL: none from ``-b``, ``MULTIQ_BROKER_URL`` or ``broker_url``."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or (
            "No broker configured: give -b redis://HOST:6379/0, set MULTIQ_BROKER_URL, "
            "or set broker_url (MultiQ(broker=...)) in the app"))


class NotRegistered(MultiQError, KeyError):
    """The task name is not registered with this app."""

    def __str__(self) -> str:
        return f"Task of kind {self.args[0]!r} is not registered" if self.args else "NotRegistered"


class TimeoutError(MultiQError):  # noqa: A001 - mirrors the Celery name on purpose
    """An operation did not complete within its time limit."""


class SoftTimeLimitExceeded(MultiQError):
    """Raised inside a task when its soft time limit has passed."""


class TimeLimitExceeded(MultiQError):
    """A task ran past its hard time limit and was killed."""


class CallKilled(BaseException):
    """Thrown into a task's call by a pool that runs it in the node's own process (gevent),
    to end it now: its hard time limit, ``revoke --terminate``. It passes through the
    task's hooks untouched and the pool records the outcome, as prefork's node does for a
    child it killed. Outside the tree on purpose (as ``GreenletExit`` is): a task's
    ``except Exception`` must not stop it."""


class WorkerLostError(MultiQError):
    """The process running a task died before the task finished."""


class TaskRevokedError(MultiQError):
    """The task was revoked (or expired) and did not run."""


class ContentDisallowed(MultiQError):
    """A message used a serializer that is not in ``accept_content``."""


class DecodeError(MultiQError):
    """A message or result could not be decoded."""


class EncodeError(MultiQError):
    """A task's result could not be encoded with the result serializer."""


class QueueNotFound(MultiQError, KeyError):
    """A queue was named that the worker does not know."""


class TaskError(MultiQError):
    """A task failed with an exception that cannot be imported here.

    ``exc_type`` and ``exc_module`` name the original exception; ``args`` carry its message.
    """

    def __init__(self, message: str = "", exc_type: str = "", exc_module: str = "") -> None:
        super().__init__(message)
        self.exc_type = exc_type
        self.exc_module = exc_module

    def __str__(self) -> str:
        msg = self.args[0] if self.args else ""
        return f"{self.exc_type}: {msg}" if self.exc_type else str(msg)


class ChordError(MultiQError):
    """A chord's callback cannot run: a header task failed (or was revoked)."""


class IncompleteStream(MultiQError):
    """A result's children were asked for before the result was ready."""


class ResultIgnored(MultiQError):
    """``get()`` of a task sent with ``ignore_result``: its result is never stored."""


class BackendNotConfigured(MultiQError):
    """Results were asked for but the app has no ``result_backend``."""


class Retry(MultiQError):
    """Raised by ``Task.retry()`` to tell the worker the task will run again."""

    def __init__(
        self,
        message: Optional[str] = None,
        exc: Optional[BaseException] = None,
        when: Any = None,
        is_eager: bool = False,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        self.is_eager = is_eager
        super().__init__(message or (describe(exc) if exc is not None else "Retry"))

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        reason = f": {describe(self.exc)}" if self.exc is not None else ""
        return f"Retry {self.humanize()}{reason}"


class MaxRetriesExceededError(MultiQError):
    """The task asked to retry but has already used all of its retries."""


class Reject(MultiQError):
    """Raised by a task to reject its message (``requeue=True`` puts it back)."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __str__(self) -> str:
        return safe_str(self.reason) if self.reason is not None else "Reject"


class Ignore(MultiQError):
    """Raised by a task so that the worker records no state for it."""


class WorkerShutdown(MultiQError, SystemExit):
    """Raised in the worker to ask for a warm shutdown."""


class WorkerTerminate(MultiQError, SystemExit):
    """Raised in the worker to ask for a cold shutdown."""


class OperationalError(MultiQError):
    """The broker or result store could not be reached."""
