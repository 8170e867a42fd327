"""SPEC §3 and §5 under a fault soak: nothing lost, no unexplained duplicate run, no result
left unfinished, every node resumes by itself.

The test runs its own redis-server (``--appendonly yes --appendfsync always``) and four
nodes of every pool kind (2 solo, threads -c 4, prefork -c 2) with a short liveness (lost
after 2 s, a beat every 0.5 s). It sends waves of mixed tasks (apps/sysq_soak.py: quick
and 0.2-1 s ones, early and late ack, countdowns, some that retry once) and, between
them, applies the faults of ``SCHEDULE`` in order, each once work is running where it
strikes: SIGKILL of a node (with its pool children, as a host dies or ``multi kill``
does; the test then restarts it, as a supervisor would), SIGKILL of one prefork child,
SIGKILL of redis-server restarted on its AOF (after a short and after a long outage),
``CLIENT KILL TYPE normal``, and SIGSTOP/SIGCONT of redis-server. Every execution is
recorded outside Redis, by the task itself, in a file (start and end lines).

Which duplicate runs are allowed. Two runs of one attempt of a task (same id, same
``retries``) are *explained* only when a kill allows them:

- some run of it happened in a process the test SIGKILLed (the node and its children,
  or one prefork child), started before the kill; and
- at the moment of the kill, its node still held the task's message unacknowledged: the
  entry was in the node's pending-entries list (read while the victims were frozen with
  SIGSTOP just before the SIGKILL, so nothing changed in between); and
- for an early-ack task, that entry was not yet marked started in Redis
  (``multiq:q:{<queue>}:started``). Once the start is recorded an early-ack task must
  never run again: it ends FAILURE WorkerLostError instead.

Every other duplicate is a bug: in particular any caused by a Redis restart, pause or cut
connection, or on a node that was never killed. Likewise FAILURE WorkerLostError is
allowed only for a task its killed node held and had started (by its run record or its
start marker); every other task must end SUCCESS. ``SOAK_SEED`` changes the task mix.
"""
from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import find_redis_server, wait_until  # noqa: E402
from soak_support import (  # noqa: E402
    Kill,
    Run,
    RunLog,
    by_attempt,
    consumer_of,
    explaining_kill,
    freeze,
    holdings,
    kill,
    lost_by_kill,
    result_docs,
    retrying,
    state_of,
)
from sysq_support import APPS, AOFRedis  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.soak]

LOST_TIMEOUT = 2.0
HEARTBEAT = 0.5
NODES = {"solo-a": ("solo", ()), "solo-b": ("solo", ()),
         "threads": ("threads", ("-c", "4")), "prefork": ("prefork", ("-c", "2"))}
WAVE = 300
#: (seconds after the start, step, argument). A step waits for its time, and a fault also
#: until work runs where it strikes (it strikes anyway after a while, and says so).
SCHEDULE: Tuple[Tuple[float, str, Any], ...] = (
    (0, "wave", WAVE),
    (2, "kill_node", "solo-a"),
    (4, "kill_child", "prefork"),
    (6, "wave", WAVE),
    (8, "restart_redis", 0.5),  # a short outage
    (11, "cut_connections", None),
    (13, "wave", WAVE),
    (15, "kill_node", "threads"),
    (18, "pause_redis", 1.0),
    (21, "wave", WAVE),
    (23, "restart_redis", 2.5 * LOST_TIMEOUT),  # longer than the liveness timeout
    (31, "wave", WAVE),
    (33, "kill_node", "prefork"),
    (36, "kill_child", "prefork"),
    (38, "wave", WAVE),
    (40, "pause_redis", 2.0 * LOST_TIMEOUT),  # longer than the liveness timeout
    (46, "wave", WAVE),
    (48, "cut_connections", None),
    (50, "kill_node", "solo-b"),
    (53, "wave", WAVE),
    (55, "kill_child", "prefork"),
    (57, "wave", WAVE),
)
#: (weight, task, early ack); a share of every kind is sent with a countdown.
MIX = ((55, "quick", True), (12, "quick_late", False), (15, "nap", True),
       (12, "nap_late", False), (6, "retry_once", True))
COUNTDOWN_SHARE = 0.2
EARLY = {name for _, name, early in MIX if early}
DRAIN_TIMEOUT = 120


class Soak:
    """The nodes, the Redis server, the tasks sent and the faults applied."""

    def __init__(self, srv: AOFRedis, start_worker: Any, make_app: Any, tracker: Any,
                 run_log: Path) -> None:
        self.srv, self.start_worker, self.tracker = srv, start_worker, tracker
        self.rng = random.Random(int(os.environ.get("SOAK_SEED", "1")))
        self.client = make_app("sysq_soak_client", broker=srv.url(1), backend=srv.url(2))
        self.broker, self.results = srv.client(1), srv.client(2)
        self.log = RunLog(run_log)
        self.env = {"MULTIQ_BROKER_URL": srv.url(1), "MULTIQ_RESULT_BACKEND": srv.url(2),
                    "SYSQ_RUN_LOG": str(run_log), "SYSQ_LOST_TIMEOUT": str(LOST_TIMEOUT),
                    "SYSQ_HEARTBEAT": str(HEARTBEAT), "PYTHONDONTWRITEBYTECODE": "1"}
        self.t0 = time.monotonic()
        self.nodes: Dict[str, Any] = {}
        self.sent: Dict[str, str] = {}  # task id -> task name
        self.kills: List[Kill] = []
        self.faults: List[Tuple[float, str]] = []
        self.counts: Counter = Counter()

    # -- nodes ---------------------------------------------------------------------------

    def start_node(self, name: str) -> None:
        pool, args = NODES[name]
        self.nodes[name] = self.start_worker(
            "sysq_soak", *args, "-Q", f"multiq,own.{name}", cwd=APPS, env=self.env,
            pool=pool, hostname=f"{name}@soak", timeout=40)

    def pids(self, name: str) -> Set[int]:
        main = psutil.Process(self.nodes[name].pid)
        return {main.pid, *(c.pid for c in main.children(recursive=True))}

    # -- steps ---------------------------------------------------------------------------

    def run(self, at: float, step: str, arg: Any) -> None:
        wait_until(lambda: time.monotonic() - self.t0 >= at, timeout=at + 120,
                   interval=0.01, message=f"step {step} at {at}s")
        getattr(self, step)(arg)

    def note(self, text: str) -> None:
        self.faults.append((time.monotonic() - self.t0, text))

    def wave(self, n: int) -> None:
        for _ in range(n):
            self._send(*self._draw())

    def _send(self, name: str, args: list, countdown: Optional[float]) -> None:
        r = retrying(lambda: self.client.send_task(f"sysq_soak.{name}", args=args,
                                                   countdown=countdown))
        self.sent[r.id] = name

    def _draw(self) -> Tuple[str, list, Optional[float]]:
        name = self.rng.choices([m[1] for m in MIX], weights=[m[0] for m in MIX])[0]
        args = [round(self.rng.uniform(0.2, 1.0), 2)] if name.startswith("nap") else []
        countdown = round(self.rng.uniform(0.5, 6.0), 2) \
            if self.rng.random() < COUNTDOWN_SHARE else None
        return name, args, countdown

    def wait_busy(self, pids: Optional[Set[int]], where: str) -> List[Run]:
        """Wait until a task runs in ``pids`` (anywhere: None); the fault strikes anyway
        after a while, and the summary says it found nothing running."""
        try:
            return wait_until(lambda: self.log.running(pids), timeout=30, interval=0.01)
        except AssertionError:
            self.counts["idle faults"] += 1
            self.note(f"(nothing was running {where})")
            return []

    def kill_node(self, name: str) -> None:
        self.wait_busy(self.pids(name), f"on {name}")
        worker = self.nodes[name]
        main = psutil.Process(worker.pid)
        freeze([main])
        children = main.children(recursive=True)
        freeze(children)
        self._kill("node", name, worker.pid, [main, *children])
        worker.wait(timeout=10)
        self.counts["node kills"] += 1
        self.start_node(name)

    def kill_child(self, name: str) -> None:
        main = psutil.Process(self.nodes[name].pid)
        children = {c.pid: c for c in main.children()}
        running = self.wait_busy(set(children), f"in a child of {name}")
        busy = sorted({r.pid for r in running} & set(children)) or sorted(children)
        child = children[self.rng.choice(busy)]
        freeze([child])
        self._kill("child", f"{name} child {child.pid}", main.pid, [child])
        self.counts["child kills"] += 1

    def _kill(self, kind: str, target: str, node_pid: int, victims: List[psutil.Process]
              ) -> None:
        """Note what the (frozen) victims' node holds, then SIGKILL them."""
        at = time.monotonic()
        name = target.split()[0]
        consumers = consumer_of(self.broker, f"{name}@soak", node_pid)
        held, marked = holdings(self.broker, consumers, ["multiq", f"own.{name}"])
        kill(victims)
        self.kills.append(Kill(kind, target, at, {p.pid for p in victims}, held, marked))
        self.note(f"SIGKILL {kind} {target} (pids {sorted(p.pid for p in victims)}; "
                  f"{consumers} held {len(held)}, {len(marked)} marked started)")

    def restart_redis(self, down: float) -> None:
        self.wait_busy(None, "anywhere")
        proc = self.srv.proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.srv.proc = None
        self.note(f"SIGKILL redis-server, down {down}s")
        time.sleep(down)  # the outage itself
        self.tracker.track(self.srv.restart())
        self.counts["redis restarts (long)" if down > LOST_TIMEOUT
                    else "redis restarts (short)"] += 1

    def pause_redis(self, seconds: float) -> None:
        self.wait_busy(None, "anywhere")
        proc = self.srv.proc
        assert proc is not None
        self.note(f"SIGSTOP redis-server for {seconds}s")
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the outage itself
        finally:
            proc.send_signal(signal.SIGCONT)
        self.counts["pauses (long)" if seconds > LOST_TIMEOUT else "pauses (short)"] += 1

    def cut_connections(self, _: Any) -> None:
        self.wait_busy(None, "anywhere")
        cut = retrying(lambda: self.broker.client_kill_filter(_type="normal", skipme=True))
        self.note(f"CLIENT KILL TYPE normal: {cut} connections")
        self.counts["connection cuts"] += 1

    # -- the end -------------------------------------------------------------------------

    def drain(self) -> Dict[str, str]:
        """Wait (up to DRAIN_TIMEOUT) until every task has a final result; their states."""
        states: Dict[str, str] = {}

        def done() -> bool:
            docs = result_docs(self.results, list(self.sent))
            states.update({t: state_of(d) for t, d in docs.items()})
            return all(s == "SUCCESS" or s.startswith(("FAILURE", "REVOKED"))
                       for s in states.values())
        try:
            wait_until(done, timeout=DRAIN_TIMEOUT, interval=0.5)
        except AssertionError:
            pass  # counted and reported below
        return states

    def answering(self) -> Set[str]:
        names = [f"{n}@soak" for n in self.nodes]
        inspect = self.client.control.inspect(destination=names, timeout=5)
        return set(retrying(inspect.ping) or {})

    def consuming(self) -> Set[str]:
        """Nodes that run a task sent to their own queue."""
        out = set()
        probes = {name: retrying(lambda n=name: self.client.send_task(
            "sysq_soak.quick", queue=f"own.{n}")) for name in self.nodes}
        for name, r in probes.items():
            try:
                r.get(timeout=30)
            except Exception:
                continue
            if any(run.task_id == r.id and run.node == f"{name}@soak"
                   for run in self.log.read()):
                out.add(name)
        return out


def analyse(soak: Soak, states: Dict[str, str]) -> Dict[str, Any]:
    """The numbers of the summary, and the offending tasks."""
    runs = [r for r in soak.log.read() if r.task_id in soak.sent]
    attempts = by_attempt(runs)
    runs_of: Dict[str, List[Run]] = {}
    for r in runs:
        runs_of.setdefault(r.task_id, []).append(r)
    explained, unexplained = [], []
    for (task_id, attempt), rs in attempts.items():
        if len(rs) < 2:
            continue
        early = soak.sent[task_id] in EARLY
        k = explaining_kill(task_id, rs, early, soak.kills)
        (explained if k else unexplained).append((task_id, attempt, rs, k))
    lost_ok, lost_bad, wrong = [], [], []
    for task_id, state in states.items():
        if state == "FAILURE:WorkerLostError":
            k = lost_by_kill(task_id, runs_of.get(task_id, []), soak.kills)
            (lost_ok if k else lost_bad).append(task_id)
        elif state != "SUCCESS" and (state.startswith(("FAILURE", "REVOKED"))):
            wrong.append((task_id, state))
    unfinished = [t for t, s in states.items()
                  if not (s == "SUCCESS" or s.startswith(("FAILURE", "REVOKED")))]
    never_ran = [t for t in soak.sent if t not in runs_of and t not in lost_ok]
    return {
        "runs": len(runs), "explained": explained, "unexplained": unexplained,
        "lost_ok": lost_ok, "lost_bad": lost_bad, "wrong": wrong, "unfinished": unfinished,
        "never_ran": never_ran, "lost": sorted(set(unfinished) | set(never_ran)),
    }


def describe_runs(soak: Soak, task_id: str, rs: List[Run]) -> str:
    """Where and when a task ran, and the faults from the last one before its first run
    to the end of its last run."""
    def at(t: float) -> str:
        return f"{t - soak.t0:.1f}s"
    where = ", ".join(f"{r.node} pid {r.pid} attempt {r.attempt} {at(r.start)}-"
                      f"{at(r.end) if r.end else 'never ended'}" for r in rs) or "no run"
    first = min((r.start for r in rs), default=soak.t0) - soak.t0
    last = max((r.end or r.start for r in rs), default=time.monotonic()) - soak.t0
    before = [i for i, (t, _) in enumerate(soak.faults) if t < first][-1:]
    start = before[0] if before else 0
    during = [f"{t:.1f}s {text}" for t, text in soak.faults[start:] if t <= last]
    return f"{soak.sent[task_id]}[{task_id}]: {where}; faults meanwhile: {during or 'none'}"


def summary(soak: Soak, a: Dict[str, Any], alive: Set[str], ping: Set[str],
            consuming: Set[str], elapsed: float) -> str:
    c = soak.counts
    dups = sum(len(rs) - 1 for _, _, rs, _ in a["explained"] + a["unexplained"])
    return (
        f"Soak ({elapsed:.0f}s, seed {os.environ.get('SOAK_SEED', '1')}): "
        f"{len(soak.sent)} tasks, {a['runs']} runs on {len(NODES)} nodes; faults: "
        f"{c['node kills']} node kills, {c['child kills']} child kills, redis restarts "
        f"{c['redis restarts (short)']} short / {c['redis restarts (long)']} long, "
        f"{c['connection cuts']} connection cuts, pauses {c['pauses (short)']} short / "
        f"{c['pauses (long)']} long ({c['idle faults']} struck while nothing ran). "
        f"Lost: {len(a['lost'])} ({len(a['never_ran'])} never ran, "
        f"{len(a['unfinished'])} without a final result). Duplicate runs: {dups} "
        f"({len(a['explained'])} tasks explained by a kill of the process running them, "
        f"{len(a['unexplained'])} not explained). WorkerLostError: {len(a['lost_ok'])} "
        f"allowed by a kill, {len(a['lost_bad'])} not. Other non-SUCCESS results: "
        f"{len(a['wrong'])}. Left PENDING/STARTED: {len(a['unfinished'])}. Nodes alive "
        f"{len(alive)}/{len(NODES)}, answering ping {len(ping)}/{len(NODES)}, consuming "
        f"{len(consuming)}/{len(NODES)}."
    )


@pytest.fixture
def soak_redis(tmp_path, process_tracker):
    server = AOFRedis(find_redis_server(), tmp_path / "soak-redis")
    process_tracker.track(server.start())
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(420)
def test_soak_under_node_kills_and_redis_faults(
        soak_redis, start_worker, make_app, process_tracker, tmp_path, capsys):
    soak = Soak(soak_redis, start_worker, make_app, process_tracker, tmp_path / "runs.log")
    for name in NODES:
        soak.start_node(name)
    try:
        for at, step, arg in SCHEDULE:
            soak.run(at, step, arg)
        soak.note("schedule done")
        states = soak.drain()
        alive = {name for name, w in soak.nodes.items() if w.alive}
        ping = {name.split("@")[0] for name in soak.answering()}
        consuming = soak.consuming()
    finally:
        stop_nodes(soak)
    a = analyse(soak, states)
    text = summary(soak, a, alive, ping, consuming, time.monotonic() - soak.t0)
    details = ["ran twice: " + describe_runs(soak, t, rs) for t, _, rs, _ in a["unexplained"][:10]]
    details += ["WorkerLostError not allowed by any kill: "
                + describe_runs(soak, t, [r for r in soak.log.runs if r.task_id == t])
                for t in a["lost_bad"][:10]]
    details += [f"lost: {soak.sent[t]}[{t}] {states.get(t)}" for t in a["lost"][:10]]
    details += [f"result {s}: {soak.sent[t]}[{t}]" for t, s in a["wrong"][:10]]
    with capsys.disabled():
        print("\n" + text)
        for line in details:
            print("  " + line)
        for t, fault in soak.faults:
            print(f"  {t:6.1f}s {fault}")

    assert not a["lost"], f"lost tasks: {a['lost'][:10]}\n{text}"
    assert not a["unexplained"], "\n".join([text, *details])
    assert not a["unfinished"], text
    assert not a["lost_bad"] and not a["wrong"], "\n".join([text, *details])
    assert alive == ping == consuming == set(NODES), text


def stop_nodes(soak: Soak) -> None:
    """Warm shutdown while Redis is still up (the fixtures stop Redis first)."""
    for w in soak.nodes.values():
        w.send_signal(signal.SIGTERM)
    for w in soak.nodes.values():
        try:
            w.wait(timeout=20)
        except AssertionError:
            pass  # the process tracker kills it at teardown
