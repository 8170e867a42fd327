"""The bench's canvas figures: the counting proxy counts round trips, and a tiny
``--only chord,chain,roundtrips`` run fills their rows (never checks the timings)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.proxy import CountingProxy

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(20)
def test_proxy_counts_one_burst_per_command_or_pipeline(redis_server: Any,
                                                        redis_url: str) -> None:
    proxy = CountingProxy((redis_server.host, redis_server.port))
    proxy.start()
    try:
        client = redis.Redis(host="127.0.0.1", port=proxy.port, db=1)
        client.ping()  # connection set-up and this: not counted below
        start = time.time()
        for _ in range(3):
            client.set("bench:proxy", "x")
        pipe = client.pipeline(transaction=False)
        for _ in range(50):
            pipe.incr("bench:proxy:n")
        pipe.execute()
        client.delete("bench:proxy", "bench:proxy:n")
        assert proxy.bursts(start, time.time()) == {"db1": 5}
        other = redis.Redis(host="127.0.0.1", port=proxy.port, db=2)
        other.ping()
        start = time.time()
        assert other.get("bench:proxy") is None
        assert proxy.bursts(start, time.time()) == {"db1": 0, "db2": 1}
        assert proxy.connections() == 2
        client.close()
        other.close()
    finally:
        proxy.stop()


@pytest.mark.timeout(90)
def test_bench_canvas_smoke(tmp_path: Path) -> None:
    systems = ["multiq"] + (["celery"] if importlib.util.find_spec("celery") else [])
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--chord-size", "20", "--chain-length", "5",
         "--systems", ",".join(systems), "--only", "chord,chain,roundtrips",
         "--json", str(out)],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=80,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    data = json.loads(out.read_text())
    rows = {(r["figure"], r["system"], r["setting"]): r for r in data["results"]}
    assert {f for f, _, _ in rows} == {"chord", "chain", "roundtrips"}
    for system in systems:
        for figure in ("chord", "chain"):
            row = rows[(figure, system, "prefork2")]
            assert not row["errors"] and row["median"] > 0 and row["runs"] == 1, row
        trips = rows[("roundtrips", system, "prefork2")]
        assert not trips["errors"] and trips["n"] == 20, trips
    assert data["meta"]["chord_size"] == 20 and data["meta"]["chain_length"] == 5
    if "celery" in systems:
        assert rows[("chord", "celery", "prefork2")]["multiq_over_peer"] > 0
