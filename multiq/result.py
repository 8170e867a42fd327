"""AsyncResult: a handle on a task's state and return value."""
from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any, Dict, Generic, Iterator, List, Optional, Sequence, Tuple

from multiq import _state, states
from multiq._typing import R_co
from multiq.backends.base import exception_from_dict, parse_date
from multiq.exceptions import IncompleteStream, TaskRevokedError

if TYPE_CHECKING:
    from multiq.app import MultiQ


class AsyncResult(Generic[R_co]):
    """The state and result of one task, read from the result backend.

    Generic for type checkers: the result of a ``Task[P, R]`` is an ``AsyncResult[R]``,
    whose ``get()`` returns ``R``; a bare ``AsyncResult`` is ``AsyncResult[Any]``.
    """

    def __init__(self, id: str, app: Optional[MultiQ] = None, task_name: Optional[str] = None,
                 parent: Any = None):
        if app is None:
            app = _state.current_app()
        self.id = id if type(id) is str else str(id)
        self.app = app
        self._name = task_name
        self._cache: Optional[Dict[str, Any]] = None
        self.parent = parent  # the result before this one in a chain (or a chord's header)
        #: the task was sent with ``ignore_result``: there will be no result to get
        self.ignored = False

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

    @property
    def children(self) -> List[Any]:
        """Results of the tasks this one sent (its callbacks, its chain's next step)."""
        return [result_from_tuple(t, self.app) for t in self._get_meta().get("children") or ()]

    def as_tuple(self) -> Any:
        return [[self.id, self.parent.as_tuple() if self.parent is not None else None], None]

    def iterdeps(self, intermediate: bool = False) -> Iterator[Tuple[Any, Any]]:
        """(parent, child) pairs, depth first, from this result down through its children."""
        stack: List[Tuple[Any, Any]] = [(None, self)]
        while stack:
            parent, node = stack.pop()
            yield parent, node
            if node.ready():
                stack.extend((node, child) for child in node.children)
            elif not intermediate:
                raise IncompleteStream()

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[Tuple[Any, Any]]:
        """(result, value) of this task and every task below it, waiting for each."""
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(**kwargs)

    def get_leaf(self) -> Any:
        """The value of the last task below this one (the end of its chain)."""
        value = None
        for _, value in self.iterdeps():  # noqa: B007 - the last one
            pass
        return value.get() if value is not None else None

    @property
    def graph(self) -> DependencyGraph:
        graph = DependencyGraph()
        for parent, node in self.iterdeps(intermediate=True):
            graph.add_arc(node)
            if parent is not None:
                graph.add_edge(parent, node)
        return graph

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
    ) -> R_co:
        """Wait for the task and return its value; re-raise its exception if it failed."""
        if self.ignored:
            raise self._ignored_error()
        meta = self._cache or self.app.backend.wait_for(self.id, timeout=timeout)
        return self._outcome(meta, propagate)

    wait = get

    async def aget(self, timeout: Optional[float] = None, propagate: bool = True,
                   **_: Any) -> R_co:
        """``get()`` for asyncio code: awaits the same notification, never polls."""
        from multiq import aio

        if self.ignored:
            raise self._ignored_error()
        meta = self._cache or await aio.wait_for(self.app, self.id, timeout)
        return self._outcome(meta, propagate)

    def _ignored_error(self) -> Exception:
        from multiq.exceptions import ResultIgnored

        return ResultIgnored(f"task {self._name or '?'}[{self.id}] was sent with ignore_result: "
                             "its result is never stored, so get() would wait for ever")

    def _outcome(self, meta: Dict[str, Any], propagate: bool) -> Any:
        """The value of a ready document (cached): its exception raised with
        ``propagate``, returned without."""
        self._cache = meta
        status = meta.get("status")
        if status in states.PROPAGATE_STATES and propagate:
            raise self._exception(meta)
        if status in states.EXCEPTION_STATES:
            return self._exception(meta)
        return meta.get("result")

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
        """Revoke this task and, for the result of a chain (or chord), every step before it
        that has not run yet."""
        self.app.control.revoke(self._lineage_ids(), terminate=terminate, signal=signal)

    def _lineage_ids(self) -> List[str]:
        ids, node = [], self
        while node is not None:
            ids += node.ids() if isinstance(node, GroupResult) else [node.id]
            node = node.parent
        return ids

    def then(self, *a: Any, **kw: Any) -> Any:  # pragma: no cover - promise API not provided
        raise NotImplementedError("AsyncResult.then is not supported")


class GroupResult:
    """The results of a group, in the order its tasks were given (Celery's ResultSet and
    GroupResult in one)."""

    def __init__(self, id: Optional[str] = None, results: Optional[Sequence[Any]] = None,
                 parent: Any = None, app: Optional[MultiQ] = None) -> None:
        if results is None and id is not None and not isinstance(id, str):
            id, results = None, id  # GroupResult([...]) as the old signature allowed
        self.id = id
        self.results: List[Any] = list(results or ())
        self.parent = parent
        self._app = app

    @property
    def app(self) -> MultiQ:
        if self._app is None:
            self._app = _state.current_app()
        return self._app

    children = property(lambda self: self.results)

    def ids(self) -> List[str]:
        return [r.id for r in self.results]

    def _metas(self) -> List[Dict[str, Any]]:
        """Every member's document, read in one round trip (member results cache theirs)."""
        pending = [r for r in self.results if not isinstance(r, (EagerResult, GroupResult))
                   and r._cache is None]
        if pending:
            for r, meta in zip(pending, self.app.backend.get_many([r.id for r in pending])):
                if meta.get("status") in states.READY_STATES:
                    r._cache = meta
        return [r._get_meta() if not isinstance(r, GroupResult) else {} for r in self.results]

    def _states(self) -> List[str]:
        out = []
        metas = self._metas()
        for r, meta in zip(self.results, metas):
            if isinstance(r, GroupResult):
                out.append(states.SUCCESS if r.successful() else
                           states.FAILURE if r.failed() else states.PENDING)
            else:
                out.append(str(meta.get("status", states.PENDING)))
        return out

    def ready(self) -> bool:
        return all(s in states.READY_STATES for s in self._states())

    def successful(self) -> bool:
        return all(s == states.SUCCESS for s in self._states())

    def failed(self) -> bool:
        return any(s == states.FAILURE for s in self._states())

    def waiting(self) -> bool:
        return any(s not in states.READY_STATES for s in self._states())

    def completed_count(self) -> int:
        return sum(1 for s in self._states() if s == states.SUCCESS)

    def get(self, timeout: Optional[float] = None, propagate: bool = True,
            interval: float = 0.5, callback: Any = None, **kwargs: Any) -> List[Any]:
        """Every value, in order (``timeout`` bounds the whole wait); the first failure is
        raised with ``propagate``. Ready results are read in one round trip."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._metas()
        values = []
        for result in self.results:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            value = result.get(timeout=left, propagate=propagate, **kwargs)
            if callback is not None:
                callback(result.id, value)
            values.append(value)
        return values

    join = get
    join_native = get

    async def aget(self, timeout: Optional[float] = None, propagate: bool = True,
                   **kwargs: Any) -> List[Any]:
        """``get()`` for asyncio code: ready members read in one round trip, the others
        awaited in turn (``timeout`` bounds the whole wait)."""
        from multiq import aio

        deadline = None if timeout is None else time.monotonic() + timeout
        plain = [r for r in self.results if not isinstance(r, (EagerResult, GroupResult))
                 and r._cache is None]
        for r, meta in zip(plain, await aio.get_many(self.app, [r.id for r in plain])):
            if meta.get("status") in states.READY_STATES:
                r._cache = meta
        values = []
        for result in self.results:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            values.append(await result.aget(timeout=left, propagate=propagate, **kwargs))
        return values

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", **_: Any) -> None:
        self.app.control.revoke(self.ids(), terminate=terminate, signal=signal)

    def forget(self) -> None:
        for r in self.results:
            r.forget()
        if self.id:
            self.app.backend.forget_group(self.id)

    def save(self, backend: Any = None) -> GroupResult:
        """Keep the group's member ids in the result backend, for :meth:`restore`."""
        (backend or self.app.backend).save_group(self.id, self.as_tuple())
        return self

    @classmethod
    def restore(cls, id: str, backend: Any = None, app: Optional[MultiQ] = None
                ) -> Optional[GroupResult]:
        if app is None:
            app = _state.current_app()
        saved = (backend or app.backend).restore_group(id)
        return result_from_tuple(saved, app) if saved is not None else None

    def delete(self, backend: Any = None) -> None:
        (backend or self.app.backend).forget_group(self.id)

    def as_tuple(self) -> Any:
        return [[self.id, self.parent.as_tuple() if self.parent is not None else None],
                [r.as_tuple() for r in self.results]]

    def add(self, result: Any) -> None:
        if result not in self.results:
            self.results.append(result)

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id \
            and other.results == self.results

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"


ResultSet = GroupResult


def result_from_tuple(value: Any, app: Optional[MultiQ] = None) -> Any:
    """The AsyncResult or GroupResult that ``as_tuple()`` (or a stored ``children`` entry)
    describes."""
    if isinstance(value, (AsyncResult, GroupResult)):
        return value
    (task_id, parent), members = value
    parent_result = result_from_tuple(parent, app) if parent else None
    if members is not None:
        return GroupResult(task_id, [result_from_tuple(m, app) for m in members],
                           parent=parent_result, app=app)
    return AsyncResult(task_id, app=app, parent=parent_result)


class DependencyGraph:
    """Results and who sent whom (``AsyncResult.graph``)."""

    def __init__(self) -> None:
        self.adjacent: Dict[Any, List[Any]] = {}

    def add_arc(self, node: Any) -> None:
        self.adjacent.setdefault(node, [])

    def add_edge(self, parent: Any, child: Any) -> None:
        self.adjacent.setdefault(parent, []).append(child)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.adjacent)

    def __len__(self) -> int:
        return len(self.adjacent)

    def items(self) -> Any:
        return self.adjacent.items()

    def to_dot(self, fh: Any) -> None:
        """Write the graph in GraphViz's dot language to the text file ``fh``."""
        fh.write("digraph dependencies {\n")
        for node, children in self.adjacent.items():
            fh.write(f'  "{node.id}";\n')
            for child in children:
                fh.write(f'  "{node.id}" -> "{child.id}";\n')
        fh.write("}\n")


class EagerResult(AsyncResult[R_co]):
    """The result of a task run locally with ``apply()`` or ``task_always_eager``."""

    def __init__(self, id: str, value: Any, status: str, traceback: Optional[str] = None,
                 name: Optional[str] = None, app: Optional[MultiQ] = None) -> None:
        self.id = id
        self.app = app
        self._name = name
        self._cache = None
        self._value = value
        self._status = status
        self._traceback = traceback
        self._date = dt.datetime.now(dt.timezone.utc)
        self.parent = None

    def _get_meta(self) -> Dict[str, Any]:
        return {"status": self._status, "result": self._value, "traceback": self._traceback,
                "date_done": self._date.isoformat(), "task_id": self.id, "name": self._name}

    @property
    def result(self) -> Any:
        return self._value

    info = result

    def get(self, timeout: Optional[float] = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True, **_: Any) -> R_co:
        if self._status in states.PROPAGATE_STATES and propagate:
            raise self._value
        return self._value

    wait = get

    async def aget(self, timeout: Optional[float] = None, propagate: bool = True,
                   **_: Any) -> R_co:
        return self.get(timeout=timeout, propagate=propagate)

    def forget(self) -> None:
        pass
