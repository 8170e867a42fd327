"""Helpers of the fault soak (tests/system/test_soak.py): the run record kept outside Redis,
freezing and killing processes while noting what their node held, and the analysis of the
runs (duplicates, and whether a kill explains them).
"""
from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, TypeVar

import psutil
import redis

from multiq.keys import GROUP, Keys, result_key

KEYS = Keys()
T = TypeVar("T")


def retrying(call: Callable[[], T], timeout: float = 30.0) -> T:
    """``call()``, again while Redis is unreachable (it is restarted or paused on purpose)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- the run record ------------------------------------------------------------------------


@dataclass
class Run:
    """One execution of one attempt of a task, as the task recorded it."""

    task_id: str
    attempt: int
    node: str
    pid: int
    start: float  # monotonic (one clock for every process of the host)
    end: Optional[float] = None


class RunLog:
    """Reads the lines the tasks append (see apps/sysq_soak.py), as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: List[Run] = []
        self._offset = 0
        self._open: Dict[Tuple[str, int, int], Run] = {}

    def read(self) -> List[Run]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.runs
        complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            event, task_id, attempt, node, pid, mono, _epoch = line.split()
            key = (task_id, int(attempt), int(pid))
            if event == "start":
                self._open[key] = Run(task_id, int(attempt), node, int(pid), float(mono))
                self.runs.append(self._open[key])
            elif key in self._open:
                self._open.pop(key).end = float(mono)
        return self.runs

    def running(self, pids: Optional[Set[int]] = None) -> List[Run]:
        """Runs started and not ended (in ``pids`` only, if given)."""
        self.read()
        return [r for r in self._open.values() if pids is None or r.pid in pids]


# -- kills -----------------------------------------------------------------------------------


@dataclass
class Kill:
    """A SIGKILL the test sent, and what the victim's node held in Redis at that moment."""

    kind: str  # "node" or "child"
    target: str
    at: float  # monotonic
    pids: Set[int]
    held: Set[str] = field(default_factory=set)  # task ids of its unacknowledged entries
    marked: Set[str] = field(default_factory=set)  # ... of those marked started


def consumer_of(broker: Any, hostname: str, pid: int) -> List[str]:
    """The consumer names of node ``hostname`` whose liveness record names ``pid`` (all of
    the node's names that hold entries, when the record is gone)."""
    names = []
    for key in retrying(lambda: list(broker.scan_iter(match=KEYS.node("*"), count=500))):
        raw = retrying(lambda k=key: broker.get(k))
        try:
            info = json.loads(raw) if raw else {}
        except ValueError:
            continue
        if isinstance(info, dict) and info.get("hostname") == hostname \
                and info.get("pid") == pid:
            names.append(key.decode()[len(KEYS.node("")):])
    return names


def holdings(broker: Any, consumers: Iterable[str], queues: Iterable[str]
             ) -> Tuple[Set[str], Set[str]]:
    """Task ids of the entries pending for ``consumers`` in ``queues``, and of those of them
    marked started (early ack)."""
    consumers = set(consumers)
    held: Set[str] = set()
    marked: Set[str] = set()
    for queue in queues:
        started = retrying(lambda q=queue: broker.hgetall(KEYS.started(q)))
        for stream in KEYS.streams(queue):
            for consumer in consumers:
                rows = retrying(lambda s=stream, c=consumer: _pending(broker, s, c))
                for entry_id in rows:
                    task_id = _task_id(broker, stream, entry_id)
                    if task_id is None:
                        continue
                    held.add(task_id)
                    if started.get(entry_id) is not None:
                        marked.add(task_id)
    return held, marked


def _pending(broker: Any, stream: str, consumer: str) -> List[bytes]:
    try:
        rows = broker.xpending_range(stream, GROUP, "-", "+", 100_000, consumername=consumer)
    except redis.ResponseError:  # no stream or group yet
        return []
    return [r["message_id"] for r in rows]


def _task_id(broker: Any, stream: str, entry_id: bytes) -> Optional[str]:
    rows = retrying(lambda: broker.xrange(stream, entry_id, entry_id))
    if not rows:
        return None
    try:
        return str(json.loads(rows[0][1][b"m"])["id"])
    except (KeyError, ValueError, TypeError):
        return None


def freeze(procs: Iterable[psutil.Process]) -> None:
    for p in procs:
        try:
            p.send_signal(signal.SIGSTOP)
        except psutil.NoSuchProcess:
            pass


def kill(procs: List[psutil.Process]) -> None:
    """SIGKILL (by pid, checked by psutil against reuse) and wait until they are gone."""
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, f"still alive after SIGKILL: {alive}"


# -- results ---------------------------------------------------------------------------------


def result_docs(results: Any, ids: List[str]) -> Dict[str, Optional[Dict[str, Any]]]:
    """Task id -> its result document (None when there is none yet)."""
    out: Dict[str, Optional[Dict[str, Any]]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        raw = retrying(lambda c=chunk: results.mget([result_key(t) for t in c]))
        out.update({t: (json.loads(d) if d else None) for t, d in zip(chunk, raw)})
    return out


def state_of(doc: Optional[Dict[str, Any]]) -> str:
    """``SUCCESS``, ``FAILURE:<exception type>``, ``PENDING`` (no document), ..."""
    if doc is None:
        return "PENDING"
    status = doc.get("status", "?")
    if status == "FAILURE" and isinstance(doc.get("result"), dict):
        return f"FAILURE:{doc['result'].get('exc_type')}"
    return str(status)


# -- analysis ------------------------------------------------------------------------------


def by_attempt(runs: Iterable[Run]) -> Dict[Tuple[str, int], List[Run]]:
    out: Dict[Tuple[str, int], List[Run]] = defaultdict(list)
    for r in runs:
        out[r.task_id, r.attempt].append(r)
    return out


def explaining_kill(task_id: str, runs: List[Run], early_ack: bool,
                    kills: List[Kill]) -> Optional[Kill]:
    """The kill that allows ``runs`` of one attempt to be more than one (see test_soak)."""
    for k in kills:
        if task_id not in k.held or (early_ack and task_id in k.marked):
            continue
        if any(r.pid in k.pids and r.start <= k.at for r in runs):
            return k
    return None


def lost_by_kill(task_id: str, runs: List[Run], kills: List[Kill]) -> Optional[Kill]:
    """The kill that allows ``task_id`` to end FAILURE WorkerLostError: its node held it,
    and it had started in the killed process (by its run record, or by its start marker:
    a kill can fall between the marker and the task's first line)."""
    for k in kills:
        if task_id in k.held and (task_id in k.marked or any(
                r.pid in k.pids and r.start <= k.at for r in runs)):
            return k
    return None
