"""``app.control``: commands sent to worker nodes, and ``app.control.inspect()``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Union

from multiq.control import arguments
from multiq.control.mailbox import Mailbox

if TYPE_CHECKING:
    from multiq.app import MultiQ

Replies = List[Dict[str, Any]]


def _flatten(replies: Replies) -> Optional[Dict[str, Any]]:
    out: Dict[str, Any] = {}
    for reply in replies:
        out.update(reply)
    return out or None


class Inspect:
    """Read-only questions to nodes; each method returns ``{node: reply}`` or None."""

    def __init__(self, control: Control, destination: Optional[Sequence[str]] = None,
                 timeout: float = 1.0) -> None:
        self.control = control
        self.destination = list(destination) if destination else None
        self.timeout = timeout

    def _request(self, method: str, **arguments: Any) -> Optional[Dict[str, Any]]:
        return _flatten(self.control.broadcast(method, arguments, destination=self.destination,
                                               timeout=self.timeout, reply=True))

    def ping(self) -> Optional[Dict[str, Any]]:
        return self._request("ping")

    def stats(self) -> Optional[Dict[str, Any]]:
        return self._request("stats")

    def active(self, safe: bool = False) -> Optional[Dict[str, Any]]:
        return self._request("active", safe=safe)

    def reserved(self) -> Optional[Dict[str, Any]]:
        return self._request("reserved")

    def scheduled(self) -> Optional[Dict[str, Any]]:
        return self._request("scheduled")

    def registered(self, *taskinfoitems: str) -> Optional[Dict[str, Any]]:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def revoked(self) -> Optional[Dict[str, Any]]:
        return self._request("revoked")

    def conf(self, with_defaults: bool = False) -> Optional[Dict[str, Any]]:
        return self._request("conf", with_defaults=with_defaults)

    def query_task(self, *ids: str) -> Optional[Dict[str, Any]]:
        flat: List[str] = []
        for item in ids:
            flat += [item] if isinstance(item, str) else list(item)
        return self._request("query_task", ids=flat)

    def active_queues(self) -> Optional[Dict[str, Any]]:
        return self._request("active_queues")

    def clock(self) -> Optional[Dict[str, Any]]:
        return self._request("clock")

    def report(self) -> Optional[Dict[str, Any]]:
        return self._request("report")


class Control:
    """The client side of remote control (``app.control``)."""

    def __init__(self, app: MultiQ) -> None:
        self.app = app

    @property
    def mailbox(self) -> Mailbox:
        return Mailbox(self.app.broker)

    def inspect(self, destination: Optional[Sequence[str]] = None,
                timeout: float = 1.0) -> Inspect:
        return Inspect(self, destination, timeout)

    def broadcast(self, command: str, arguments: Optional[Dict[str, Any]] = None,
                  destination: Optional[Sequence[str]] = None, reply: bool = False,
                  timeout: float = 1.0, limit: Optional[int] = None) -> Replies:
        """Send ``command`` to the nodes; with ``reply`` wait for their answers."""
        return self.mailbox.call(command, arguments, destination, timeout, reply, limit)

    def ping(self, destination: Optional[Sequence[str]] = None,
             timeout: float = 1.0) -> Replies:
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout)

    def revoke(self, task_id: Union[str, Iterable[str]], destination: Any = None,
               terminate: bool = False, signal: str = "SIGTERM", reply: bool = False,
               timeout: float = 1.0, **_: Any) -> Replies:
        """Revoke tasks: stored in Redis (nodes started later skip them too), announced to
        live nodes at once, and with ``terminate`` their running process is killed."""
        ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
        arguments.signal_number(signal)  # a bad one stores and announces nothing
        terminate = bool(terminate)
        expires = float(self.app.conf.worker_revoke_expires or 86400)
        self.app.broker.revoke(ids, expires, {"terminate": terminate, "signal": signal})
        return self.broadcast("revoke", {"task_id": ids, "terminate": terminate,
                                         "signal": signal},
                              destination=destination, reply=reply, timeout=timeout)

    def rate_limit(self, task_name: str, rate_limit: Any, destination: Any = None,
                   reply: bool = False, timeout: float = 1.0) -> Replies:
        return self.broadcast("rate_limit", {"task_name": task_name, "rate_limit": rate_limit},
                              destination, reply, timeout)

    def time_limit(self, task_name: str, soft: Optional[float] = None,
                   hard: Optional[float] = None, destination: Any = None,
                   reply: bool = False, timeout: float = 1.0) -> Replies:
        return self.broadcast("time_limit", {"task_name": task_name, "soft": soft,
                                             "hard": hard}, destination, reply, timeout)

    def shutdown(self, destination: Any = None, reply: bool = False,
                 timeout: float = 1.0) -> Replies:
        return self.broadcast("shutdown", None, destination, reply, timeout)

    def restart(self, destination: Any = None, reply: bool = False,
                timeout: float = 1.0) -> Replies:
        """Restart the nodes in place (a warm stop, then the same command again)."""
        return self.broadcast("restart", None, destination, reply, timeout)

    def enable_events(self, destination: Any = None, reply: bool = False,
                      timeout: float = 1.0) -> Replies:
        return self.broadcast("enable_events", None, destination, reply, timeout)

    def disable_events(self, destination: Any = None, reply: bool = False,
                       timeout: float = 1.0) -> Replies:
        return self.broadcast("disable_events", None, destination, reply, timeout)

    def pool_grow(self, n: int = 1, destination: Any = None, reply: bool = False,
                  timeout: float = 1.0) -> Replies:
        return self.broadcast("pool_grow", {"n": n}, destination, reply, timeout)

    def pool_shrink(self, n: int = 1, destination: Any = None, reply: bool = False,
                    timeout: float = 1.0) -> Replies:
        return self.broadcast("pool_shrink", {"n": n}, destination, reply, timeout)

    def autoscale(self, max: int, min: int, destination: Any = None,  # noqa: A002
                  reply: bool = False, timeout: float = 1.0) -> Replies:
        return self.broadcast("autoscale", {"max": max, "min": min}, destination, reply,
                              timeout)

    def add_consumer(self, queue: str, destination: Any = None, reply: bool = False,
                     timeout: float = 1.0, **_: Any) -> Replies:
        return self.broadcast("add_consumer", {"queue": queue}, destination, reply, timeout)

    def cancel_consumer(self, queue: str, destination: Any = None, reply: bool = False,
                        timeout: float = 1.0, **_: Any) -> Replies:
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, reply, timeout)
