"""Signatures: a task call (name, args, kwargs, options) that can be sent later or linked."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

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
        from multiq.app import current_app

        application = app or self._app or current_app()
        if self.immutable:
            call_args, call_kwargs = list(self.args), dict(self.kwargs)
        else:
            call_args = list(args or ()) + list(self.args)
            call_kwargs = {**self.kwargs, **(kwargs or {})}
        opts = {**self.options, **options}
        task = application.tasks.get(self.task)
        if task is not None:
            return task.apply_async(call_args, call_kwargs, **opts)
        return application.send_task(self.task, call_args, call_kwargs, **opts)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        return f"{self.task}({', '.join(map(repr, self.args))})"


def signature(value: Any, app: Optional[MultiQ] = None) -> Signature:
    return value if isinstance(value, Signature) else Signature(value, app=app)
