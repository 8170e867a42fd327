"""Signatures: a task call (name, args, kwargs, options) that can be sent later or linked."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.result import AsyncResult


class Signature(dict):
    """A serializable task call; a dict so it travels inside messages."""

    def __init__(
        self, task: Any, args: Optional[Sequence[Any]] = None,
        kwargs: Optional[Dict[str, Any]] = None, options: Optional[Dict[str, Any]] = None,
        immutable: bool = False, app: Optional[MultiQ] = None, **extra: Any,
    ) -> None:
        if isinstance(task, dict):  # rebuild from a received dict
            super().__init__(task)
        else:
            opts = dict(options or {})
            immutable = opts.pop("immutable", immutable)
            super().__init__(
                task=getattr(task, "name", task), args=list(args or ()),
                kwargs=dict(kwargs or {}), options=opts, immutable=bool(immutable),
                subtask_type=None,
            )
        self._app = app

    task = property(lambda self: self["task"])
    args = property(lambda self: self["args"])
    kwargs = property(lambda self: self["kwargs"])
    options = property(lambda self: self["options"])
    immutable = property(lambda self: self.get("immutable", False))

    def set(self, **options: Any) -> Signature:
        self["options"].update(options)
        return self

    def apply_async(
        self, args: Optional[Sequence[Any]] = None, kwargs: Optional[Dict[str, Any]] = None,
        app: Optional[MultiQ] = None, **options: Any,
    ) -> AsyncResult:
        """Send the call; extra ``args`` go before the signature's own unless immutable."""
        application = app or self._app
        if application is None:
            from multiq.app import current_app
            application = current_app()
        # the sending path copies nothing it keeps, so the signature's own values can go
        call_args, call_kwargs = self["args"], self["kwargs"]
        if not self.get("immutable"):
            if args:
                call_args = [*args, *call_args]
            if kwargs:
                call_kwargs = {**call_kwargs, **kwargs}
        opts = {**self["options"], **options} if self["options"] else options
        task = application.tasks.get(self["task"])
        if task is not None:
            return task.apply_async(call_args, call_kwargs, **opts)
        return application.send_task(self["task"], call_args, call_kwargs, **opts)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        return f"{self.task}({', '.join(map(repr, self.args))})"


def signature(value: Any, app: Optional[MultiQ] = None) -> Signature:
    return value if isinstance(value, Signature) else Signature(value, app=app)


class group:  # noqa: N801 - Celery's name
    """Several task calls sent together (one pipelined round trip per thousand):
    ``group(add.s(i, i) for i in range(100)).apply_async().get()``."""

    def __init__(self, *tasks: Any, app: Optional[MultiQ] = None) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        self.tasks = [signature(t, app=app) for t in tasks]
        self._app = app

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> GroupResult:
        from multiq.app import current_app

        application = self._app or (self.tasks[0]._app if self.tasks else None) \
            or current_app()
        if application.conf.task_always_eager:
            return GroupResult([sig.apply_async(args, kwargs, app=application, **options)
                                for sig in self.tasks])
        with application.publish_batch():
            results = [sig.apply_async(args, kwargs, app=application, **options)
                       for sig in self.tasks]
        return GroupResult(results)

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Any:
        return iter(self.tasks)


class GroupResult:
    """The results of a group, in the order the tasks were given."""

    def __init__(self, results: Sequence[AsyncResult]) -> None:
        self.results = list(results)

    def get(self, timeout: Optional[float] = None, propagate: bool = True) -> List[Any]:
        """Every value, waiting for each in turn (``timeout`` bounds the whole wait)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            values.append(result.get(timeout=left, propagate=propagate))
        return values

    join = get

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        return any(r.failed() for r in self.results)

    def completed_count(self) -> int:
        return sum(1 for r in self.results if r.successful())

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]
