"""Several ``multiq beat`` processes at once: one leader sends, the others wait; the leader
killed, another takes over within the lease (5 s); a restarted beat keeps the last-run
times held in Redis.

Sends are recorded with the sending process's pid by ``before_task_publish`` in
apps/sysq_beat.py (db 3, list ``sent``); the worker records ``runs``.
"""
from __future__ import annotations

import os
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
    STARTING,
    beat_env,
    gaps,
    records,
    sending_lines,
    start_beat,
    start_beat_worker,
    times,
)

pytestmark = pytest.mark.system

LEASE = 5.0


@pytest.fixture
def env(worker_env):
    return beat_env(worker_env)


@pytest.mark.timeout(40)
def test_two_beats_send_each_due_run_exactly_once(
        start_worker, env, rec, tmp_path, process_tracker):
    start_beat_worker(start_worker)
    started = time.time()
    a = start_beat(process_tracker, env, tmp_path, wait=LEADS)
    b = start_beat(process_tracker, env, tmp_path, wait=STARTING)
    time.sleep(8)  # the test is about elapsed time: two beats side by side for 8 s

    assert b.alive and a.alive
    assert b.stop(signal.SIGTERM, timeout=10) == 0  # the follower first: a keeps leading
    assert a.stop(signal.SIGTERM, timeout=10) == 0
    elapsed = time.time() - started

    sent = records(rec, "sent")
    assert {pid for _t, pid in sent} == {a.pid}, (sent, a.pid, b.pid)
    sent_times = [t for t, _pid in sent]
    assert all(g >= 0.9 for g in gaps(sent_times)), gaps(sent_times)
    assert elapsed - 3 <= len(sent) <= elapsed + 1, (len(sent), elapsed)
    # the worker ran each sent run once
    wait_until(lambda: len(times(rec, "runs")) >= len(sent), timeout=15)
    assert len(times(rec, "runs")) == len(sent)
    # exactly one beat log has "Sending due task" lines; the other never led
    assert sending_lines(a.log()) == len(sent), a.log()[-1500:]
    assert SENDING not in b.log() and LEADS not in b.log(), b.log()[-1500:]


@pytest.mark.timeout(40)
def test_kill_the_leader_the_other_continues_within_the_lease(
        start_worker, env, rec, tmp_path, process_tracker):
    start_beat_worker(start_worker)
    a = start_beat(process_tracker, env, tmp_path, wait=LEADS)
    b = start_beat(process_tracker, env, tmp_path, wait=STARTING)
    wait_until(lambda: len(records(rec, "sent")) >= 2, timeout=10)

    os.kill(a.pid, signal.SIGKILL)  # no chance to release the lease
    a.wait(timeout=10)
    killed = time.time()
    b.wait_for_log(LEADS, timeout=LEASE + 3)
    took_over = time.time() - killed
    assert took_over <= LEASE + 2, took_over

    def sent_after_kill():
        return [t for t, pid in records(rec, "sent") if t > killed and pid == b.pid]

    wait_until(lambda: len(sent_after_kill()) >= 2, timeout=LEASE + 6,
               message=f"b did not continue: {records(rec, 'sent')}\n{b.log()[-1500:]}")
    first = sent_after_kill()[0]
    assert first - killed <= LEASE + 2, first - killed

    assert b.stop(signal.SIGTERM, timeout=10) == 0
    sent = records(rec, "sent")
    before = [(t, pid) for t, pid in sent if t <= killed]
    after = [(t, pid) for t, pid in sent if t > killed]
    assert {pid for _t, pid in before} == {a.pid}
    assert {pid for _t, pid in after} == {b.pid}
    # the run missed while nobody led is sent once, then the normal pace resumes
    assert all(g >= 0.9 for g in gaps([t for t, _pid in sent])), gaps([t for t, _pid in sent])
    assert sending_lines(b.log()) == len(after), b.log()[-1500:]
    wait_until(lambda: len(times(rec, "runs")) >= len(sent), timeout=15)
    assert len(times(rec, "runs")) == len(sent)


@pytest.mark.timeout(40)
def test_restart_keeps_last_run_times(env, rec, tmp_path, process_tracker):
    """3 s interval: stop the beat right after a run and start a new one at once. The new
    one goes by the last-run time in Redis: its first run is one interval after the old
    one's last (not sent at once, not a whole interval later than due)."""
    env = dict(env, SYSQ_BEAT_EVERY="3")
    a = start_beat(process_tracker, env, tmp_path, wait=LEADS)
    wait_until(lambda: len(records(rec, "sent")) >= 1, timeout=8)
    assert a.stop(signal.SIGTERM, timeout=10) == 0
    b = start_beat(process_tracker, env, tmp_path, wait=LEADS)  # leads at once: released
    b_leads = time.time()
    wait_until(lambda: len(records(rec, "sent")) >= 3, timeout=12,
               message=f"{records(rec, 'sent')}\n{b.log()[-1500:]}")

    sent = records(rec, "sent")
    assert [pid for _t, pid in sent[:3]] == [a.pid, b.pid, b.pid], (sent, a.pid, b.pid)
    (last_a, _), (first_b, _), (second_b, _) = sent[:3]
    if b_leads < last_a + 3:
        # due one interval after the old beat's last run, not at start-up, not an
        # interval after the new beat first looked (which a lost last-run would give)
        assert 2.5 <= first_b - last_a <= 3.6, (last_a, b_leads, first_b)
    else:  # a slow start-up: the run missed meanwhile is sent once, at once
        assert first_b - b_leads <= 1.2, (last_a, b_leads, first_b)
    assert 2.5 <= second_b - first_b <= 3.6, sent
