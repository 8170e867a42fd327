"""The pool interface: where requests run."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Set

if TYPE_CHECKING:
    from multiq.worker.items import Request

Execute = Callable[["Request"], None]
Fail = Callable[["Request", BaseException], None]


class Pool:
    """Runs requests; the consumer asks how many more it can take."""

    kind = "base"
    #: Requests run in the thread that fetched them (the consumer's), so their outcomes
    #: can ride on its next fetch.
    runs_inline = False
    #: Whether start markers may wait for the committer's next batch (see
    #: ``Committer.mark_started``): where nothing holds the writer back for long.
    batched_marks = False
    #: Built from the executor and the time limits (``pool(executor, concurrency,
    #: time_limit, soft_time_limit, fail=...)``): a pool that runs calls in this process
    #: and watches their limits itself (gevent, eventlet, asyncio).
    watches_calls = False

    def __init__(self, execute: Execute, concurrency: int, *,
                 fail: Optional[Fail] = None) -> None:
        self.execute = execute
        self.concurrency = max(1, int(concurrency))
        #: Records a request that ``execute`` raised for (not its task: a bug) as failed.
        self.fail = fail

    def start(self) -> None:
        """Start the pool's threads or processes."""

    def serve(self, consumer: Any, should_stop: Callable[[], bool]) -> None:
        """The node's main loop: the consumer fetches and feeds this pool until stopped."""
        consumer.run(should_stop)

    def forward(self, method: str, arguments: dict) -> None:
        """A control command (see ``multiq.control.commands.FORWARDED``), applied by the
        node, that the pool's other processes must apply too."""

    def busy(self) -> int:
        """How many requests run now."""
        return len(self.active())

    def queued(self) -> List[Request]:
        """Requests inside the pool that have not started."""
        running = {id(r) for r in self.active()}
        return [r for r in self.held() if id(r) not in running]

    def consumers(self) -> List[str]:
        """Consumer names of the pool's other processes, alive while the node is."""
        return []

    def totals(self) -> dict:
        """Tasks run by name in the pool's other processes (added to the node's own)."""
        return {}

    def stop(self, wait: bool = True, timeout: float = 0.0) -> None:
        """Stop; with ``wait`` the running requests finish first."""

    def free_slots(self) -> int:
        raise NotImplementedError

    def apply(self, req: Request) -> None:
        raise NotImplementedError

    def wait_for_slot(self, timeout: float) -> None:
        """Block until a slot may be free (or the timeout passes)."""

    def active(self) -> List[Request]:
        raise NotImplementedError

    def held(self) -> List[Request]:
        """Every request inside the pool, running or queued in it."""
        return self.active()

    def revoked(self, ids: Set[str]) -> None:
        """These task ids were just revoked: requests of them queued inside the pool, not
        started, must not start (where the pool could not check them itself)."""

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        """Send ``signum`` to the processes running these task ids (``revoke
        --terminate``); returns the ids signalled. A pool whose requests run in the
        node's own process signals none."""
        return []

    def waiting(self) -> int:
        """Requests inside the pool that have not started yet."""
        return 0

    def grow(self, n: int = 1) -> int:
        raise NotImplementedError(f"The {self.kind} pool cannot grow")

    def shrink(self, n: int = 1) -> int:
        raise NotImplementedError(f"The {self.kind} pool cannot shrink")

    def cold_stop(self, committer: Any) -> None:
        """Stop now (a cold shutdown): what runs in this process cannot be interrupted, so
        early-ack requests fail as lost and late-ack ones go back to their queue."""
        settle_cold(committer, self.active())

    def dump_stacks(self) -> None:
        """Ask the pool's other processes, if any, to log their threads' stacks (USR1)."""

    def info(self) -> dict:
        return {"implementation": self.kind, "max-concurrency": self.concurrency}


def settle_cold(committer: Any, running: List[Request]) -> None:
    """At a cold shutdown, the requests that were running and will not finish: early-ack
    ones fail as lost, late-ack ones go back to their queue."""
    from multiq import states
    from multiq.exceptions import WorkerLostError
    from multiq.worker.items import Outcome

    if committer is None:
        return
    for req in running:
        if req.committed:
            continue
        if req.early_ack:
            exc = WorkerLostError("Worker exited prematurely: cold shutdown")
            committer.complete(req, Outcome(states.FAILURE, exc=exc))
        else:
            committer.redeliver(req, count=False)
