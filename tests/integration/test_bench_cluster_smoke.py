"""Smoke run of ``python -m bench.cluster``: tiny N, one run, solo; never checks timings."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_bench_cluster_smoke(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cluster", "--quick", "-n", "200", "--runs", "1",
         "--pools", "solo", "--json", str(out)],
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=160)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # it stops the servers it started, then exits
        stdout, stderr = proc.communicate(timeout=15)
        pytest.fail(f"bench.cluster timed out\nstdout:\n{stdout[-3000:]}\n"
                    f"stderr:\n{stderr[-3000:]}")
    assert proc.returncode == 0, f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    for topology in ("single", "cluster"):
        assert f"run 1: {topology}" in stdout, stdout
    assert "cluster/single" in stdout
    assert out.exists()
