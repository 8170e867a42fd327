"""Prometheus metrics kept by the nodes in Redis (issue 21): two real nodes (one prefork)
run a known set of tasks on two queues, ``multiq metrics`` serves exact counts, and after
one node is killed and the exporter restarted the counts are the same while the dead node
leaves ``multiq_worker_up`` once its liveness key expires."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import free_port, wait_until  # noqa: E402
from sysq_support import APPS, WORKER_ENV  # noqa: E402

from multiq.metrics import scrape  # noqa: E402
from multiq.patching import _installed  # noqa: E402

pytestmark = pytest.mark.system

OK_ALPHA, FLAKY_ALPHA, OK_BETA, FAIL_BETA = 5, 2, 4, 3
T = "sysq_metrics.{}".format
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Dict[str, List[tuple]]:
    """Samples by metric name: (labels as a dict, value)."""
    out: Dict[str, List[tuple]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def value(samples: Dict[str, List[tuple]], metric: str, /, **labels: str) -> float:
    found = [v for ls, v in samples.get(metric, []) if all(ls.get(k) == x
                                                            for k, x in labels.items())]
    assert len(found) == 1, f"{metric}{labels}: {found}"
    return found[0]


def hosts_up(samples: Dict[str, List[tuple]]) -> List[str]:
    return sorted(ls["hostname"] for ls, v in samples.get("multiq_worker_up", []) if v == 1)


class Exporter:
    """``multiq metrics`` as a subprocess on a free port."""

    def __init__(self, tracker, env, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "multiq", "-A", "sysq_metrics", "metrics",
             "--port", str(self.port), *args],
            cwd=str(APPS), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        tracker.track(self.proc)
        wait_until(self._up, timeout=15, message="the exporter did not answer")

    def _up(self) -> bool:
        try:
            self.get("/")
            return True
        except OSError:
            assert self.proc.poll() is None, self.proc.stdout.read().decode()  # type: ignore
            return False

    def get(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            assert r.status == 200
            return r.read().decode()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        return out.decode()


@pytest.fixture
def env(worker_env):
    paths = [str(APPS), str(HERE.parent.parent), worker_env.get("PYTHONPATH", "")]
    return {**worker_env, **WORKER_ENV, "PYTHONPATH": ":".join(p for p in paths if p)}


def _run_known_tasks(client) -> None:
    results = [client.send_task(T("ok"), (i,), queue="alpha") for i in range(OK_ALPHA)]
    results += [client.send_task(T("flaky"), queue="alpha") for _ in range(FLAKY_ALPHA)]
    results += [client.send_task(T("ok"), (i,), queue="beta") for i in range(OK_BETA)]
    failures = [client.send_task(T("fail"), queue="beta") for _ in range(FAIL_BETA)]
    for r in results:
        r.get(timeout=20)
    for r in failures:
        with pytest.raises(ValueError):
            r.get(timeout=20)


@pytest.mark.timeout(60)
def test_counts_are_exact_across_nodes_and_exporter_restarts(
        make_app, start_worker, process_tracker, env, redis_url):
    solo = start_worker("sysq_metrics", "-Q", "alpha", cwd=APPS, pool="solo",
                        hostname="alpha-node@%h", env=WORKER_ENV)
    prefork = start_worker("sysq_metrics", "-Q", "beta", "-c", "2", cwd=APPS,
                           pool="prefork", hostname="beta-node@%h", env=WORKER_ENV)
    client = make_app("sysq_metrics_client")
    _run_known_tasks(client)
    client.send_task(T("ok"), (0,), queue="idle", priority=5)  # nobody consumes "idle"
    client.send_task(T("ok"), (0,), queue="idle", countdown=600)

    exporter = Exporter(process_tracker, env)
    first = parse(exporter.get())
    expected = {("ok", "SUCCESS", "alpha"): OK_ALPHA, ("flaky", "RETRY", "alpha"): FLAKY_ALPHA,
                ("flaky", "SUCCESS", "alpha"): FLAKY_ALPHA, ("ok", "SUCCESS", "beta"): OK_BETA,
                ("fail", "FAILURE", "beta"): FAIL_BETA}
    got = {(ls["name"].split(".")[-1], ls["state"], ls["queue"]): v
           for ls, v in first["multiq_tasks_total"]}
    assert got == expected
    # every run is in its histograms: twice for a task that retried once
    assert value(first, "multiq_task_runtime_seconds_count", name=T("ok"),
                 queue="beta") == OK_BETA
    assert value(first, "multiq_task_runtime_seconds_count", name=T("flaky"),
                 queue="alpha") == 2 * FLAKY_ALPHA
    assert value(first, "multiq_task_queue_wait_seconds_count", name=T("fail"),
                 queue="beta") == FAIL_BETA
    assert value(first, "multiq_task_runtime_seconds_bucket", name=T("ok"), queue="alpha",
                 le="+Inf") == OK_ALPHA
    assert value(first, "multiq_queue_length", queue="idle", band="5") == 1
    assert value(first, "multiq_queue_length", queue="idle", band="0") == 0
    assert value(first, "multiq_queue_delayed", queue="idle") == 1
    assert value(first, "multiq_queue_length", queue="alpha", band="0") == 0
    assert value(first, "multiq_queue_reserved", queue="beta") == 0
    hosts = hosts_up(first)
    assert len(hosts) == 2 and hosts[0].startswith("alpha-node@") \
        and hosts[1].startswith("beta-node@")
    assert value(first, "multiq_workers", state="ready") == 2
    assert value(first, "multiq_worker_active_tasks", hostname=hosts[1]) == 0

    celery = parse(scrape(client, "celery"))  # celery-exporter's names, same counts
    assert value(celery, "celery_task_succeeded_total", name=T("ok"),
                 queue_name="alpha") == OK_ALPHA
    assert value(celery, "celery_task_failed_total", name=T("fail"),
                 queue_name="beta") == FAIL_BETA
    assert value(celery, "celery_queue_length", queue_name="idle") == 1
    assert value(celery, "celery_worker_up", hostname=hosts[0]) == 1

    prefork.stop(signal.SIGKILL)  # no clean stop: its liveness key has to expire
    assert "Serving metrics of" in exporter.stop()
    exporter = Exporter(process_tracker, env)
    after = parse(exporter.get())
    assert {(ls["name"].split(".")[-1], ls["state"], ls["queue"]): v
            for ls, v in after["multiq_tasks_total"]} == expected
    assert after["multiq_task_runtime_seconds_bucket"] == \
        first["multiq_task_runtime_seconds_bucket"]
    wait_until(lambda: hosts_up(parse(exporter.get())) == hosts[:1], timeout=10,
               message="the killed node is still shown as up")
    assert solo.alive
    exporter.stop()


@pytest.mark.timeout(40)
def test_without_metrics_writes_nothing(make_app, start_worker, redis_client):
    start_worker("sysq_metrics", "-Q", "alpha", "-c", "1", "--without-metrics", cwd=APPS,
                 pool="prefork", env=WORKER_ENV)
    client = make_app("sysq_metrics_client")
    results = [client.send_task(T("ok"), (i,), queue="alpha") for i in range(3)]
    assert [r.get(timeout=20) for r in results] == [0, 1, 2]
    assert redis_client.keys("multiq:metrics:*") == []
    assert "multiq_tasks_total{" not in scrape(client)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_broken_counter_key_costs_only_its_counts(make_app, start_worker, redis_client,
                                                    pool):
    """The counters ride in the acks' transaction (on a solo node, in its next fetch's
    exchange): a key Redis cannot increment any more is warned about, the tasks succeed."""
    redis_client.set("multiq:metrics:wait", "not a hash")
    worker = start_worker("sysq_metrics", "-Q", "alpha", cwd=APPS, pool=pool, env=WORKER_ENV)
    client = make_app("sysq_metrics_client")
    results = [client.send_task(T("ok"), (i,), queue="alpha") for i in range(3)]
    assert [r.get(timeout=20) for r in results] == [0, 1, 2]
    wait_until(lambda: redis_client.hget("multiq:metrics:tasks",
                                         '["sysq_metrics.ok","SUCCESS","alpha"]') == b"3",
               timeout=10, message="the other counters did not count")
    worker.wait_for_log("Could not count outcomes", timeout=10)
    assert "Could not commit" not in worker.log()
    assert not redis_client.exists("multiq:q:{alpha}:deadletter")


@pytest.mark.timeout(40)
@pytest.mark.parametrize("pool", ["threads", "asyncio", "gevent"])
def test_every_pool_counts(make_app, start_worker, pool):
    if pool == "gevent" and not _installed("gevent"):
        pytest.skip("gevent is not installed (pip install 'multiq[gevent]')")
    start_worker("sysq_metrics", "-Q", "alpha", "-c", "4", cwd=APPS, pool=pool,
                 env=WORKER_ENV)
    client = make_app("sysq_metrics_client")
    results = [client.send_task(T(name), (i,), queue="alpha")
               for i in range(3) for name in ("ok", "aok")]
    assert sorted(r.get(timeout=20) for r in results) == [0, 0, 1, 1, 2, 2]
    failures = [client.send_task(T("fail"), queue="alpha") for _ in range(2)]
    for r in failures:
        with pytest.raises(ValueError):
            r.get(timeout=20)
    text = parse(scrape(client))
    for name, state, n in (("ok", "SUCCESS", 3), ("aok", "SUCCESS", 3), ("fail", "FAILURE", 2)):
        assert value(text, "multiq_tasks_total", name=T(name), state=state, queue="alpha") == n
        assert value(text, "multiq_task_runtime_seconds_count", name=T(name),
                     queue="alpha") == n


@pytest.mark.timeout(20)
def test_the_exporter_never_shows_the_broker_password(process_tracker, env):
    """The exporter's first line names the broker with its password masked (no Redis is
    needed to start it: nothing is read before the first scrape)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "multiq", "-A", "sysq_metrics", "-b",
         "redis://user:s3cr3t-pw@127.0.0.1:1/0",
         "metrics", "--port", str(port)],
        cwd=str(APPS), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    process_tracker.track(proc)
    line = proc.stdout.readline().decode()  # type: ignore[union-attr]
    assert line.startswith("Serving metrics of redis://user:**@127.0.0.1:1/0 on "
                           f"http://127.0.0.1:{port}/metrics"), line
    with pytest.raises(urllib.error.HTTPError) as refused:  # Redis is not there: 503
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert refused.value.code == 503
    body = refused.value.read().decode()
    assert "s3cr3t-pw" not in body and body.startswith("Scrape failed")
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=10)
    assert b"s3cr3t-pw" not in rest
