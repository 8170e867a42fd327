"""AsyncResult: a handle on a task's state and return value."""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Dict, Optional

from multiq import states
from multiq.backends.base import exception_from_dict, parse_date
from multiq.exceptions import TaskRevokedError

if TYPE_CHECKING:
    from multiq.app import MultiQ


class AsyncResult:
    """The state and result of one task, read from the result backend."""

    def __init__(self, id: str, app: Optional[MultiQ] = None, task_name: Optional[str] = None):
        if app is None:
            from multiq.app import current_app
            app = current_app()
        self.id = id if type(id) is str else str(id)
        self.app = app
        self._name = task_name
        self._cache: Optional[Dict[str, Any]] = None

    task_id = property(lambda self: self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        return isinstance(other, str) and other == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- reading -----------------------------------------------------------------------

    def _get_meta(self) -> Dict[str, Any]:
        if self._cache is not None:
            return self._cache
        meta = self.app.backend.get_meta(self.id)
        if meta.get("status") in states.READY_STATES:
            self._cache = meta
        return meta

    @property
    def state(self) -> str:
        return str(self._get_meta().get("status", states.PENDING))

    status = state

    @property
    def result(self) -> Any:
        meta = self._get_meta()
        if meta.get("status") in states.EXCEPTION_STATES:
            return self._exception(meta)
        return meta.get("result")

    info = result

    @property
    def traceback(self) -> Optional[str]:
        return self._get_meta().get("traceback")

    @property
    def date_done(self) -> Optional[dt.datetime]:
        return parse_date(self._get_meta().get("date_done"))

    @property
    def name(self) -> Optional[str]:
        return self._get_meta().get("name") or self._name

    args = property(lambda self: self._get_meta().get("args"))
    kwargs = property(lambda self: self._get_meta().get("kwargs"))
    worker = property(lambda self: self._get_meta().get("worker"))
    retries = property(lambda self: self._get_meta().get("retries"))
    queue = property(lambda self: self._get_meta().get("queue"))
    children = property(lambda self: self._get_meta().get("children") or [])

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def get(
        self,
        timeout: Optional[float] = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        **_: Any,
    ) -> Any:
        """Wait for the task and return its value; re-raise its exception if it failed."""
        meta = self._cache or self.app.backend.wait_for(self.id, timeout=timeout)
        self._cache = meta
        status = meta.get("status")
        if status in states.PROPAGATE_STATES and propagate:
            raise self._exception(meta)
        if status in states.EXCEPTION_STATES:
            return self._exception(meta)
        return meta.get("result")

    wait = get

    def _exception(self, meta: Dict[str, Any]) -> BaseException:
        info = meta.get("result")
        if meta.get("status") == states.REVOKED:
            reason = info.get("exc_message") if isinstance(info, dict) else info
            if isinstance(reason, list):
                reason = reason[0] if reason else "revoked"
            return TaskRevokedError(reason or "revoked")
        return exception_from_dict(info)

    # -- acting ------------------------------------------------------------------------

    def forget(self) -> None:
        self._cache = None
        self.app.backend.forget(self.id)

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", **_: Any) -> None:
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

    def then(self, *a: Any, **kw: Any) -> Any:  # pragma: no cover - promise API not provided
        raise NotImplementedError("AsyncResult.then is not supported")


class EagerResult(AsyncResult):
    """The result of a task run locally with ``apply()`` or ``task_always_eager``."""

    def __init__(self, id: str, value: Any, status: str, traceback: Optional[str] = None,
                 name: Optional[str] = None, app: Optional[MultiQ] = None) -> None:
        self.id = id
        self.app = app  # type: ignore[assignment]
        self._name = name
        self._cache = None
        self._value = value
        self._status = status
        self._traceback = traceback
        self._date = dt.datetime.now(dt.timezone.utc)

    def _get_meta(self) -> Dict[str, Any]:
        return {"status": self._status, "result": self._value, "traceback": self._traceback,
                "date_done": self._date.isoformat(), "task_id": self.id, "name": self._name}

    @property
    def result(self) -> Any:
        return self._value

    info = result

    def get(self, timeout: Optional[float] = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True, **_: Any) -> Any:
        if self._status in states.PROPAGATE_STATES and propagate:
            raise self._value
        return self._value

    wait = get

    def forget(self) -> None:
        pass
