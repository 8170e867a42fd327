"""``multiq multi restart`` end to end (SPEC §4, reference §1.9): one node at a time, so at
least one node runs at every moment; new pids afterwards; a bare ``restart NODES`` reuses
the options the nodes were started with.

Nodes run apps/sysq_multi.py; see apps/sysq_multi_support.py for how commands are run.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_multi_support import APP, TASK, Multi, alive, children, full, tree  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture
def multi(tmp_path, worker_env, process_tracker):
    return Multi(tmp_path, worker_env, process_tracker)


@pytest.fixture
def client(make_app):
    return make_app("sysq_multi_client")


class LiveNodes(threading.Thread):
    """Counts, as often as it can, the nodes whose pid file names a live process."""

    def __init__(self, multi, names):
        super().__init__(daemon=True)
        self.multi, self.names = multi, names
        self.samples = []
        self.done = threading.Event()

    def count(self):
        pids = [self.multi.pid(name) for name in self.names]
        return sum(1 for pid in pids if pid is not None and alive(pid))

    def run(self):
        while not self.done.is_set():
            self.samples.append((time.monotonic(), self.count()))
            self.done.wait(0.005)

    def stop(self):
        self.done.set()
        self.join(timeout=5)
        return [n for _, n in self.samples]


def _index(text, line):
    at = text.find(line)
    assert at >= 0, f"{line!r} not in:\n{text}"
    return at


@pytest.mark.timeout(90)
def test_restart_is_rolling_and_gives_new_pids(multi, client):
    names = ["w1", "w2"]
    run = multi("start", *names, "-A", APP, "-c", "2")
    assert run.returncode == 0, run
    before = {n: multi.pid(n) for n in names}
    old_trees = {n: tree(pid) for n, pid in before.items()}

    watch = LiveNodes(multi, names)
    watch.start()
    wait_until(lambda: len(watch.samples) > 0, timeout=5)
    restart = multi("restart", *names, "-A", APP, "-c", "2")
    counts = watch.stop()

    assert restart.returncode == 0, restart
    after = {n: multi.pid(n) for n in names}
    for name in names:
        assert after[name] is not None and alive(after[name]), (name, restart)
        assert after[name] != before[name], (name, before, after)
        assert not any(alive(p) for p in old_trees[name]), (name, old_trees[name])
        assert len(children(after[name])) == 2
    assert len(counts) > 20, counts
    assert min(counts) >= 1, "there was a moment with no node running during the restart"
    out = restart.stdout
    order = [
        _index(out, f"> {full('w1')}: TERM -> {before['w1']}"),
        _index(out, f"> {full('w1')}: restarted: OK"),
        _index(out, f"> {full('w2')}: TERM -> {before['w2']}"),
        _index(out, f"> {full('w2')}: restarted: OK"),
    ]
    assert order == sorted(order), out
    # both new nodes consume
    results = [client.send_task(TASK("where")) for _ in range(4)]
    assert {r.get(timeout=10) for r in results} <= {full("w1"), full("w2")}


def _bare_restart_keeps_options(multi):
    run = multi("start", "w1", "-A", APP, "-c", "3")
    assert run.returncode == 0, run
    before = multi.pid("w1")
    assert len(children(before)) == 3

    restart = multi("restart", "w1")  # node names only
    assert restart.returncode == 0, restart
    assert f"> {full('w1')}: restarted: OK" in restart.stdout, restart
    after = multi.pid("w1")
    assert after is not None and after != before and alive(after), restart
    assert len(children(after)) == 3, tree(after)


@pytest.mark.timeout(90)
def test_bare_restart_reuses_start_options_with_urls_in_environment(multi):
    _bare_restart_keeps_options(multi)


@pytest.mark.timeout(90)
def test_bare_restart_reuses_start_options(tmp_path, worker_env, process_tracker):
    env = dict(worker_env)  # the app gets its URLs without multiq's own variables
    env["SYSQ_MULTI_BROKER"] = env.pop("MULTIQ_BROKER_URL")
    env["SYSQ_MULTI_BACKEND"] = env.pop("MULTIQ_RESULT_BACKEND")
    _bare_restart_keeps_options(Multi(tmp_path, env, process_tracker))


@pytest.mark.timeout(90)
def test_restart_stops_at_a_node_that_does_not_come_back(multi):
    run = multi("start", "w1", "w2", "-A", APP, "-c", "1")
    assert run.returncode == 0, run
    w2 = multi.pid("w2")

    restart = multi("restart", "w1", "w2", "-A", "no_such_module", "-c", "1")
    assert restart.returncode != 0, restart
    assert f"> {full('w1')}: FAILED" in restart.stdout, restart
    assert multi.pid("w2") == w2 and alive(w2), \
        f"w2 was stopped although w1 did not come back:\n{restart}"
