"""Taking back a job queued in a prefork child (``multiq.pools.gate``): across a real fork,
either the child starts it or the parent takes it back, never both, never neither."""
from __future__ import annotations

import os
import socket
import time

import pytest

from multiq.pools.gate import Gate


def test_the_parent_takes_back_only_what_has_not_started() -> None:
    gate = Gate()
    assert gate.enter(1) and gate.enter(2)  # the child started jobs 1 and 2
    assert gate.withdraw(next_number=4) == 2  # job 3 (sent, not started) is taken back
    assert not gate.enter(3)
    assert gate.enter(4)  # jobs sent afterwards run
    assert gate.started == 4
    gate.close()


@pytest.mark.timeout(30)
def test_a_child_and_its_parent_racing_for_each_job_never_both_win() -> None:
    rounds = 2000
    gate = Gate()
    parent_end, child_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child: try to start job k as soon as told, report whether it did
        try:
            parent_end.close()
            for k in range(1, rounds + 1):
                assert child_end.recv(1) == b"g"
                child_end.sendall(b"1" if gate.enter(k) else b"0")
        finally:
            os._exit(0)
    child_end.close()
    started_by_child = taken_back = 0
    for k in range(1, rounds + 1):
        parent_end.sendall(b"g")
        if k % 2:  # every other round the parent tries to take job k back, a little later
            until = time.perf_counter() + (k % 11) * 25e-6  # each time a different moment
            while time.perf_counter() < until:
                pass
            started = gate.withdraw(next_number=k + 1)
            assert started is not None
            won = started < k
        else:
            won = False
        entered = parent_end.recv(1) == b"1"
        assert entered != won, f"job {k}: child started it {entered}, taken back {won}"
        started_by_child += entered
        taken_back += won
    os.waitpid(pid, 0)
    assert started_by_child + taken_back == rounds
    assert started_by_child >= rounds // 2  # the rounds nobody took back all ran
    parent_end.close()
    gate.close()
