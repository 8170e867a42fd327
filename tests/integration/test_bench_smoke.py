"""Smoke run of ``python -m bench``: tiny N, one run; checks the JSON, never the timings."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)

FIGURES = ("enqueue", "drain", "drain-wall", "noop-drain", "noop-drain-wall",
           "latency-p50", "latency-p99", "startup", "rss", "pss", "multi-start", "multi-ready",
           "multi-stopwait")


@pytest.mark.timeout(240)  # every figure of two systems: about 75 s on an idle box
def test_bench_smoke(tmp_path: Path) -> None:
    systems = ["multiq"] + (["celery"] if importlib.util.find_spec("celery") else [])
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "-n", "50", "--runs", "1", "--latency-samples", "20",
         "--settle", "0.2", "--systems", ",".join(systems), "--json", str(out),
         "--only", "enqueue,drain,latency,startup,memory,multi"],  # canvas: test_bench_canvas
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=220,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "multiq/peer" in proc.stdout
    data = json.loads(out.read_text())
    assert {"meta", "figures", "results", "notes"} <= set(data)
    assert data["meta"]["systems"] == systems and not data["meta"]["interrupted"]
    rows = {(r["figure"], r["system"], r["setting"]): r for r in data["results"]}
    for system in systems:
        for figure in FIGURES:
            found = [r for (f, s, _), r in rows.items() if f == figure and s == system]
            assert found, f"no {figure} row for {system}"
            for r in found:
                assert not r["errors"], r
                if r["na"]:  # no such API (multiq's batch enqueue, for now)
                    continue
                assert r["median"] > 0 and r["min"] > 0 and r["runs"] >= 1, r
                assert set(r) >= {"unit", "samples", "max", "multiq_over_peer", "n"}
        pools = {"solo", "threads4", "prefork2"}
        for figure in ("drain", "noop-drain"):
            drains = {setting for (f, s, setting) in rows if f == figure and s == system}
            assert drains == (pools | {"2x-solo"} if system == "multiq" else pools), figure
    batch = rows[("enqueue", "multiq", "batch")]
    assert batch["median"] is not None or batch["na"]
    if "celery" in systems:
        assert rows[("drain", "celery", "solo")]["multiq_over_peer"] > 0


def test_bench_baseline_runs_the_other_checkout(tmp_path: Path) -> None:
    """``--baseline`` measures another checkout's multiq, its own code, beside this one."""
    import shutil

    base = tmp_path / "base"
    for package in ("multiq", "bench"):
        shutil.copytree(REPO_ROOT / package, base / package,
                        ignore=shutil.ignore_patterns("__pycache__", "results-*.json"))
    marker = tmp_path / "base-imported"
    with open(base / "multiq" / "__init__.py", "a") as fh:  # only the copy leaves a trace
        fh.write("\nimport os as _os\n"
                 "if _os.environ.get('BASE_MARKER'):\n"
                 "    open(_os.environ['BASE_MARKER'], 'a').write(__file__ + '\\n')\n")
    out = tmp_path / "bench.json"
    env = dict(os.environ, BASE_MARKER=str(marker))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "-n", "50", "--runs", "1", "--systems", "multiq",
         "--only", "drain", "--baseline", str(base), "--json", str(out)],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=110,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    rows = {(r["figure"], r["system"], r["setting"]): r
            for r in json.loads(out.read_text())["results"]}
    for setting in ("solo", "threads4", "prefork2"):
        assert rows[("drain", "multiq", setting)]["median"] > 0
        assert rows[("drain", "multiq-base", setting)]["multiq_over_peer"] > 0
    imported = set(marker.read_text().split())
    assert imported == {str(base / "multiq" / "__init__.py")}, imported


def test_bench_io_smoke(tmp_path: Path) -> None:
    """The ``io`` figure: many short sleeps on the green and asyncio pools (and Celery's
    gevent pool, where Celery is installed), one row each, timings never checked."""
    from multiq.worker.config import POOLS

    systems = ["multiq"] + (["celery"] if importlib.util.find_spec("celery") else [])
    out = tmp_path / "bench.json"
    env = dict(os.environ, BENCH_SLEEP="0.05")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--runs", "1", "--io-n", "40", "--systems",
         ",".join(systems), "--only", "io", "--json", str(out)],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=110,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    rows = {(r["system"], r["setting"]): r for r in json.loads(out.read_text())["results"]
            if r["figure"] == "io"}
    wanted = [("multiq", "gevent1000")]
    if "asyncio" in POOLS:
        wanted.append(("multiq", "asyncio1000"))
    if "celery" in systems:
        wanted.append(("celery", "gevent1000"))
    for key in wanted:
        row = rows[key]
        assert not row["errors"] and row["median"] > 0 and row["n"] == 40, row
    if "celery" in systems:
        assert rows[("celery", "gevent1000")]["multiq_over_peer"] > 0


def test_bench_metrics_smoke(tmp_path: Path) -> None:
    """The ``metrics`` figure: a drain with the counters on and one with them off per
    setting, the second row with the on/off ratio, and a scrape of the seeded queues;
    timings never checked."""
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--runs", "1", "-n", "200", "--systems",
         "multiq", "--only", "metrics", "--metric-queues", "10", "--json", str(out)],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=110,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    rows = {(r["figure"], r["system"], r["setting"]): r
            for r in json.loads(out.read_text())["results"]}
    for setting in ("solo", "prefork2"):
        on = rows[("metrics-drain", "multiq", setting)]
        off = rows[("metrics-drain", "multiq-nometrics", setting)]
        assert not on["errors"] and not off["errors"] and on["n"] == off["n"] == 200
        assert off["multiq_over_peer"] > 0
    scrape = rows[("metrics-scrape", "multiq", "scrape")]
    assert not scrape["errors"] and scrape["median"] > 0
    assert scrape["note"].startswith("10 queues")
