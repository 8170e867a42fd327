"""What the bench runs for each system: worker command lines per setting, multi commands.

Settings are named after multiq's pools (``solo``, ``threads4``, ``prefork2``); a peer's
setting with the same name runs the same number of processes / concurrent tasks, and the
ratio column compares it with that multiq row. Extra reference settings (``full_only``)
are compared with the multiq setting named in ``match``.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

NODES = ("w1", "w2", "w3", "w4")


@dataclass(frozen=True)
class Setting:
    """One worker configuration; ``args`` may use ``{broker}``."""

    key: str
    args: Tuple[str, ...]
    note: str = ""
    match: str = ""
    n_div: int = 1  # drain N is divided by this (RQ's slow workers, as in the reference)
    full_only: bool = False
    procs: int = 1  # worker processes started side by side (``{i}`` in args: 1, 2...)
    task: str = ""  # the app's task the ``io`` figure sends
    #: more (setting, multiq setting compared with) rows the same samples are shown as
    also: Tuple[Tuple[str, str], ...] = ()

    @property
    def compare_to(self) -> str:
        return self.match or self.key


@dataclass(frozen=True)
class System:
    name: str
    dist: str
    base: Tuple[str, ...]
    drain: Tuple[Setting, ...]
    node: Tuple[Setting, ...]  # start-up, memory and latency
    canvas: Tuple[Setting, ...] = ()  # chord, chain, roundtrips (none: not measured)
    io: Tuple[Setting, ...] = ()  # I/O-bound tasks on green threads or coroutines
    results_db: int = 2  # where the result keys live (RQ keeps them in its one db)
    #: its result documents are alone in ``results_db`` and carry ``date_done`` (the
    #: ``noop-`` drain figures, see bench.drain)
    stamped_results: bool = False
    multi: Optional[str] = None  # the module whose ``multi`` command is measured
    app: str = ""
    root: Optional[str] = None  # another checkout whose multiq and bench apps it runs
    client: str = ""  # the producer's client (bench.clients), when not ``name``

    @property
    def client_name(self) -> str:
        return self.client or self.name

    def installed(self) -> bool:
        return importlib.util.find_spec(self.dist) is not None

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    def worker_argv(self, setting: Setting, broker: str, i: int = 1) -> List[str]:
        args = [a.format(broker=broker, i=i) for a in setting.args]
        return [sys.executable, *self.base, *args]

    def settings(self, which: Sequence[Setting], quick: bool) -> List[Setting]:
        return [s for s in which if not (quick and s.full_only)]

    def multi_argv(self, verb: str, rundir: Path) -> List[str]:
        """``<system> multi start|stopwait w1..w4`` with pid and log files in ``rundir``."""
        argv = [sys.executable, "-m", str(self.multi), "multi", verb, *NODES,
                f"--pidfile={rundir}/%n.pid"]
        if verb == "start":
            argv += ["-A", self.app, "-c", "2", f"--logfile={rundir}/%n%I.log"]
        return argv


_SOLO = Setting("solo", ("-P", "solo"))
_THREADS = Setting("threads4", ("-P", "threads", "-c", "4"))
_PREFORK = Setting("prefork2", ("-P", "prefork", "-c", "2"))
_SOLO_FULL = dataclasses.replace(_SOLO, full_only=True)
# the reference for a pool of two processes: two solo nodes on the same queue
_TWO_SOLO = Setting("2x-solo", ("-P", "solo", "-n", "solo{i}@%h"), procs=2, full_only=True,
                    note="two solo nodes (reference for prefork2)")
_BARE = ("--without-gossip", "--without-mingle", "--without-heartbeat")
_GEVENT = Setting("gevent1000", ("-P", "gevent", "-c", "1000"), task="sleep_count",
                  note="time.sleep")
_ASYNCIO = Setting("asyncio1000", ("-P", "asyncio", "-c", "1000"), task="asleep_count",
                   note="await asyncio.sleep")

MULTIQ = System(
    "multiq", "multiq", ("-m", "multiq", "-A", "bench.apps.mq_app", "worker", "-l", "WARNING"),
    drain=(_SOLO, _THREADS, _PREFORK, _TWO_SOLO),
    node=(_SOLO, _PREFORK, dataclasses.replace(_ASYNCIO, full_only=True),
          dataclasses.replace(_GEVENT, full_only=True)),
    canvas=(_PREFORK, _SOLO_FULL), multi="multiq", app="bench.apps.mq_app",
    io=(_ASYNCIO, _GEVENT), stamped_results=True,
)

CELERY = System(
    "celery", "celery", ("-m", "celery", "-A", "bench.apps.celery_app", "worker",
                         "-l", "WARNING"),
    drain=(_SOLO, _THREADS, _PREFORK),
    node=(_SOLO, _PREFORK,
          Setting("prefork2-bare", (*_PREFORK.args, *_BARE), match="prefork2",
                  note="--without-gossip/mingle/heartbeat", full_only=True),
          dataclasses.replace(_GEVENT, full_only=True)),
    canvas=(_PREFORK, _SOLO_FULL), multi="celery", app="bench.apps.celery_app",
    io=(dataclasses.replace(_GEVENT, also=(("gevent1000 (same runs)", "asyncio1000"),)),),
    stamped_results=True,
)

_RQ_SIMPLE = ("-q", "-u", "{broker}", "-w", "rq.SimpleWorker", "bench")
_RQ_SOLO = Setting("solo", ("worker", *_RQ_SIMPLE), note="SimpleWorker", n_div=4)
_RQ_POOL = Setting("prefork2", ("worker-pool", "-n", "2", *_RQ_SIMPLE),
                   note="worker-pool -n 2 SimpleWorker", n_div=4)
_RQ_FORK = Setting("fork", ("worker", "-q", "-u", "{broker}", "bench"),
                   note="default Worker: forks per job", match="solo", n_div=10,
                   full_only=True)

RQ = System(
    "rq", "rq", ("-m", "rq.cli"),
    drain=(_RQ_SOLO, _RQ_POOL, _RQ_FORK), node=(_RQ_SOLO, _RQ_POOL, _RQ_FORK), results_db=1,
)

_DQ = ("bench.apps.dramatiq_app",)
DRAMATIQ = System(
    "dramatiq", "dramatiq", ("-m", "dramatiq"),
    drain=(Setting("solo", (*_DQ, "-p", "1", "-t", "1")),
           Setting("threads4", (*_DQ, "-p", "1", "-t", "4")),
           Setting("prefork2", (*_DQ, "-p", "2", "-t", "1")),
           Setting("p2-t8", (*_DQ, "-p", "2", "-t", "8"), note="its default",
                   match="prefork2", full_only=True)),
    node=(Setting("solo", (*_DQ, "-p", "1", "-t", "1")),
          Setting("prefork2", (*_DQ, "-p", "2", "-t", "1"))),
)

SYSTEMS: Dict[str, System] = {s.name: s for s in (MULTIQ, CELERY, RQ, DRAMATIQ)}


def baseline(root: Path) -> System:
    """multiq as another checkout at ``root`` has it, measured beside this one as
    ``multiq-base`` (every ratio on its rows is this checkout's median over its)."""
    return dataclasses.replace(MULTIQ, name="multiq-base", root=str(root.resolve()),
                               client="multiq")
