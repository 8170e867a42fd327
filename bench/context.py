"""Options and the shared state of one bench run: Redis, processes, env, results, progress."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.procs import Procs
from bench.redisserver import RedisServer
from bench.results import Results
from bench.systems import System

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_DB, BACKEND_DB, COUNTER_DB = 1, 2, 0
MEASURES = ("enqueue", "drain", "latency", "startup", "memory", "multi", "chord", "chain",
            "roundtrips", "io", "metrics")


@dataclass
class Options:
    systems: List[str]
    only: List[str] = field(default_factory=lambda: list(MEASURES))
    runs: int = 3
    n: int = 20_000
    latency_samples: int = 1_000
    settle: float = 2.0
    chord_size: int = 1_000  # header tasks of the chord (and the roundtrips group)
    chain_length: int = 100
    io_n: int = 10_000  # half-second tasks of the ``io`` figure
    metric_queues: int = 100  # queues the ``metrics`` figure's scrape reads
    stop_grace: float = 1.0  # after a measurement: TERM, this long, then KILL the tree
    quick: bool = False
    quiet: bool = False
    json_path: Optional[Path] = None
    baseline: Optional[Path] = None  # another checkout, measured as ``multiq-base``


def compile_sources(*roots: Path) -> None:
    """Byte-compile multiq and the bench apps, as installing a package does: from a checkout
    under ``PYTHONDONTWRITEBYTECODE`` every worker would compile them again at start-up
    (tens of ms), while the peers' installed packages come compiled."""
    import compileall

    for root in (REPO_ROOT, *roots):
        for package in ("multiq", "bench"):
            compileall.compile_dir(str(root / package), quiet=2)


class Bench:
    """What every measurement needs; ``close()`` stops everything it started."""

    def __init__(self, opts: Options, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.procs = Procs()
        self.redis = RedisServer(workdir)
        self.results = Results()
        self.notes: List[str] = []
        self._counter = 0
        self._t0 = time.monotonic()

    def start(self) -> None:
        compile_sources(*([self.opts.baseline] if self.opts.baseline else []))
        self.redis.start()

    def close(self) -> None:
        try:
            self.procs.cleanup()
        finally:
            self.redis.stop()

    def say(self, text: str) -> None:
        if not self.opts.quiet:
            elapsed = time.monotonic() - self._t0
            print(f"bench [{elapsed:6.1f}s] {text}", file=sys.stderr, flush=True)

    def path(self, stem: str, suffix: str = ".log") -> Path:
        """A fresh file name in the work dir."""
        self._counter += 1
        return self.workdir / f"{self._counter:03d}-{stem}{suffix}"

    def env(self, system: Optional[System] = None, **extra: Any) -> Dict[str, str]:
        """Environment of every process we start: the system's checkout (this one, unless
        it names another) importable first, our Redis URLs."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (self.root(system), env.get("PYTHONPATH", "")) if p)
        env.update(BENCH_BROKER_URL=self.redis.url(BROKER_DB),
                   BENCH_BACKEND_URL=self.redis.url(BACKEND_DB),
                   BENCH_COUNTER_URL=self.redis.url(COUNTER_DB))
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def root(self, system: Optional[System]) -> str:
        """The checkout a system's processes run from: ``python -m`` puts the working
        directory first on ``sys.path``, ahead of ``PYTHONPATH`` and any installed copy."""
        return (system.root if system is not None and system.root else None) or str(REPO_ROOT)

    def producer(self, system: System, action: str, *args: str,
                 timeout: float = 600.0) -> Dict[str, Any]:
        """Run ``python -m bench.producer`` and return its JSON answer."""
        out = self.procs.run(self.producer_argv(system, action, *args), self.env(system),
                             self.path(f"{system.name}-{action}"), timeout=timeout,
                             cwd=Path(self.root(system)))
        return dict(json.loads(out.strip().splitlines()[-1]))

    def producer_argv(self, system: System, action: str, *args: str) -> List[str]:
        return [sys.executable, "-m", "bench.producer", system.client_name, action, *args]

    def read_keys(self, path: Path) -> List[str]:
        return [line for line in path.read_text().splitlines() if line]

    def flush(self) -> None:
        self.redis.flushall()

