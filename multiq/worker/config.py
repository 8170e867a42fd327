"""A node's settings: one frozen value, resolved once from ``app.conf`` and the arguments.

``NodeConfig.resolve(app, hostname=..., pool=..., ...)`` does the defaulting and the checks
(an unknown pool, no queue left) a node does before it builds anything; every part then
reads the same value. What changes while the node runs (autoscale set by remote control,
events switched on or off) is not here: it lives on the node, named as such.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

from multiq import patching
from multiq.exceptions import ImproperlyConfigured
from multiq.naming import nodename

POOLS = ("prefork", "solo", "threads", "gevent", "eventlet", "asyncio")
SWITCH_INTERVAL = 0.0005  # seconds: the GIL switch interval a node runs with by default
#: The keyword options of :meth:`NodeConfig.resolve` a node takes besides its named ones.
OPTIONS = ("max_tasks_per_child", "max_memory_per_child", "time_limit", "soft_time_limit",
           "autoscale", "beat", "detached", "soft_shutdown_timeout", "switch_interval",
           "setup_child_logging")


@dataclass(frozen=True)
class NodeConfig:
    """Every setting of one node."""

    hostname: str
    #: the node's consumer name in the consumer groups: its hostname and a unique tail
    consumer_name: str
    pool: str  # "prefork", "solo", "threads", "gevent", "eventlet" or "asyncio"
    concurrency: int
    queues: Tuple[str, ...]
    prefetch_multiplier: int
    max_tasks_per_child: Optional[int] = None
    max_memory_per_child: Optional[int] = None  # KiB
    time_limit: Optional[float] = None  # the node's; a task's or a message's own wins
    soft_time_limit: Optional[float] = None
    autoscale: Optional[Tuple[int, int]] = None  # (max, min) at start
    beat: bool = False  # run the beat scheduler inside the node
    detached: bool = False  # a daemon: HUP restarts it in place
    soft_shutdown_timeout: float = 0.0  # a warm shutdown turns cold after this; 0: never
    switch_interval: float = SWITCH_INTERVAL
    heartbeat_interval: float = 1.0
    lost_timeout: float = 5.0  # a node whose heartbeat is this old is dead
    #: runs first in each pool child, with its index (its own log file, with %i / %I)
    setup_child_logging: Optional[Callable[[int], None]] = field(default=None, compare=False)

    @property
    def prefetch(self) -> int:
        """How many messages the node holds at most: concurrency times the multiplier."""
        return self.concurrency * self.prefetch_multiplier

    @property
    def liveness(self) -> Tuple[float, float]:
        """The heartbeat interval and the liveness key's time to live."""
        interval = self.heartbeat_interval
        return interval, max(self.lost_timeout, interval * 2)

    @classmethod
    def resolve(
        cls, app: Any, *, hostname: Optional[str] = None, concurrency: Optional[int] = None,
        pool: Optional[str] = None, queues: Optional[Iterable[str]] = None,
        exclude_queues: Optional[Iterable[str]] = None,
        prefetch_multiplier: Optional[int] = None,
        max_tasks_per_child: Optional[int] = None, max_memory_per_child: Optional[int] = None,
        time_limit: Optional[float] = None, soft_time_limit: Optional[float] = None,
        autoscale: Optional[Tuple[int, int]] = None, beat: bool = False,
        detached: bool = False, soft_shutdown_timeout: Optional[float] = None,
        switch_interval: Optional[float] = None,
        setup_child_logging: Optional[Callable[[int], None]] = None,
    ) -> NodeConfig:
        """The node's settings: each argument given wins over ``app.conf``'s."""
        conf = app.conf
        name = nodename(hostname or conf.worker_hostname)
        kind = _pool_kind(pool, conf.worker_pool)
        size = int(concurrency or conf.worker_concurrency or os.cpu_count() or 2)
        multiplier = conf.worker_prefetch_multiplier if prefetch_multiplier is None \
            else prefetch_multiplier
        return cls(
            hostname=name, consumer_name=f"{name}|{uuid.uuid4().hex[:12]}", pool=kind,
            concurrency=1 if kind == "solo" else size,
            queues=_queues(queues or _queue_names(conf.get("task_queues"))
                           or [conf.task_default_queue], exclude_queues or ()),
            prefetch_multiplier=max(1, int(multiplier or 1)),
            max_tasks_per_child=max_tasks_per_child or conf.worker_max_tasks_per_child,
            max_memory_per_child=max_memory_per_child or conf.worker_max_memory_per_child,
            time_limit=time_limit, soft_time_limit=soft_time_limit,
            autoscale=_pair(autoscale), beat=bool(beat), detached=bool(detached),
            soft_shutdown_timeout=float(
                soft_shutdown_timeout or conf.worker_soft_shutdown_timeout or 0),
            switch_interval=float(switch_interval or SWITCH_INTERVAL),
            heartbeat_interval=float(conf.worker_heartbeat_interval),
            lost_timeout=float(conf.worker_lost_timeout),
            setup_child_logging=setup_child_logging,
        )


def _pool_kind(given: Optional[str], configured: Optional[str]) -> str:
    kind = (given or configured or "prefork").lower()
    if kind == "processes":
        kind = "prefork"
    refused = patching.refusal(kind)  # (gevent or eventlet not installed)
    if refused:
        raise ImproperlyConfigured(refused)
    if kind not in POOLS:
        raise ImproperlyConfigured(f"Unknown pool {given!r}; choose prefork, solo, threads "
                                   "or gevent, or asyncio for async def tasks")
    return kind


def _queues(wanted: Iterable[str], excluded: Iterable[str]) -> Tuple[str, ...]:
    left = set(excluded)
    queues = tuple(q for q in wanted if q not in left)
    if not queues:
        raise ImproperlyConfigured("No queues left to consume from after --exclude-queues")
    return queues


def _queue_names(declared: Any) -> List[str]:
    """The names of Celery's ``task_queues``: kombu Queues, names, or a mapping by name."""
    if not declared:
        return []
    if isinstance(declared, (str, Mapping)):
        declared = [declared] if isinstance(declared, str) else list(declared)
    return [str(getattr(q, "name", q)) for q in declared]


def _pair(autoscale: Optional[Iterable[int]]) -> Optional[Tuple[int, int]]:
    if not autoscale:
        return None
    high, low = autoscale
    return int(high), int(low)
