"""What a node does for each remote-control command. Each handler takes the node, through
its small interface (:class:`multiq.control.node.Node`), and returns a JSON-able reply.

Inspect commands read; control commands change the node and say what changed
(``{"ok": ...}`` or ``{"error": ...}``, as Celery replies).
"""
from __future__ import annotations

import datetime
import logging
import os
import platform
import resource
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from multiq import __version__, states
from multiq.control import arguments as check
from multiq.control.arguments import BadArgument

if TYPE_CHECKING:
    from multiq.control.node import Node

logger = logging.getLogger("multiq.worker")
Handler = Callable[..., Any]
COMMANDS: Dict[str, Handler] = {}
INSPECT = ("ping", "stats", "active", "reserved", "scheduled", "registered", "revoked",
           "conf", "query_task", "active_queues", "clock", "report")


class Custom(NamedTuple):
    """What the command line needs to know of a command an application added."""

    kind: str  # "control" or "inspect"
    #: positional arguments on the command line: (name, converter from text), in order
    args: Tuple[Tuple[str, Callable[[str], Any]], ...]
    variadic: Optional[str]  # the name the remaining positional arguments go to, as a list
    signature: str
    help: str


CUSTOM: Dict[str, Custom] = {}  # by name (and alias)


def command(fun: Handler) -> Handler:
    COMMANDS[fun.__name__] = fun
    return fun


def register(kind: str, name: Optional[str] = None, alias: Optional[str] = None,
             args: Optional[Sequence[Tuple[str, Callable[[str], Any]]]] = None,
             variadic: Optional[str] = None, signature: Optional[str] = None,
             help: Optional[str] = None, **_: Any) -> Callable[[Handler], Handler]:  # noqa: A002
    """The decorator behind ``@control_command`` / ``@inspect_command``: the handler is
    called on each addressed node as ``handler(node, **arguments)`` and its return value
    (JSON-able) is that node's reply. Celery's ``visible`` and ``default_timeout`` are
    accepted and change nothing."""
    if kind not in ("control", "inspect"):
        raise ValueError(f"kind must be 'control' or 'inspect', not {kind!r}")

    def decorate(fun: Handler) -> Handler:
        command_name = name or fun.__name__
        about = Custom(kind, tuple(args or ()), variadic, signature or "",
                       help or (fun.__doc__ or "").strip().split("\n")[0])
        for key in filter(None, (command_name, alias)):
            COMMANDS[key] = fun
            CUSTOM[key] = about
        return fun
    return decorate


def dispatch(node: Node, method: str, arguments: Dict[str, Any]) -> Any:
    """Run ``method`` against ``node``; any failure is an ``{"error": ...}`` reply."""
    handler = COMMANDS.get(method)
    if handler is None:
        return {"error": f"unknown command {method!r}"}
    if not isinstance(arguments or {}, dict):
        return {"error": f"bad arguments for {method}: not a mapping: {arguments!r}"}
    try:
        return handler(node, **(arguments or {}))
    except (BadArgument, TypeError) as exc:  # a wrong value, or a wrong argument name
        return {"error": f"bad arguments for {method}: {exc}"}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- inspect ---------------------------------------------------------------------------


@command
def ping(node: Node) -> Any:
    return {"ok": "pong"}


@command
def clock(node: Node) -> Any:
    return {"clock": node.clock}


@command
def stats(node: Node) -> Any:
    from multiq.config import mask_url

    usage = resource.getrusage(resource.RUSAGE_SELF)
    broker = node.app.broker
    return {
        "pid": os.getpid(), "uptime": int(time.time() - node.started),
        "clock": node.clock, "hostname": node.hostname,
        "pool": node.pool_info(),
        "prefetch_count": node.prefetch(),
        "total": node.totals(),
        "broker": _broker_info(broker.url, mask_url(broker.url), broker.keys.prefix,
                               node.app.conf),
        "rusage": {"utime": usage.ru_utime, "stime": usage.ru_stime,
                   "maxrss": usage.ru_maxrss, "minflt": usage.ru_minflt,
                   "majflt": usage.ru_majflt, "nvcsw": usage.ru_nvcsw,
                   "nivcsw": usage.ru_nivcsw},
        "queues": node.current_queues(),
    }


def _broker_info(url: str, masked: str, prefix: str, conf: Any) -> Dict[str, Any]:
    """``stats``' broker part in the shape of Celery's (kombu's connection info, without its
    password), with multiq's masked URL and key prefix."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.split(";")[0])
    try:
        port = parts.port
    except ValueError:
        port = None
    db = parts.path.lstrip("/") or "0"
    return {"hostname": parts.hostname, "userid": parts.username, "virtual_host": db,
            "port": port, "insist": False, "ssl": parts.scheme in ("rediss", "valkeys"),
            "transport": "redis", "connect_timeout": conf.get("broker_connection_timeout"),
            "transport_options": {}, "login_method": None, "uri_prefix": None,
            "heartbeat": conf.get("broker_heartbeat"), "failover_strategy": "round-robin",
            "alternates": [], "url": masked, "prefix": prefix}


@command
def active(node: Node, safe: bool = False) -> Any:
    return [req.describe() for req in node.running()]


@command
def reserved(node: Node) -> Any:
    return [req.describe() for req in node.reserved()]


@command
def scheduled(node: Node, limit: int = 100) -> Any:
    """Countdown / eta messages waiting in Redis for this node's queues (durable delays
    are held by Redis, not by a node's memory)."""
    limit = check.count(limit, "limit")
    broker, out = node.app.broker, []
    for queue in node.current_queues():
        key = broker.keys.delayed_bodies(queue)
        rows = broker.client.zrange(broker.keys.delayed(queue), 0, limit - 1, withscores=True)
        bodies = broker.client.hmget(key, [m for m, _ in rows]) if rows else []
        for (member, due), body in zip(rows, bodies):
            if body is None:
                continue
            item = _delayed_item(body, due, queue, getattr(node, "hostname", None))
            if item is None:
                logger.warning("inspect scheduled: skipping malformed delayed message %r "
                               "in %s", member, key)
            else:
                out.append(item)
    out.sort(key=lambda item: item.pop("due"))
    return out


def _delayed_item(body: bytes, due: float, queue: str,
                  hostname: Optional[str]) -> Optional[Dict[str, Any]]:
    """One delayed body (``<band>,<n>|<envelope>``) as ``inspect scheduled`` shows it, in
    Celery's shape: ``eta`` as ISO 8601 text (UTC), ``priority``, and the request as
    ``inspect active`` describes one."""
    from multiq.exceptions import DecodeError
    from multiq.message import peek

    head, bar, data = body.partition(b"|")
    band, comma, n = head.partition(b",")
    if not (bar and comma and band.isdigit() and n.isdigit() and int(band) <= 9):
        return None
    try:
        env = peek(data)
    except DecodeError:
        return None
    eta = datetime.datetime.fromtimestamp(due, datetime.timezone.utc).isoformat()
    return {"eta": eta, "priority": int(band), "due": due, "request": {
        "id": env["id"], "name": env["task"], "args": env.get("args"),
        "kwargs": env.get("kwargs"), "type": env["task"], "hostname": hostname,
        "time_start": None, "acknowledged": False,
        "delivery_info": {"routing_key": queue, "priority": int(band),
                          "redelivered": int(n) > 0},
        "worker_pid": None, "retries": env.get("retries", 0), "eta": eta,
        "expires": env.get("expires")}}


@command
def registered(node: Node, taskinfoitems: Optional[List[str]] = None) -> Any:
    items = check.texts(taskinfoitems, "taskinfoitems")
    out = []
    for name, task in sorted(node.app.tasks.regular().items()):
        fields = [f"{attr}={getattr(task, attr, None)}" for attr in items
                  if getattr(task, attr, None) is not None]
        out.append(" ".join([name, *[f"[{f}]" for f in fields]]) if fields else name)
    return out


@command
def revoked(node: Node) -> Any:
    return sorted(node.revoked())


@command
def conf(node: Node, with_defaults: bool = False) -> Any:
    from multiq.serialization import json_dumps

    table = node.app.conf.table(with_defaults=with_defaults, censored=True)
    safe = {}
    for key, value in table.items():
        try:
            json_dumps(value)
            safe[key] = value
        except (TypeError, ValueError):
            safe[key] = repr(value)
    return safe


@command
def query_task(node: Node, ids: Optional[List[str]] = None) -> Any:
    wanted = set(check.texts(ids, "ids"))
    out: Dict[str, Any] = {}
    for req in node.running():
        if req.id in wanted:
            out[req.id] = ["active", req.describe()]
    for req in node.reserved():
        if req.id in wanted:
            out[req.id] = ["reserved", req.describe()]
    _with_states(node, out)
    return out


def _with_states(node: Node, found: Dict[str, Any]) -> None:
    """Add to each request's info the state its task last stored (``PROGRESS``, say, from
    ``update_state``), read in one round trip; nothing when there is no result backend."""
    if not found:
        return
    try:
        docs = node.app.backend.get_many(list(found))
    except Exception:  # (no backend, or it cannot be read now: the rest of the reply holds)
        return
    for (_, info), doc in zip(found.values(), docs):
        info["state"] = doc.get("status")
        if doc.get("status") not in states.READY_STATES and doc.get("result") is not None:
            info["meta"] = doc.get("result")


@command
def active_queues(node: Node) -> Any:
    """The queues consumed, each as Celery (kombu) describes a queue declaration."""
    return [_queue_declaration(q) for q in node.current_queues()]


def _queue_declaration(queue: str) -> Dict[str, Any]:
    exchange = {"name": queue, "type": "direct", "arguments": None, "durable": True,
                "passive": False, "auto_delete": False, "delivery_mode": None,
                "no_declare": False}
    return {"name": queue, "exchange": exchange, "routing_key": queue,
            "queue_arguments": None, "binding_arguments": None, "consumer_arguments": None,
            "durable": True, "exclusive": False, "auto_delete": False, "no_ack": False,
            "alias": None, "bindings": [], "no_declare": None, "expires": None,
            "message_ttl": None, "max_length": None, "max_length_bytes": None,
            "max_priority": 9}


@command
def report(node: Node) -> Any:
    return {"ok": f"multiq {__version__} (Python {platform.python_version()}, "
                  f"{platform.platform()}) node {node.hostname}"}


# -- control ---------------------------------------------------------------------------


@command
def enable_events(node: Node) -> Any:
    node.set_events(True)
    return {"ok": "task events enabled"}


@command
def disable_events(node: Node) -> Any:
    node.set_events(False)
    return {"ok": "task events disabled"}


@command
def rate_limit(node: Node, task_name: str, rate_limit: Any) -> Any:
    if node.app.tasks.get(check.text(task_name, "task_name")) is None:
        return {"error": f"unknown task {task_name!r}"}
    try:
        check.rate(rate_limit)
    except BadArgument as exc:
        return {"error": str(exc)}
    node.set_rate_limit(task_name, rate_limit or None)
    if not rate_limit:
        return {"ok": f"rate limit disabled for {task_name}"}
    return {"ok": f"new rate limit set for {task_name}: {rate_limit}"}


@command
def time_limit(node: Node, task_name: str, soft: Optional[float] = None,
               hard: Optional[float] = None) -> Any:
    soft, hard = check.seconds(soft, "soft"), check.seconds(hard, "hard")
    if soft and hard and soft > hard:  # 0 is no limit
        raise BadArgument(f"the soft limit ({soft:g}s) is above the hard one ({hard:g}s)")
    if node.app.tasks.get(check.text(task_name, "task_name")) is None:
        return {"error": f"unknown task {task_name!r}"}
    node.set_time_limit(task_name, soft, hard)
    return {"ok": f"time limits set for {task_name}: soft={soft} hard={hard}"}


#: how long ``revoke --terminate`` waits for the tasks it signalled to end before it replies
#: (below the command line's one-second default timeout)
TERMINATE_WAIT = 0.6


@command
def revoke(node: Node, task_id: Any, terminate: bool = False,
           signal: str = "SIGTERM") -> Any:
    ids = check.task_ids(task_id)
    terminate = check.flag(terminate, "terminate")
    signo = check.signal_number(signal)
    running = _running(node, ids) if terminate else set()
    killed = node.revoke(ids, terminate, signo)
    text = f"tasks {ids} flagged as revoked"
    if killed:  # "terminated" only once they are gone
        left = _still_running(node, killed, TERMINATE_WAIT)
        ended = [i for i in killed if i not in left]
        if ended:
            text += f"; terminated {ended}"
        if left:
            name = _sig_name(signo)
            text += f"; {name} sent to {left}, not ended yet"
    unkillable = sorted(running - set(killed))
    if unkillable:
        pool = node.pool_info().get("implementation", "this")
        text += f"; {unkillable} cannot be terminated on the {pool} pool: they run to the end"
    return {"ok": text}


def _running(node: Node, ids: Sequence[str]) -> set:
    wanted = set(ids)
    return {req.id for req in node.running() if req.id in wanted}


def _still_running(node: Node, ids: Sequence[str], wait: float) -> List[str]:
    """Those of ``ids`` still running after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        left = _running(node, ids)
        if not left or time.monotonic() >= deadline:
            return [i for i in ids if i in left]
        time.sleep(0.005)


def _sig_name(signo: int) -> str:
    import signal as signals

    try:
        return signals.Signals(signo).name
    except ValueError:
        return str(signo)


@command
def shutdown(node: Node) -> Any:
    node.request_stop("warm")
    return {"ok": "shutting down (warm)"}


@command
def restart(node: Node) -> Any:
    """Warm stop, then the node starts again in place (``multiq worker`` re-executes
    itself with the same arguments, as on HUP)."""
    node.request_restart()
    return {"ok": "restarting (warm)"}


@command
def pool_grow(node: Node, n: int = 1) -> Any:
    if node.autoscaling():
        return {"error": "pool_grow is not allowed with autoscale; use autoscale MAX MIN"}
    size = node.grow(check.count(n, "n"))
    return {"ok": f"pool will grow to {size}"}


@command
def pool_shrink(node: Node, n: int = 1) -> Any:
    if node.autoscaling():
        return {"error": "pool_shrink is not allowed with autoscale; use autoscale MAX MIN"}
    size = node.shrink(check.count(n, "n"))
    return {"ok": f"pool will shrink to {size}"}


@command
def autoscale(node: Node, max: int, min: int) -> Any:  # noqa: A002 - Celery's names
    high, low = check.count(max, "max", 0), check.count(min, "min", 0)
    if high < low:
        raise BadArgument(f"max ({high}) must not be below min ({low})")
    high, low = node.set_autoscale(high, low)
    return {"ok": f"autoscale now max={high} min={low}"}


@command
def add_consumer(node: Node, queue: str, **_: Any) -> Any:
    queue = check.text(queue, "queue")
    if not node.consuming():
        return {"error": "not consuming"}
    if queue in node.current_queues():
        return {"ok": f"already consuming from {queue!r}"}
    node.add_queue(queue)
    return {"ok": f"add consumer {queue}"}


@command
def cancel_consumer(node: Node, queue: str, **_: Any) -> Any:
    queue = check.text(queue, "queue")
    queues = node.current_queues() if node.consuming() else []
    if queue not in queues:
        return {"error": f"not consuming from {queue!r}"}
    if len(queues) == 1:
        return {"error": "refusing to cancel the last queue this node consumes"}
    node.cancel_queue(queue)
    return {"ok": f"no longer consuming from {queue}"}


#: Commands a node's pool processes apply too (prefork children consume for themselves);
#: the node forwards them, once applied here, with the same arguments.
FORWARDED = frozenset({"rate_limit", "time_limit", "enable_events", "disable_events",
                       "add_consumer", "cancel_consumer"})
