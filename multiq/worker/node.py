"""The worker as the control commands see it (:class:`multiq.control.node.Node`).

Only this module reaches into the worker's parts on a command's behalf: its pool,
consumer, executor, committer and state.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    from multiq.worker.items import Request
    from multiq.worker.worker import Worker


class NodeControl:
    """``NodeControl(worker)``: what remote-control commands read and change of a node."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    @property
    def hostname(self) -> str:
        return self.worker.hostname

    @property
    def started(self) -> float:
        return self.worker.started

    @property
    def app(self) -> Any:
        return self.worker.app

    @property
    def clock(self) -> int:
        return self.worker.state.clock

    # -- what it is and holds ----------------------------------------------------------

    def pool_info(self) -> Dict[str, Any]:
        pool = self.worker.pool
        if pool is None:
            return {"max-concurrency": 0}
        return {**pool.info(), "max-concurrency": pool.concurrency}

    def prefetch(self) -> int:
        w = self.worker
        return w.consumer.prefetch if w.consumer else w.prefetch

    def totals(self) -> Dict[str, int]:
        return self.worker.totals()

    def current_queues(self) -> List[str]:
        return self.worker.current_queues()

    def consuming(self) -> bool:
        return self.worker.consumer is not None

    def running(self) -> List[Request]:
        pool = self.worker.pool
        return pool.active() if pool is not None else []

    def reserved(self) -> List[Request]:
        pool, consumer, held = self.worker.pool, self.worker.consumer, []
        if pool is not None:
            running = {id(r) for r in pool.active()}
            held = [r for r in pool.held() if id(r) not in running]
        if consumer is not None:
            held += list(consumer.reserved)
        return held

    def revoked(self) -> Collection[str]:
        return self.worker.state.revoked

    def autoscaling(self) -> bool:
        return bool(self.worker.autoscale)

    # -- changes ---------------------------------------------------------------------

    def set_events(self, enabled: bool) -> None:
        w = self.worker
        if w.committer is not None:
            w.committer.events_enabled = enabled
        w.app.conf.worker_send_task_events = enabled

    def set_rate_limit(self, task_name: str, rate: Optional[Any]) -> None:
        self.worker.app.tasks[task_name].rate_limit = rate
        self.worker.executor.set_rate_limit(task_name, rate)

    def set_time_limit(self, task_name: str, soft: Optional[float],
                       hard: Optional[float]) -> None:
        task = self.worker.app.tasks[task_name]
        task.soft_time_limit, task.time_limit = soft, hard

    def revoke(self, ids: List[str], terminate: bool, signo: int) -> List[str]:
        w = self.worker
        w.revoke(ids)
        if not terminate or w.pool is None:
            return []
        return w.pool.terminate(set(ids), signo)

    def request_stop(self, mode: str) -> None:
        self.worker.request_stop(mode)

    def request_restart(self) -> None:
        self.worker.restart_requested = True
        self.worker.request_stop("warm")

    def grow(self, n: int) -> int:
        pool = self.worker.pool
        size = pool.grow(n) if pool is not None else 0
        self.worker.resize(size)
        return size

    def shrink(self, n: int) -> int:
        pool = self.worker.pool
        size = pool.shrink(n) if pool is not None else 0
        self.worker.resize(size)
        return size

    def set_autoscale(self, high: int, low: int) -> Tuple[int, int]:
        from multiq.worker.autoscale import Autoscaler

        w = self.worker
        for part in w.components:
            if isinstance(part, Autoscaler):
                part.max, part.min = max(high, low), min(high, low)
                return part.max, part.min
        scaler = Autoscaler(w, high, low)
        w.autoscale = (scaler.max, scaler.min)
        w.components.append(scaler)
        scaler.start()
        return scaler.max, scaler.min

    def add_queue(self, queue: str) -> None:
        if self.worker.consumer is not None:
            self.worker.consumer.add_queue(queue)

    def cancel_queue(self, queue: str) -> None:
        if self.worker.consumer is not None:
            self.worker.consumer.cancel_queue(queue)
