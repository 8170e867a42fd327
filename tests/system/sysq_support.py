"""Shared by tests/system/test_guarantees_*.py: broker inspection, run records, a private
redis-server with AOF persistence.

The task module the workers run is ``apps/sysq_reliable.py``; it records every execution
in db 3 of the broker's server (list ``runs``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import redis
from helpers import free_port, tail

APPS = Path(__file__).resolve().parent / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

QUEUE = "multiq"
GROUP = "multiq"
RECORD_DB = 3
TASK = "sysq_reliable.{}".format
WORKER_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def stream(queue: str, band: int) -> str:
    return f"multiq:q:{{{queue}}}:{band}"


def streams(queue: str = QUEUE) -> List[str]:
    return [stream(queue, band) for band in range(9, -1, -1)]


def delayed(queue: str = QUEUE) -> str:
    return f"multiq:q:{{{queue}}}:delayed"


def started_hash(queue: str = QUEUE) -> str:
    return f"multiq:q:{{{queue}}}:started"


def deadletter(queue: str = QUEUE) -> str:
    return f"multiq:q:{{{queue}}}:deadletter"


def runs(rec: Any) -> List[str]:
    """Everything the tasks recorded, in order."""
    return [x.decode() for x in rec.lrange("runs", 0, -1)]


def pending_by_consumer(broker: Any, queue: str = QUEUE) -> Dict[str, int]:
    """Consumer -> number of entries it holds (XPENDING summary over the band streams)."""
    out: Dict[str, int] = {}
    for name in streams(queue):
        if not broker.exists(name):
            continue
        try:
            summary = broker.xpending(name, GROUP)
        except redis.ResponseError:  # no group yet
            continue
        for c in summary.get("consumers") or ():
            who = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
            out[who] = out.get(who, 0) + int(c["pending"])
    return out


def pending_total(broker: Any, queue: str = QUEUE) -> int:
    return sum(pending_by_consumer(broker, queue).values())


def stream_total(broker: Any, queue: str = QUEUE) -> int:
    return sum(int(broker.xlen(name)) for name in streams(queue))


def broker_idle(broker: Any, queue: str = QUEUE) -> bool:
    """Nothing ready, delayed, held or marked started is left in ``queue``."""
    return (pending_total(broker, queue) == 0 and stream_total(broker, queue) == 0
            and broker.zcard(delayed(queue)) == 0 and broker.hlen(started_hash(queue)) == 0)


def describe_broker(broker: Any, queue: str = QUEUE) -> str:
    return (f"pending={pending_by_consumer(broker, queue)} ready={stream_total(broker, queue)} "
            f"delayed={broker.zcard(delayed(queue))} started={broker.hlen(started_hash(queue))}")


def wait_results(results: Iterable[Any], timeout: float) -> None:
    """Wait until every result is ready (without raising the tasks' errors)."""
    deadline = time.monotonic() + timeout
    for r in results:
        left = max(0.1, deadline - time.monotonic())
        r.get(timeout=left, propagate=False)


def sigkill(worker: Any) -> None:
    """SIGKILL a worker by its pid and reap it."""
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


class AOFRedis:
    """A private redis-server with ``--appendonly yes`` that can be stopped and restarted
    on the same port with the same data directory."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.directory / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def start(self, timeout: float = 15.0) -> subprocess.Popen:
        """Start on a free port (another one if it was taken meanwhile)."""
        for _ in range(5):
            self.port = free_port()
            if self._start_once(timeout):
                assert self.proc is not None
                return self.proc
        raise RuntimeError(f"private redis-server did not start:\n{tail(self.log())}")

    def restart(self, timeout: float = 15.0) -> subprocess.Popen:
        """Start again on the same port, with the same directory (and AOF file)."""
        if not self._start_once(timeout):
            raise RuntimeError(f"private redis-server did not restart on port {self.port}:"
                               f"\n{tail(self.log())}")
        assert self.proc is not None
        return self.proc

    def _start_once(self, timeout: float) -> bool:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--dir", str(self.directory), "--daemonize", "no", "--logfile", ""]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(self.directory),
                                         start_new_session=True)
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5,
                            socket_timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if probe.ping():
                        return True
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                time.sleep(0.02)
        finally:
            probe.close()
        self.stop()
        raise RuntimeError(f"private redis-server did not answer:\n{tail(self.log())}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by pid (Redis flushes the AOF and exits); KILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def start(start_worker: Any, *args: str, **options: Any) -> Any:
    """Start a ``sysq_reliable`` worker from the command line (see the ``start_worker``
    fixture); ``pool``, ``hostname``, ``wait_ready``, ``env`` pass through."""
    env = dict(WORKER_ENV)
    env.update(options.pop("env", None) or {})
    return start_worker("sysq_reliable", *args, cwd=APPS, env=env, **options)


def started_tags(rec: Any) -> List[str]:
    return [x[len("start:"):] for x in runs(rec) if x.startswith("start:")]
