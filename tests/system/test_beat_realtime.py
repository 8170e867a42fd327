"""Beat in real time with real processes: ``multiq -A sysq_beat beat`` sending a 1 s
interval entry to a ``sysq_beat`` worker, and ``worker -B`` embedding beat.

What the processes did is recorded in db 3 (see apps/sysq_beat.py): ``sent`` in the process
that published (with its pid), ``runs`` in the worker, ``beat_init`` per beat started.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_beat_support import (  # noqa: E402
    LEADS,
    SENDING,
    beat_env,
    gaps,
    records,
    sending_lines,
    start_beat,
    start_beat_worker,
    times,
)

pytestmark = pytest.mark.system

LOCK = "multiq:beat:lock"


@pytest.fixture
def env(worker_env):
    return beat_env(worker_env)


@pytest.mark.timeout(40)
def test_interval_1s_runs_about_once_a_second_on_a_real_worker(
        start_worker, env, rec, redis_client, tmp_path, process_tracker):
    start_beat_worker(start_worker)
    beat = start_beat(process_tracker, env, tmp_path, wait=LEADS)
    began = time.time()
    time.sleep(5)  # the test is about elapsed time: about five runs in five seconds
    in_window = [t for t in times(rec, "runs") if began <= t <= began + 5]
    assert 3 <= len(in_window) <= 6, in_window

    assert beat.stop(signal.SIGTERM, timeout=10) == 0
    assert redis_client.exists(LOCK) == 0, "the lease was not released on TERM"
    sent = records(rec, "sent")
    assert {pid for _t, pid in sent} == {beat.pid}
    assert all(0.9 <= g <= 1.3 for g in gaps([t for t, _pid in sent])), gaps(
        [t for t, _pid in sent])
    wait_until(lambda: len(records(rec, "runs")) == len(sent), timeout=5,
               message=f"runs {times(rec, 'runs')} != sent {sent}")

    log = beat.log()
    assert "multiq beat v" in log and ". maxinterval -> 1 seconds" in log, log
    assert ". entries -> 1" in log, log
    assert sending_lines(log) == len(sent), log  # a log line per task sent
    assert [pid for _t, pid in records(rec, "beat_init")] == [beat.pid]


@pytest.mark.timeout(40)
def test_worker_B_embeds_beat_and_two_of_them_send_each_run_once(
        start_worker, rec, redis_client):
    w1 = start_beat_worker(start_worker, "-B", hostname="b1@%h")
    w2 = start_beat_worker(start_worker, "-B", hostname="b2@%h")
    wait_until(lambda: len(records(rec, "runs")) >= 4, timeout=15,
               message=f"no runs without a beat process: {records(rec, 'runs')}\n"
                       f"{w1.log()[-2000:]}")

    sent = records(rec, "sent")
    senders = {pid for _t, pid in sent}
    assert len(senders) == 1 and senders <= {w1.pid, w2.pid}, (sent, w1.pid, w2.pid)
    leader, other = (w1, w2) if senders == {w1.pid} else (w2, w1)
    assert SENDING in leader.log() and LEADS in leader.log()
    assert SENDING not in other.log() and LEADS not in other.log()
    assert all(g >= 0.9 for g in gaps([t for t, _pid in sent])), gaps([t for t, _pid in sent])
    # each -B node started a beat (and sent beat_init), only one sends
    assert sorted(pid for _t, pid in records(rec, "beat_init")) == sorted([w1.pid, w2.pid])
    for w in (w1, w2):
        assert w.stop(timeout=15) == 0
    assert redis_client.exists(LOCK) == 0


@pytest.mark.timeout(30)
def test_a_periodic_task_added_in_on_after_configure_is_sent(env, rec, tmp_path,
                                                             process_tracker):
    env = dict(env, SYSQ_BEAT_CONFIGURED="1")
    beat = start_beat(process_tracker, env, tmp_path, wait=LEADS)
    wait_until(lambda: len(rec.lrange("sent_echo", 0, -1)) >= 2, timeout=10,
               message=f"beat log:\n{beat.log()[-2000:]}")
    assert all(raw.decode().endswith(f"|{beat.pid}|hi") for raw in rec.lrange("sent_echo", 0, -1))
    assert beat.stop(signal.SIGTERM, timeout=10) == 0
