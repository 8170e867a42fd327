"""``python -m bench``: parse the options, run, print the table, write the JSON."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench.context import MEASURES, Bench, Options
from bench.report import table, to_json, write_json
from bench.runner import run_all
from bench.systems import SYSTEMS

HERE = Path(__file__).resolve().parent
QUICK_SYSTEMS = ["multiq", "celery"]


def _csv(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> List[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown: {', '.join(bad)} (choose from {', '.join(allowed)})")
        return items
    return parse


def parse(argv: Optional[Sequence[str]] = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="multiq vs Celery 5 (and RQ, Dramatiq where installed) on a private "
                    "redis-server: enqueue, drain, latency, start-up, memory, multi, and "
                    "canvas (chord, chain, roundtrips).")
    p.add_argument("--quick", action="store_true",
                   help="small version (< 1 min): N=1000, 1 run, 200 latency samples, chord "
                        "of 100, chain of 20, canvas on prefork2 only, "
                        "multiq and celery unless --systems says otherwise")
    p.add_argument("--systems", type=_csv(list(SYSTEMS)),
                   help="comma list (default: all installed; --quick: multiq,celery)")
    p.add_argument("--only", type=_csv(MEASURES), default=list(MEASURES),
                   help=f"comma list of {','.join(MEASURES)}")
    p.add_argument("--runs", type=int, help="runs per figure (default 3; --quick 1)")
    p.add_argument("-n", type=int, help="tasks per drain/enqueue (default 20000; --quick 1000)")
    p.add_argument("--latency-samples", type=int,
                   help="round trips per run (default 1000; --quick 200)")
    p.add_argument("--settle", type=float,
                   help="idle seconds before memory (default 2; --quick 0.5)")
    p.add_argument("--chord-size", type=int,
                   help="chord header tasks, also the roundtrips group (default 1000; "
                        "--quick 100)")
    p.add_argument("--chain-length", type=int, help="chain tasks (default 100; --quick 20)")
    p.add_argument("--io-n", type=int,
                   help="half-second tasks of the io figure (default 10000; --quick 1000)")
    p.add_argument("--metric-queues", type=int, default=100,
                   help="queues the metrics figure's scrape reads (default 100)")
    p.add_argument("--json", type=Path, help="default bench/results-<timestamp>.json")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                   help="another multiq checkout (e.g. a git worktree of an earlier commit), "
                        "measured beside this one as multiq-base in the same run")
    a = p.parse_args(argv)
    quick = a.quick
    opts = Options(
        systems=a.systems or (QUICK_SYSTEMS if quick else list(SYSTEMS)), only=a.only,
        quick=quick, quiet=a.quiet, json_path=a.json,
        runs=a.runs or (1 if quick else 3), n=a.n or (1_000 if quick else 20_000),
        latency_samples=a.latency_samples or (200 if quick else 1_000),
        settle=a.settle if a.settle is not None else (0.5 if quick else 2.0),
        chord_size=a.chord_size or (100 if quick else 1_000),
        chain_length=a.chain_length or (20 if quick else 100),
        io_n=a.io_n or (1_000 if quick else 10_000),
        stop_grace=0.2 if quick else 1.0, baseline=a.baseline, metric_queues=a.metric_queues,
    )
    if opts.runs < 1 or opts.n < 2 or opts.latency_samples < 1:
        p.error("--runs, -n and --latency-samples must be positive (-n at least 2)")
    if opts.chord_size < 1 or opts.chain_length < 2:
        p.error("--chord-size must be positive, --chain-length at least 2")
    if opts.baseline is not None and not (opts.baseline / "multiq" / "__init__.py").is_file():
        p.error(f"--baseline {opts.baseline}: not a multiq checkout (no multiq/__init__.py)")
    if opts.baseline is not None and "multiq" not in opts.systems:
        p.error("--baseline needs multiq among --systems")
    return opts


def _meta(bench: Bench, started: float, load: Sequence[float]) -> Dict[str, Any]:
    versions = {name: s.version() for name, s in SYSTEMS.items() if s.installed()}
    try:
        import redis

        versions["redis-py"] = str(redis.__version__)
        versions["redis-server"] = bench.redis.version() if bench.redis.proc else "?"
    except Exception:  # noqa: BLE001 - informative only
        pass
    o = bench.opts
    return {
        "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "duration_s": round(time.time() - started, 1),
        "argv": sys.argv, "quick": o.quick, "runs": o.runs, "n": o.n,
        "latency_samples": o.latency_samples, "settle_s": o.settle,
        "chord_size": o.chord_size, "chain_length": o.chain_length,
        "systems": o.systems, "only": o.only,
        "python": platform.python_version(), "versions": versions,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_start": list(load), "loadavg_end": list(os.getloadavg())},
    }


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = parse(argv)
    started, load = time.time(), os.getloadavg()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = opts.json_path or HERE / f"results-{stamp}.json"
    workdir = Path(tempfile.mkdtemp(prefix="multiq-bench-"))
    bench = Bench(opts, workdir)
    previous = signal.signal(signal.SIGTERM, _sigterm)
    interrupted = False
    try:
        bench.start()
        bench.say(f"redis-server {bench.redis.binary} on port {bench.redis.port}; "
                  f"logs in {workdir}")
        run_all(bench)
    except KeyboardInterrupt:
        interrupted = True
        bench.say("interrupted: stopping what was started")
    finally:
        meta = _meta(bench, started, load)
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        bench.close()
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, previous)
    meta["interrupted"] = interrupted
    failed = any(s.errors for s in bench.results.series.values())
    write_json(json_path, to_json(bench.results, meta, bench.notes))
    print(table(bench.results))
    for note in bench.notes:
        print(f"note: {note}")
    print(f"JSON: {json_path}  ({meta['duration_s']:.0f} s)")
    if failed or interrupted:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 130 if interrupted else (1 if failed else 0)
