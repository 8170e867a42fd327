"""A worker node: its parts, built and started in order, and its shutdown.

Start-up, top to bottom: import task modules → connect and declare queues → committer and
executor → pool (prefork forks here, before any other thread exists) → committer thread →
heartbeat → revoke sync → promoter → recovery → consume ("ready"). Shutdown in reverse.

With the prefork pool the main process does not consume: each child is a consumer of its
own (see :mod:`multiq.pools.selffed`), held until the node's first beat has made its name
alive; the main process supervises them, beats for them and answers control commands.

Signals: TERM warm shutdown; INT warm, a second INT cold; QUIT cold; HUP restart in place
(detached nodes); USR1 dumps every thread's stack to the log. Handlers only set flags; the
main loop, or for what cannot wait for it the ``SignalWatcher`` thread, acts on them.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
)

from multiq import __version__, patching, signals
from multiq.exceptions import ImproperlyConfigured
from multiq.pools.base import Pool
from multiq.redisconn import REDIS_ERRORS, UNAVAILABLE
from multiq.supervisor.notify import Notifier
from multiq.worker import components
from multiq.worker.committer import Committer
from multiq.worker.config import OPTIONS, NodeConfig
from multiq.worker.consumer import Consumer, rides
from multiq.worker.contact import Contact
from multiq.worker.execute import Executor
from multiq.worker.node import NodeControl
from multiq.worker.state import WorkerState
from multiq.worker.twins import warn_twins

if TYPE_CHECKING:
    from multiq.broker.base import Broker

logger = logging.getLogger("multiq.worker")


class Worker:
    """One node: ``Worker(app, hostname="w1@%h", pool="solo").run()`` returns an exit code."""

    def __init__(
        self, app: Any, *, hostname: Optional[str] = None, concurrency: Optional[int] = None,
        pool: Optional[str] = None, queues: Optional[List[str]] = None,
        exclude_queues: Optional[List[str]] = None,
        prefetch_multiplier: Optional[int] = None,
        on_ready: Optional[Callable[[], None]] = None,
        on_exit: Optional[Callable[[], None]] = None,
        on_waiting: Optional[Callable[[str], None]] = None, **options: Any,
    ) -> None:
        """``options`` are :data:`multiq.worker.config.OPTIONS`; others are kept, unused, in
        :attr:`extra` (as they always were accepted)."""
        known = {k: options.pop(k) for k in OPTIONS if k in options}
        self.app = app
        getattr(app, "serve_as_node", lambda: None)()
        self.config = NodeConfig.resolve(
            app, hostname=hostname, concurrency=concurrency, pool=pool, queues=queues,
            exclude_queues=exclude_queues, prefetch_multiplier=prefetch_multiplier, **known)
        self.extra: Mapping[str, Any] = MappingProxyType(options)
        #: (max, min) while autoscaling: from the config, then as remote control sets it
        self.autoscale: Optional[Tuple[int, int]] = self.config.autoscale
        self.notifier = Notifier.from_environ(unset=True)  # systemd Type=notify, if any
        self.on_ready = on_ready
        self.on_exit = on_exit
        #: told once, with the reason, when the broker cannot be reached at start
        self.on_waiting = on_waiting
        self.state = WorkerState()
        self.started = time.time()
        self.ready = False
        self.restart_requested = False
        self.exit_code = 0
        self.failure: Optional[str] = None  # why the node could not start
        self._stop_mode: Optional[str] = None  # "warm" or "cold"
        self._sigint_count = 0
        self._flags = threading.Event()
        self._dump_requested = False
        self._cold_lock = threading.Lock()
        self._cold_started = False
        self.pool: Optional[Pool] = None
        self.consumer: Optional[Consumer] = None
        self.committer: Optional[Committer] = None
        self.components: List[components.Component] = []

    # -- settings (see NodeConfig) ---------------------------------------------------------

    @property
    def hostname(self) -> str:
        return self.config.hostname

    @property
    def consumer_name(self) -> str:
        return self.config.consumer_name

    @property
    def pool_kind(self) -> str:
        return self.config.pool

    @property
    def concurrency(self) -> int:
        """The pool's size at start (``pool.concurrency`` is its size now)."""
        return self.config.concurrency

    @property
    def queues(self) -> List[str]:
        """The queues at start (:meth:`current_queues`: those consumed now)."""
        return list(self.config.queues)

    @property
    def multiplier(self) -> int:
        return self.config.prefetch_multiplier

    @property
    def prefetch(self) -> int:
        return self.config.prefetch

    # -- signals -------------------------------------------------------------------------

    def install_signal_handlers(self, detached: bool = False) -> None:
        try:  # (only the main thread may; eventlet's patched ``threading`` cannot tell it)
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop("warm"))
        except ValueError:  # another thread (a node run inside a test, say): none
            return
        signal.signal(signal.SIGQUIT, lambda *_: self.request_stop("cold"))
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        if detached:
            signal.signal(signal.SIGHUP, self._on_hup)

    def _on_sigint(self, *_: Any) -> None:
        self._sigint_count += 1
        self.request_stop("warm" if self._sigint_count == 1 else "cold")

    def _on_hup(self, *_: Any) -> None:
        self.restart_requested = True
        self.request_stop("warm")

    def _on_usr1(self, *_: Any) -> None:
        self._dump_requested = True
        self._flags.set()

    def request_stop(self, mode: str = "warm") -> None:
        """Ask for a warm or cold shutdown (safe in a signal handler: sets flags only)."""
        if self._stop_mode != "cold":
            self._stop_mode = mode
        self._flags.set()

    def should_stop(self) -> bool:
        return self._stop_mode is not None

    # -- life ------------------------------------------------------------------------------

    def run(self) -> int:
        """Start, consume until asked to stop, shut down; returns the exit code."""
        app = self.app
        patching.patch_late(self.pool_kind)  # (-P gevent, eventlet: before any import)
        # The node's threads hand work to each other constantly; a short GIL switch
        # interval keeps one from waiting 5 ms for another that is busy.
        sys.setswitchinterval(self.config.switch_interval)
        set_title(f"multiq worker: {self.hostname} main")
        app.import_default_modules()
        app.finalize()
        signals.worker_init.send(sender=self)
        self.install_signal_handlers(self.config.detached)
        broker = self._connect()
        if broker is None:
            return 1
        name, host = self.consumer_name, self.hostname
        warn_twins(broker, host, name)
        kind = self._pool_class()
        committer = Committer(app, name, host)
        riding = rides(kind, broker, committer)
        # (prefork marks its children's starts batched itself, in each child)
        executor = Executor(app, host, name, self.state, committer,
                            batched_marks=riding or kind.batched_marks)
        self.executor, self.committer = executor, committer
        self.pool = self._make_pool(kind, executor)
        self.contact = self._contact()
        self.consumer = Consumer(broker, name, self.queues, self.prefetch, self.pool, executor,
                                 contact=self.contact)
        self.pool.start()  # fork before any other thread exists
        # the consumer runs in this thread: a solo node's outcomes ride on its fetches
        committer.start(idle=self.consumer.holds_only,
                        rider=threading.get_ident() if riding else None)
        self._start_components(broker, committer)
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self)
        self.notifier.ready(f"{self.hostname} consuming from {', '.join(self.queues)}")
        if self.on_ready is not None:
            self.on_ready()
        try:
            self.pool.serve(self.consumer, self.should_stop)
        finally:
            if self._stop_mode == "cold":
                self._cold_exit()
            self.shutdown()
        return self.exit_code

    def _liveness(self) -> Tuple[float, float]:
        """The heartbeat interval and the liveness key's time to live."""
        return self.config.liveness

    def _contact(self) -> Contact:
        interval, ttl = self._liveness()
        # a beat later than a wait and a beat's timeout means a stall
        return Contact(ttl, max_gap=interval + components.beat_timeout(interval, ttl))

    def _start_components(self, broker: Broker, committer: Committer) -> None:
        interval, ttl = self._liveness()
        contact = self.contact
        info = self._node_info()
        heartbeat = components.Heartbeat(broker, self.consumer_name, info, interval, ttl,
                                         contact, on_beat=self._node_event("worker-heartbeat"),
                                         others=self.pool.consumers if self.pool else list)
        contact.on_reconnect = heartbeat.wake  # the consumer is back: renew liveness now
        self._node_event("worker-online")({})
        revokes = components.RevokeSync(
            broker, self.state, on_revoke=lambda payload: self.revoke(payload.get("ids") or []))
        revokes.load()
        self.ready = True  # consuming starts next
        heartbeat.first_beat()  # alive, and ready, before it takes anything
        self.components = [
            heartbeat, revokes,
            components.Promoter(broker, self.current_queues),
            components.Recovery(broker, self.consumer_name, self.current_queues, committer,
                                interval * 2, contact),
            SignalWatcher(self),
            ControlMailbox(self),
        ]
        if self.notifier.watchdog_interval:
            self.components.append(Watchdog(self.notifier))
        if self.config.beat:
            from multiq.beat.scheduler import EmbeddedBeat
            self.components.append(EmbeddedBeat(self.app))  # type: ignore[arg-type]
        autoscale = self.autoscale
        if autoscale and self.pool is not None:
            from multiq.worker.autoscale import Autoscaler
            self.components.append(Autoscaler(self, *autoscale))
        for part in self.components:
            part.start()

    # -- remote control (through multiq.worker.node) ---------------------------------------

    def totals(self) -> Dict[str, int]:
        """Tasks run by name: in this process and in the pool's other processes."""
        total = dict(self.state.total)
        if self.pool is not None:
            for name, n in self.pool.totals().items():
                total[name] = total.get(name, 0) + n
        return total

    def revoke(self, ids: Iterable[str]) -> None:
        """Flag ``ids`` as revoked; what the pool holds of them, not started, never starts."""
        revoked = set(ids)
        self.state.add_revoked(revoked)
        if self.pool is not None:
            self.pool.revoked(revoked)

    def _node_event(self, kind: str) -> Callable[[Dict[str, Any]], None]:
        def send(info: Dict[str, Any]) -> None:
            if self.committer is not None and self.committer.events_enabled:
                active = self.pool.busy() if self.pool else 0
                self.committer.send_event(kind, freq=self.config.heartbeat_interval,
                                          active=active, processed=sum(self.totals().values()),
                                          sw_ident="multiq", sw_ver=__version__)
        return send

    def current_queues(self) -> List[str]:
        return list(self.consumer.queues) if self.consumer else list(self.queues)

    def _connect(self) -> Any:
        """The app's broker once its queues are declared; None if Redis stays away."""
        retry = self.app.conf.broker_connection_retry_on_startup
        delay, attempts = 0.2, int(self.app.conf.broker_connection_max_retries or 100)
        url = self.app.conf.broker_url or ""
        for attempt in range(attempts + 1):
            try:
                broker = self.app.broker  # a cluster client connects when it is made
                broker.declare(self.queues)
                return broker
            except ImproperlyConfigured as exc:  # a broker option: no retry can help
                logger.critical("%s", exc)
                self.failure = str(exc)
                return None
            except UNAVAILABLE as exc:
                reason = _masked(str(exc)).rstrip(".")  # may quote the URL; ends with "."
                if not retry or attempt >= attempts or self.should_stop():
                    logger.critical("Cannot connect to the broker at %s: %s", _masked(url),
                                    reason)
                    self.failure = f"cannot connect to the broker at {_masked(url)}: {reason}"
                    return None
                logger.error("Cannot connect to %s: %s. Trying again in %.1fs...",
                             _masked(url), reason, delay)
                if attempt == 0 and self.on_waiting is not None:
                    self.on_waiting(f"waiting for the broker at {_masked(url)}: {reason}")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        return None

    def _pool_class(self) -> Type[Pool]:
        if self.pool_kind == "solo":
            from multiq.pools.solo import SoloPool
            return SoloPool
        if self.pool_kind == "threads":
            from multiq.pools.threads import ThreadPool
            return ThreadPool
        if self.pool_kind == "gevent":
            from multiq.pools.greenlets import GeventPool
            return GeventPool
        if self.pool_kind == "eventlet":
            from multiq.pools.eventlets import EventletPool
            return EventletPool
        if self.pool_kind == "asyncio":
            from multiq.pools.eventloop import AsyncioPool
            return AsyncioPool
        from multiq.pools.selffed import SelfFedPool
        return SelfFedPool

    def _make_pool(self, kind: Type[Pool], executor: Executor) -> Pool:
        config, fail = self.config, executor.fail  # (fail: a request ``execute`` raised for)
        if kind.watches_calls:  # (gevent, eventlet, asyncio)
            watching: Any = kind  # (built so: see Pool.watches_calls)
            return watching(executor, config.concurrency, config.time_limit,
                            config.soft_time_limit, fail=fail)
        if self.pool_kind != "prefork":
            return kind(executor.execute, config.concurrency, fail=fail)
        from multiq.pools.selffed import SelfFedPool
        return SelfFedPool(
            executor, config.consumer_name, config.concurrency, config.prefetch_multiplier,
            self.current_queues, max_tasks_per_child=config.max_tasks_per_child,
            max_memory_per_child=config.max_memory_per_child, time_limit=config.time_limit,
            soft_time_limit=config.soft_time_limit, child_setup=self._child_setup,
            announce=self._announce, fail=fail,
        )

    def _node_info(self) -> Callable[[], Dict[str, Any]]:
        """What the heartbeat writes in the node's liveness key, computed at each beat."""
        return components.node_info(self.hostname, self.consumer_name, self.pool_kind,
                                    lambda: self.pool.concurrency if self.pool else 0,
                                    self.current_queues, self.started, lambda: self.ready,
                                    lambda: self.pool.busy() if self.pool else 0)

    def _announce(self, consumers: List[str]) -> None:
        """Make consumer names alive as this node is (a new prefork child's)."""
        _, ttl = self._liveness()
        info = self._node_info()()
        self.app.broker.heartbeat(self.consumer_name, info, ttl, others=consumers)

    def _child_setup(self, index: int) -> None:
        """Runs first in each pool child: its title and, with %i / %I, its own log file."""
        import multiprocessing

        multiprocessing.current_process().name = f"ForkPoolWorker-{index}"
        set_title(f"multiq worker: {self.hostname} child {index}")
        signal.signal(signal.SIGUSR1, lambda *_: dump_stacks(f"{self.hostname} child {index}"))
        setup_logging = self.config.setup_child_logging
        if setup_logging is not None:
            setup_logging(index)

    def resize(self, concurrency: int) -> None:
        """Keep the prefetch in step with the pool's size (grow / shrink / autoscale)."""
        if self.consumer is not None:
            self.consumer.prefetch = max(1, concurrency * self.multiplier)

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Warm: hand back what was never started, let running tasks finish, flush, leave."""
        logger.warning("worker: Warm shutdown (MainProcess)")
        self.notifier.stopping()
        self.ready = False
        if self.consumer is not None:
            n = self.consumer.handback()
            if n:
                logger.info("Handed back %d unstarted messages", n)
        bound = self.config.soft_shutdown_timeout
        if bound > 0:
            timer = threading.Timer(bound, self.request_stop, args=("cold",))
            timer.daemon = True
            timer.start()
        if self.pool is not None:
            self.pool.stop(wait=True)
        self._finish()

    def _cold_exit(self) -> None:
        """Cold: stop now; unfinished tasks go back to the queue (late ack) or are lost."""
        with self._cold_lock:
            if self._cold_started:
                return
            self._cold_started = True
        logger.warning("worker: Cold shutdown (MainProcess)")
        self.notifier.stopping()
        self.ready = False
        self.exit_code = 1
        if self.consumer is not None:
            self.consumer.handback()
        if self.pool is not None:
            self.pool.cold_stop(self.committer)
        self._finish()
        logging.shutdown()
        os._exit(1)

    def _finish(self) -> None:
        self._node_event("worker-offline")({})
        if self.committer is not None:
            self.committer.stop()
        try:
            self.app.broker.retire(self.consumer_name, self.current_queues())
        except REDIS_ERRORS as exc:
            logger.warning("Could not leave the consumer groups: %s", exc)
        for part in self.components:  # all at once, then wait for each
            signal_stop = getattr(part, "signal_stop", None)
            if signal_stop is not None:
                signal_stop()
        for part in reversed(self.components):
            part.stop()
        signals.worker_shutdown.send(sender=self)
        if self.on_exit is not None:
            self.on_exit()

    def stats(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "uptime": int(time.time() - self.started),
                "total": self.totals(), "prefetch_count": self.prefetch,
                "pool": self.pool.info() if self.pool else {}}


class Watchdog(components.Component):
    """Pings systemd's watchdog (``WatchdogSec``) while the node lives."""

    name = "watchdog"

    def __init__(self, notifier: Notifier) -> None:
        super().__init__()
        self.notifier = notifier

    def tick(self) -> float:
        self.notifier.watchdog()
        return self.notifier.watchdog_interval or 10.0


class ControlMailbox(components.Component):
    """Answers remote-control commands broadcast to the nodes (see control/mailbox.py)."""

    name = "control"

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker
        self.node = NodeControl(worker)

    def tick(self) -> float:
        broker = self.worker.app.broker
        pubsub = broker.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(broker.keys.control)
            while not self._stop.is_set():
                msg = pubsub.get_message(timeout=0.1)
                if msg and msg.get("type") == "message":
                    self.handle(msg["data"])
        finally:
            pubsub.close()
        return 0.0

    def handle(self, data: bytes) -> None:
        """Run one command and reply; a malformed message is logged and dropped, and no
        command's failure leaves the subscription (that would make the node deaf)."""
        from multiq.control import commands
        from multiq.control.mailbox import parse_command, send_reply

        w = self.worker
        message, why = parse_command(data, w.app.broker.keys.reply(""))
        if message is None:
            logger.warning("Ignoring a malformed control message on %s (%s): %r",
                           w.app.broker.keys.control, why, data[:200])
            return
        destination = message.get("destination")
        if destination and w.hostname not in destination:
            return
        if message.get("expires") and time.time() > message["expires"]:
            return
        w.state.clock += 1
        try:
            method, arguments = message["method"], message.get("arguments") or {}
            reply = commands.dispatch(self.node, method, arguments)
            if method in commands.FORWARDED and w.pool is not None \
                    and not (isinstance(reply, dict) and "error" in reply):
                w.pool.forward(method, arguments)  # (what the pool's processes apply too)
            if message.get("reply_to"):
                send_reply(w.app.broker.client, message["reply_to"], w.hostname, reply)
        except UNAVAILABLE:
            raise
        except Exception:
            logger.exception("Control command %r failed", message["method"])


class SignalWatcher(components.Component):
    """Acts on the flags that cannot wait for the main loop (it may be inside a task)."""

    name = "signals"

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def tick(self) -> float:
        w = self.worker
        w._flags.wait(0.5)
        w._flags.clear()
        if w._dump_requested:
            w._dump_requested = False
            dump_stacks(f"{w.hostname} main")
            if w.pool is not None:
                w.pool.dump_stacks()
        if w._stop_mode == "cold":
            w._cold_exit()  # the main thread may be inside a task or a warm shutdown
        return 0.0

    def signal_stop(self) -> None:
        super().signal_stop()
        self.worker._flags.set()


def dump_stacks(who: str) -> None:
    """Log the stack of every thread of this process."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = [f"Stacks of {who} (pid {os.getpid()}):"]
    for ident, frame in sys._current_frames().items():
        parts.append(f"--- thread {names.get(ident, ident)}")
        parts.append("".join(traceback.format_stack(frame)).rstrip())
    logger.warning("\n".join(parts))


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
