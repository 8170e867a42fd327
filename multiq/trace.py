"""Running one task call: hooks, signals, retries and the outcome, for workers and eager calls."""
from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import traceback as tb_module
from typing import Any, Callable, Dict, List, Optional, Tuple

from multiq import _state, signals, states
from multiq.canvas import maybe_signature
from multiq.describe import safe_str
from multiq.exceptions import CallKilled, Ignore, Reject, Retry
from multiq.task import Context, Task
from multiq.worker.items import Outcome

logger = logging.getLogger("multiq.task")

IGNORED = "IGNORED"


class ExceptionInfo:
    """An exception with its formatted traceback (``einfo`` in the hooks)."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = exc.__traceback__
        self.traceback = format_traceback(exc)

    def __str__(self) -> str:
        return self.traceback


def trace(task: Task, request: Context) -> Outcome:
    """Run ``task`` with ``request`` pushed; never raises for the task's own errors."""
    task.push_request(request)
    outcome: Outcome
    try:
        if signals.task_prerun.has_receivers():
            prerun(task, request)
        try:
            task.before_start(request.id, request.args, request.kwargs)  # type: ignore[arg-type]
            # through the class's own __call__ only when it has one (Celery's rule)
            retval = task(*request.args, **request.kwargs) if task._custom_call \
                else task.run(*request.args, **request.kwargs)
            if inspect.iscoroutine(retval):  # an ``async def`` task: run it to its end
                retval = run_coroutine(retval)
        except CallKilled:  # its pool ends the call and records its outcome
            raise
        except BaseException as exc:  # KeyboardInterrupt, GeneratorExit... fail the call too
            outcome = raised(task, request, exc)
        else:
            outcome = returned(task, request, retval)
        after_return(task, request, outcome)
    except CallKilled:
        raise
    except BaseException as exc:  # a hook raised: the call fails, the worker goes on
        outcome = _failure(task, request, exc)
    finally:
        task.pop_request()
    if signals.task_postrun.has_receivers():
        postrun(task, request, outcome)
    return outcome


async def atrace(task: Task, request: Context,
                 cancelled: Optional[Callable[[], Optional[BaseException]]] = None) -> Outcome:
    """:func:`trace` for a running event loop: an ``async def`` task's coroutine is
    awaited here (the request stack is this asyncio Task's own); a plain function's
    call runs in the loop's thread. ``cancelled()`` says why the caller cancelled the call,
    if it did: a CancelledError the call lets out is replaced by that reason, which fails
    the call (a soft time limit) or, a :class:`CallKilled`, passes through untouched."""
    # a request stack of its own (see multiq._state.tasks), for this asyncio Task
    token = _state.tasks.set([*(_state.tasks.get() or ()), request])
    outcome: Outcome
    try:
        if signals.task_prerun.has_receivers():
            prerun(task, request)
        try:
            task.before_start(request.id, request.args, request.kwargs)  # type: ignore[arg-type]
            retval = task(*request.args, **request.kwargs) if task._custom_call \
                else task.run(*request.args, **request.kwargs)
            if inspect.isawaitable(retval):
                retval = await retval
        except CallKilled:
            raise
        except BaseException as exc:  # CancelledError too: the call fails
            outcome = raised(task, request, _reason(exc, cancelled) if cancelled else exc)
        else:
            outcome = returned(task, request, retval)
        after_return(task, request, outcome)
    except CallKilled:
        raise
    except BaseException as exc:
        outcome = _failure(task, request, exc)
    finally:
        _state.tasks.reset(token)
    if signals.task_postrun.has_receivers():
        postrun(task, request, outcome)
    return outcome


def _reason(exc: BaseException,
            cancelled: Callable[[], Optional[BaseException]]) -> BaseException:
    """What ends the call: ``exc``, or for a CancelledError the reason it was cancelled;
    raises that reason when it is a :class:`CallKilled`."""
    import asyncio

    reason = cancelled() if isinstance(exc, asyncio.CancelledError) else None
    if reason is None:
        return exc
    if isinstance(reason, CallKilled):
        raise reason from None
    return reason.with_traceback(exc.__traceback__)


# -- the pieces trace() and atrace() share -------------------------------------------------

def prerun(task: Task, request: Context) -> None:
    """The ``task_prerun`` signal (sent only when it has receivers)."""
    signals.task_prerun.send(sender=task, task_id=request.id, task=task,
                             args=request.args, kwargs=request.kwargs)


def returned(task: Task, request: Context, retval: Any) -> Outcome:
    """The call returned ``retval``: SUCCESS, after ``on_success`` and ``task_success``."""
    outcome = Outcome(states.SUCCESS, retval)
    task.on_success(retval, request.id, request.args, request.kwargs)  # type: ignore[arg-type]
    if signals.task_success.has_receivers():
        signals.task_success.send(sender=task, result=retval)
    return outcome


def raised(task: Task, request: Context, exc: BaseException) -> Outcome:
    """The call raised ``exc``: a retry, ignored, rejected, or a failure (after autoretry)."""
    if isinstance(exc, Retry):
        return _on_retry(task, request, exc)
    if isinstance(exc, Ignore):
        return Outcome(IGNORED)
    if isinstance(exc, Reject):
        return Outcome(states.REJECTED, exc=exc, traceback=format_traceback(exc),
                       requeue=exc.requeue)
    return _on_error(task, request, exc)


def after_return(task: Task, request: Context, outcome: Outcome) -> None:
    """The ``after_return`` hook; what it raises is logged, never the call's outcome."""
    try:
        einfo = ExceptionInfo(outcome.exc) if outcome.exc is not None else None
        task.after_return(outcome.state, outcome.retval if outcome.exc is None else outcome.exc,
                          request.id, request.args, request.kwargs, einfo)  # type: ignore[arg-type]
    except BaseException:
        logger.exception("after_return of %s[%s] raised", task.name, request.id)


def postrun(task: Task, request: Context, outcome: Outcome) -> None:
    """The ``task_postrun`` signal (sent only when it has receivers)."""
    signals.task_postrun.send(sender=task, task_id=request.id, task=task, args=request.args,
                              kwargs=request.kwargs, retval=outcome.retval,
                              state=outcome.state)


_loops = threading.local()
#: Where a pool whose threads are not the process's threads (gevent's greenlets share
#: one) runs coroutines instead (see :func:`set_coroutine_runner`).
_runner: Optional[Callable[[Any], Any]] = None


def set_coroutine_runner(runner: Optional[Callable[[Any], Any]]) -> None:
    """Have ``runner(coro)`` run every ``async def`` task's coroutine to its end (None: each
    thread's own loop again)."""
    global _runner
    _runner = runner


def run_coroutine(coro: Any) -> Any:
    """Run an ``async def`` task's coroutine on this thread's event loop, kept for the next
    one (so asyncio clients made by a task are reused); from inside a running loop (an
    eager call in async code), on a loop of its own in another thread."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if _runner is not None:
            return _runner(coro)
        loop = getattr(_loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = _loops.loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        except BaseException:  # (a time limit may stop the loop mid-way: leave it clean)
            _settle(loop)
            raise
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="multiq-eager-coroutine")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def cancel_left(loop: Any) -> None:
    """Cancel every task still pending on the (stopped) ``loop`` and let them end."""
    import asyncio

    left = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in left:
        t.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


def _settle(loop: Any) -> None:
    """Cancel what a stopped task left running on ``loop``; a loop that cannot be brought
    to rest is closed (the next task makes a new one)."""
    try:
        cancel_left(loop)
    except BaseException:
        _loops.loop = None
        try:
            loop.close()
        except Exception:
            pass


if hasattr(os, "register_at_fork"):  # a forked child makes its own loop
    os.register_at_fork(after_in_child=lambda: _loops.__dict__.pop("loop", None))


def _on_error(task: Task, request: Context, exc: BaseException) -> Outcome:
    if task.autoretry_for and isinstance(exc, tuple(task.autoretry_for)):
        options = dict(task.retry_kwargs or {})
        if task.retry_backoff and "countdown" not in options:
            options["countdown"] = task.backoff_delay(request.retries)
        try:
            task.retry(exc=exc, **options)
        except Retry as retry:
            return _on_retry(task, request, retry)
        except BaseException as final:
            return _failure(task, request, final)
    return _failure(task, request, exc)


def _on_retry(task: Task, request: Context, retry: Retry) -> Outcome:
    if not hasattr(retry, "plan"):  # a bare ``raise Retry()`` from user code
        return _failure(task, request, retry)
    exc = retry.exc if retry.exc is not None else retry
    einfo = ExceptionInfo(exc)
    task.on_retry(exc, request.id, request.args, request.kwargs, einfo)  # type: ignore[arg-type]
    if signals.task_retry.has_receivers():
        signals.task_retry.send(sender=task, request=request, reason=retry, einfo=einfo)
    return Outcome(states.RETRY, exc=exc, traceback=einfo.traceback, retry=retry)


def _failure(task: Task, request: Context, exc: BaseException) -> Outcome:
    einfo = ExceptionInfo(exc)
    try:
        task.on_failure(exc, request.id, request.args, request.kwargs, einfo)  # type: ignore[arg-type]
    except BaseException:
        logger.exception("on_failure of %s[%s] raised", task.name, request.id)
    if signals.task_failure.has_receivers():
        signals.task_failure.send(sender=task, task_id=request.id, exception=exc,
                                  args=request.args, kwargs=request.kwargs,
                                  traceback=exc.__traceback__, einfo=einfo)
    return Outcome(states.FAILURE, exc=exc, traceback=einfo.traceback)


def send_links(task: Task, request: Context, outcome: Outcome) -> None:
    """After success, apply the ``link`` callbacks and the chain's next step with the value;
    after failure, the ``link_error`` errbacks (Celery's rule: one taking more than one
    argument is called here with ``(request, exc, traceback)``, others are sent with the
    failed task's id). What is sent becomes the task's children. Never raises."""
    if outcome.state == states.SUCCESS:
        if not request.callbacks and not request.chain:
            return
        task.push_request(request)
        try:
            for sig in request.callbacks or ():
                _apply_link(task, request, sig, (outcome.retval,))
            if request.chain:
                _next_step(task, request, outcome.retval)
        finally:
            task.pop_request()
    elif outcome.state == states.FAILURE and request.errbacks:
        task.push_request(request)
        try:
            call_errbacks(task, request, outcome.exc, outcome.traceback)
        finally:
            task.pop_request()
    if outcome.children is None:
        kids = request.__dict__.get("children")
        if kids:
            outcome.children = [[[kid, None], None] for kid in kids]


def call_errbacks(task: Task, request: Context, exc: Optional[BaseException],
                  traceback: Optional[str]) -> None:
    sent = []
    for errback in request.errbacks or ():
        try:
            sig = maybe_signature(errback, task.app)
            target = task.app.tasks.get(sig.task)
            if target is not None and _takes_request(target):
                # (request, exc, traceback) are the errback protocol, given even to an
                # immutable errback (a group's are): its own arguments follow
                target(request, exc, traceback, *sig.args, **sig.kwargs)
            else:
                sent.append(sig)
        except Exception:
            logger.exception("Errback %r of %s[%s] raised", errback, task.name, request.id)
    for sig in sent:
        _apply_link(task, request, sig, (request.id,))


def _takes_request(task: Task) -> bool:
    """Whether an errback task takes ``(request, exc, traceback)``: more than one
    positional parameter (or ``*args``)."""
    try:
        params = inspect.signature(task.run).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) > 1 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _next_step(task: Task, request: Context, value: Any) -> None:
    rest = list(request.chain or ())
    try:
        step = maybe_signature(rest.pop(), task.app)
        step.apply_async((value,), chain=rest or None, parent_id=request.id,
                         root_id=request.root_id or request.id)
    except Exception:
        logger.exception("Could not send the next step of the chain of %s[%s]", task.name,
                         request.id)


def _apply_link(task: Task, request: Context, sig: Any, args: Tuple[Any, ...]) -> None:
    try:
        maybe_signature(sig, task.app).apply_async(
            args, parent_id=request.id, root_id=request.root_id or request.id)
    except Exception:
        logger.exception("Could not apply callback %r of %s", sig, task.name)


def run_eager(
    task: Task, args: List[Any], kwargs: Dict[str, Any], task_id: str, retries: int = 0,
    options: Optional[Dict[str, Any]] = None,
) -> Tuple[str, Any, Optional[str]]:
    """Run a task in this process as ``apply()`` does; retries run again at once."""
    options = options or {}
    stack = _state.task_stack()
    parent = stack[-1] if stack else None  # apply() inside a running task: its child
    ignore = options.get("ignore_result")
    while True:
        request = Context(
            id=task_id, task=task.name, args=args, kwargs=kwargs, retries=retries,
            is_eager=True, called_directly=False, hostname=_hostname(),
            delivery_info={"is_eager": True, "exchange": options.get("exchange"),
                           "routing_key": options.get("routing_key") or options.get("queue"),
                           "priority": options.get("priority")},
            headers=options.get("headers"), callbacks=_as_list(options.get("link")),
            errbacks=_as_list(options.get("link_error")),
            root_id=(parent.root_id or parent.id) if parent else task_id,
            parent_id=parent.id if parent else None, priority=options.get("priority"),
            timelimit=(options.get("time_limit", task.time_limit),
                       options.get("soft_time_limit", task.soft_time_limit)),
            ignore_result=bool(task.ignore_result if ignore is None else ignore),
            correlation_id=task_id,
        )
        outcome = trace(task, request)
        if outcome.state == states.RETRY and outcome.retry is not None:
            plan = outcome.retry.plan  # type: ignore[attr-defined]
            args, kwargs, retries = plan["args"], plan["kwargs"], retries + 1
            continue
        send_links(task, request, outcome)
        if outcome.state == states.FAILURE:
            return states.FAILURE, outcome.exc, outcome.traceback
        return outcome.state, outcome.retval, None


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def format_traceback(exc: BaseException) -> str:
    """The traceback text of ``exc``; never raises, whatever the exception's methods do."""
    try:
        return "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        pass
    try:
        stack = "".join(tb_module.format_tb(exc.__traceback__))
    except Exception:
        stack = ""
    return f"Traceback (most recent call last):\n{stack}{type(exc).__name__}: {safe_str(exc)}\n"


def exc_info_text() -> str:
    exc = sys.exc_info()[1]
    return format_traceback(exc) if exc is not None else ""
