"""The type parameters of :class:`~multiq.task.Task` and :class:`~multiq.result.AsyncResult`,
and the types of the ``@app.task`` decorators.

Type checkers read ``ParamSpec``, ``Concatenate`` and ``TypeVar(default=...)`` from
``typing_extensions``, whose stubs they ship, so the types hold for every Python a checker
targets; at run time nothing is imported beyond :mod:`typing`. ``ParamSpec`` is in
:mod:`typing` from Python 3.10; on 3.9 a ``TypeVar`` stands in for it (the generic classes
then accept ``Task[P, R]`` but not a parameter list such as ``Task[[int], int]`` at run
time: write such annotations as strings, or under ``from __future__ import annotations``).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from typing import Callable, Coroutine, Protocol, overload

    from typing_extensions import Concatenate, ParamSpec
    from typing_extensions import TypeVar as _TypeVar

    from multiq.task import AsyncTask, Task

    P = ParamSpec("P", default=...)
    R = _TypeVar("R", default=Any)
    R_co = _TypeVar("R_co", covariant=True, default=Any)
    _P = ParamSpec("_P")
    _R = _TypeVar("_R")

    # The ``async def`` overloads (here and on ``app.task`` / ``shared_task``) take a
    # function returning ``Coroutine[Any, Any, R]``, not ``Awaitable[R]``: once inferred,
    # both overloads then expect the same function type, so an ``Any`` among its parameters
    # (an unannotated ``self``) does not make mypy call the choice ambiguous and give Any.

    class TaskDecorator(Protocol):
        """What ``@app.task(**options)`` returns: makes a task of a function."""

        @overload
        def __call__(self, fun: Callable[_P, Coroutine[Any, Any, _R]], /) -> AsyncTask[_P, _R]: ...
        @overload
        def __call__(self, fun: Callable[_P, _R], /) -> Task[_P, _R]: ...

    class BoundTaskDecorator(Protocol):
        """What ``@app.task(bind=True, ...)`` returns: the task's first parameter is the task
        itself, so its callers do not pass it."""

        @overload
        def __call__(
            self, fun: Callable[Concatenate[Any, _P], Coroutine[Any, Any, _R]], /
        ) -> AsyncTask[_P, _R]: ...
        @overload
        def __call__(self, fun: Callable[Concatenate[Any, _P], _R], /) -> Task[_P, _R]: ...

else:
    R = TypeVar("R")
    R_co = TypeVar("R_co", covariant=True)
    if sys.version_info >= (3, 10):
        from typing import ParamSpec

        P = ParamSpec("P")
    else:  # only type checkers read it
        P = TypeVar("P")
