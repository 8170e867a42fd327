"""A worker node: its parts, built and started in order, and its shutdown.

Start-up, top to bottom: import task modules → connect and declare queues → heartbeat →
revoke sync → committer → promoter → recovery → pool → consume ("ready").
Shutdown in reverse. Signal handlers only set flags; the main loop acts on them.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import redis

from multiq import signals
from multiq.exceptions import ImproperlyConfigured
from multiq.pools.base import Pool
from multiq.worker import components
from multiq.worker.committer import Committer
from multiq.worker.consumer import Consumer
from multiq.worker.execute import Executor
from multiq.worker.state import WorkerState, hostname_expand

logger = logging.getLogger("multiq.worker")

POOLS = ("prefork", "solo", "threads")


class Worker:
    """One node: ``Worker(app, hostname="w1@%h", pool="solo").run()`` returns an exit code."""

    def __init__(
        self, app: Any, *, hostname: Optional[str] = None, concurrency: Optional[int] = None,
        pool: Optional[str] = None, queues: Optional[List[str]] = None,
        exclude_queues: Optional[List[str]] = None,
        prefetch_multiplier: Optional[int] = None, **options: Any,
    ) -> None:
        conf = app.conf
        self.app = app
        self.hostname = hostname_expand(hostname or conf.worker_hostname or "multiq@%h")
        if "@" not in self.hostname:
            self.hostname = hostname_expand(f"{self.hostname}@%h")
        self.consumer_name = f"{self.hostname}|{uuid.uuid4().hex[:12]}"
        self.pool_kind = (pool or conf.worker_pool or "prefork").lower()
        if self.pool_kind == "processes":
            self.pool_kind = "prefork"
        if self.pool_kind not in POOLS:
            raise ImproperlyConfigured(f"Unknown pool {pool!r}; choose prefork, solo or threads")
        self.concurrency = int(concurrency or conf.worker_concurrency or os.cpu_count() or 2)
        if self.pool_kind == "solo":
            self.concurrency = 1
        wanted = queues or [conf.task_default_queue]
        self.queues = [q for q in wanted if q not in set(exclude_queues or ())]
        if not self.queues:
            raise ImproperlyConfigured("No queues left to consume from after --exclude-queues")
        multiplier = conf.worker_prefetch_multiplier if prefetch_multiplier is None \
            else prefetch_multiplier
        self.prefetch = max(1, self.concurrency * max(1, int(multiplier or 1)))
        self.options = options
        self.state = WorkerState()
        self.started = time.time()
        self.ready = False
        self._stop_mode: Optional[str] = None  # "warm" or "cold"
        self._sigint_count = 0
        self.pool: Optional[Pool] = None
        self.consumer: Optional[Consumer] = None
        self.components: List[components.Component] = []

    # -- signals -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop("warm"))
        signal.signal(signal.SIGQUIT, lambda *_: self.request_stop("cold"))
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, *_: Any) -> None:
        self._sigint_count += 1
        self.request_stop("warm" if self._sigint_count == 1 else "cold")

    def request_stop(self, mode: str = "warm") -> None:
        """Ask for a warm or cold shutdown (safe from signal handlers: sets a flag only)."""
        if self._stop_mode != "cold":
            self._stop_mode = mode

    def should_stop(self) -> bool:
        return self._stop_mode is not None

    # -- life ------------------------------------------------------------------------------

    def run(self) -> int:
        """Start, consume until asked to stop, shut down; returns the exit code."""
        app = self.app
        set_title(f"multiq worker: {self.hostname} main")
        app.import_default_modules()
        app.finalize()
        signals.worker_init.send(sender=self)
        self.install_signal_handlers()
        broker = app.broker
        if not self._connect(broker):
            return 1
        committer = Committer(app, self.consumer_name, self.hostname)
        executor = Executor(app, self.hostname, self.consumer_name, self.state, committer)
        self.executor = executor
        self.committer = committer
        self.pool = self._make_pool(executor)
        self.consumer = Consumer(broker, self.consumer_name, self.queues, self.prefetch,
                                 self.pool, executor)
        conf = app.conf
        interval = float(conf.worker_heartbeat_interval)
        ttl = max(float(conf.worker_lost_timeout), interval * 2)
        info = components.node_info(self.hostname, self.consumer_name, self.pool_kind,
                                    lambda: self.pool.concurrency if self.pool else 0,
                                    lambda: list(self.consumer.queues) if self.consumer else [],
                                    self.started, lambda: self.ready)
        heartbeat = components.Heartbeat(broker, self.consumer_name, info, interval, ttl)
        heartbeat.beat()
        revokes = components.RevokeSync(broker, self.state)
        revokes.load()
        queues = lambda: list(self.consumer.queues) if self.consumer else []  # noqa: E731
        self.components = [
            heartbeat, revokes,
            components.Promoter(broker, queues),
            components.Recovery(broker, self.consumer_name, queues, committer, interval * 2),
        ]
        self.pool.start()  # fork before any other thread exists
        committer.start()
        for part in self.components:
            part.start()
        self.ready = True
        heartbeat.beat()
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self)
        try:
            self.consumer.run(self.should_stop)
        finally:
            self.shutdown()
        return 0

    def _connect(self, broker: Any) -> bool:
        retry = self.app.conf.broker_connection_retry_on_startup
        delay, attempts = 0.2, int(self.app.conf.broker_connection_max_retries or 100)
        for attempt in range(attempts + 1):
            try:
                broker.declare(self.queues)
                return True
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if not retry or attempt >= attempts or self.should_stop():
                    logger.critical("Cannot connect to the broker at %s: %s",
                                    _masked(broker.url), exc)
                    return False
                logger.error("Cannot connect to %s: %s. Trying again in %.1fs...",
                             _masked(broker.url), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        return False

    def _make_pool(self, executor: Executor) -> Pool:
        if self.pool_kind == "solo":
            from multiq.pools.solo import SoloPool
            return SoloPool(executor.execute)
        if self.pool_kind == "threads":
            from multiq.pools.threads import ThreadPool
            return ThreadPool(executor.execute, self.concurrency)
        from multiq.pools.prefork import PreforkPool
        opts, conf = self.options, self.app.conf
        return PreforkPool(
            executor, self.concurrency,
            max_tasks_per_child=opts.get("max_tasks_per_child")
            or conf.worker_max_tasks_per_child,
            max_memory_per_child=opts.get("max_memory_per_child")
            or conf.worker_max_memory_per_child,
            time_limit=opts.get("time_limit"), soft_time_limit=opts.get("soft_time_limit"),
            child_setup=self._child_setup,
        )

    def _child_setup(self, index: int) -> None:
        """Runs first in each pool child: its title and, with %i / %I, its own log file."""
        set_title(f"multiq worker: {self.hostname} child {index}")
        setup_logging = self.options.get("setup_child_logging")
        if setup_logging is not None:
            setup_logging(index)

    def shutdown(self) -> None:
        """Hand back what was never started, let running tasks finish, flush, leave."""
        mode = self._stop_mode or "warm"
        logger.warning("worker: %s shutdown (MainProcess)", mode.capitalize())
        self.ready = False
        if self.consumer is not None:
            n = self.consumer.handback()
            if n:
                logger.info("Handed back %d unstarted messages", n)
        if self.pool is not None:
            self.pool.stop(wait=mode == "warm")
        if getattr(self, "committer", None) is not None:
            self.committer.stop()
        for part in reversed(self.components):
            part.stop()
        signals.worker_shutdown.send(sender=self)

    def stats(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "uptime": int(time.time() - self.started),
                "total": dict(self.state.total), "prefetch_count": self.prefetch,
                "pool": self.pool.info() if self.pool else {}}


def set_title(title: str) -> None:
    """Name the process in ps/top (setproctitle), unless MULTIQ_NOSETPS is set."""
    if os.environ.get("MULTIQ_NOSETPS"):
        return
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - a declared dependency
        return
    setproctitle.setproctitle(title)


def _masked(url: str) -> str:
    from multiq.config import mask_url
    return mask_url(url)

