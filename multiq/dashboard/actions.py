"""What the dashboard's buttons and its API's POST routes do: one function per action,
each returning a JSON-able result or raising :class:`ActionError` (a 400 with its message).

Tasks and nodes are acted on through ``app.control`` (the remote-control client), dead
letters through :class:`multiq.broker.deadletter.DeadLetters`, beat through
:class:`multiq.dashboard.beatview.BeatView`, as the command line does.
"""
from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

if TYPE_CHECKING:
    from multiq.dashboard.context import Dashboard

REPLY_TIMEOUT = 1.0

#: node action -> (control command, its arguments as (name, converter))
NODE_ACTIONS: Dict[str, Any] = {
    "pool_grow": ("pool_grow", (("n", int),)),
    "pool_shrink": ("pool_shrink", (("n", int),)),
    "autoscale": ("autoscale", (("max", int), ("min", int))),
    "add_consumer": ("add_consumer", (("queue", str),)),
    "cancel_consumer": ("cancel_consumer", (("queue", str),)),
    "shutdown": ("shutdown", ()),
    "restart": ("restart", ()),
    "enable_events": ("enable_events", ()),
    "disable_events": ("disable_events", ()),
}


class ActionError(ValueError):
    """The action cannot be done as asked (bad input, nothing to act on)."""


def revoke(dash: Dashboard, task_id: str, terminate: bool = False,
           signal: str = "SIGTERM") -> Dict[str, Any]:
    if not task_id:
        raise ActionError("no task id")
    try:
        replies = dash.app.control.revoke(task_id, terminate=terminate, signal=signal,
                                          reply=True, timeout=REPLY_TIMEOUT)
    except ValueError as exc:  # a bad signal name
        raise ActionError(str(exc)) from None
    verb = "terminated" if terminate else "revoked"
    return {"ok": f"task {task_id} {verb}", "replies": _merge(replies)}


def resend(dash: Dashboard, task_id: str) -> Dict[str, Any]:
    """Send the task again with the same arguments under a new id; both records link to
    each other. The arguments come from the result document (``result_extended``)."""
    doc = dash.app.backend.get_meta(task_id) if dash.app.conf.result_backend else {}
    record = dash.search.task(task_id) or {}
    name = doc.get("name") or record.get("name")
    if not name:
        raise ActionError(f"task {task_id} is not known (no result document or events)")
    if "args" not in doc or "kwargs" not in doc:
        raise ActionError(f"the arguments of {task_id} were not stored: re-sending needs "
                          "result_extended = True (events carry only their repr)")
    options: Dict[str, Any] = {"task_id": str(uuid.uuid4())}
    queue = doc.get("queue") or record.get("queue")
    if queue:
        options["queue"] = queue
    result = dash.app.send_task(name, list(doc["args"] or ()), dict(doc["kwargs"] or {}),
                                **options)
    dash.history.link_resend(task_id, result.id)
    return {"ok": f"re-sent {name} as {result.id}", "task_id": result.id}


def node(dash: Dashboard, hostname: str, action: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """One of :data:`NODE_ACTIONS` sent to the node ``hostname``."""
    if action not in NODE_ACTIONS:
        raise ActionError(f"unknown node action {action!r}")
    command, spec = NODE_ACTIONS[action]
    arguments = {}
    for name, convert in spec:
        value = params.get(name)
        if value in (None, ""):
            raise ActionError(f"{action} needs {name}")
        try:
            arguments[name] = convert(value)
        except (TypeError, ValueError):
            raise ActionError(f"{name} must be {convert.__name__}, not {value!r}") from None
    return _reply(dash, command, arguments, [hostname])


def task_limit(dash: Dashboard, kind: str, task_name: str, params: Dict[str, Any],
               hostname: Optional[str] = None) -> Dict[str, Any]:
    """``rate_limit`` (``rate``) or ``time_limit`` (``soft``, ``hard``) of a task."""
    if not task_name:
        raise ActionError("no task name")
    destination = [hostname] if hostname else None
    if kind == "rate_limit":
        return _reply(dash, "rate_limit", {"task_name": task_name,
                                           "rate_limit": params.get("rate") or None},
                      destination)
    if kind == "time_limit":
        limits = {k: _seconds(params.get(k), k) for k in ("soft", "hard")}
        return _reply(dash, "time_limit", {"task_name": task_name, **limits}, destination)
    raise ActionError(f"unknown limit {kind!r}")


def _reply(dash: Dashboard, command: str, arguments: Dict[str, Any],
           destination: Optional[List[str]]) -> Dict[str, Any]:
    replies = dash.app.control.broadcast(command, arguments, destination=destination,
                                         reply=True, timeout=REPLY_TIMEOUT)
    merged = _merge(replies)
    if not merged:
        raise ActionError(f"no node answered {command} within {REPLY_TIMEOUT:g}s")
    errors = [r["error"] for r in merged.values() if isinstance(r, dict) and "error" in r]
    if errors and len(errors) == len(merged):
        raise ActionError("; ".join(str(e) for e in errors))
    return {"ok": f"{command} sent", "replies": merged}


def _merge(replies: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for reply in replies or ():
        out.update(reply)
    return out


def _seconds(value: Any, name: str) -> Optional[float]:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ActionError(f"{name} must be a number of seconds, not {value!r}") from None


# -- dead letters ----------------------------------------------------------------------


def requeue(dash: Dashboard, refs: Sequence[str]) -> Dict[str, Any]:
    from multiq.broker.deadletter import parse_ref

    refs = [r for r in refs if r]
    if not refs:
        raise ActionError("no dead-letter entry given")
    for ref in refs:
        try:
            parse_ref(ref)
        except ValueError as exc:
            raise ActionError(str(exc)) from None
    moved, missing = dash.deadletters().requeue(refs)
    if missing and not moved:
        raise ActionError(f"not requeued (no such entry, or no message): {', '.join(missing)}")
    return {"ok": f"requeued {moved}", "requeued": moved, "missing": missing}


def requeue_all(dash: Dashboard, queues: Optional[Sequence[str]]) -> Dict[str, Any]:
    moved = dash.deadletters().requeue_all(list(queues) if queues else None)
    return {"ok": f"requeued {moved}", "requeued": moved}


def purge_deadletters(dash: Dashboard, queues: Optional[Sequence[str]]) -> Dict[str, Any]:
    purged = dash.deadletters().purge(list(queues) if queues else None)
    return {"ok": f"purged {purged}", "purged": purged}


# -- beat ------------------------------------------------------------------------------


def beat_add(dash: Dashboard, params: Dict[str, Any]) -> Dict[str, Any]:
    every = _seconds(params.get("every"), "every")
    try:
        args = json.loads(params.get("args") or "[]")
        kwargs = json.loads(params.get("kwargs") or "{}")
    except ValueError as exc:
        raise ActionError(f"args and kwargs must be JSON: {exc}") from None
    name = str(params.get("name") or "").strip()
    try:
        dash.beat().add(name, str(params.get("task") or "").strip(), every,
                        str(params.get("crontab") or "").strip() or None, args, kwargs)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    return {"ok": f"beat entry {name} saved"}


def beat_change(dash: Dashboard, name: str, change: str) -> Dict[str, Any]:
    view = dash.beat()
    act = {"enable": view.enable, "disable": view.disable, "remove": view.remove}.get(change)
    if act is None:
        raise ActionError(f"unknown beat change {change!r}")
    if not act(name):
        raise ActionError(f"no dynamic beat entry {name!r} to {change}")
    return {"ok": f"beat entry {name}: {change}d"}
