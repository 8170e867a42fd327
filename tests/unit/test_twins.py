"""A starting node's look for another live node of its name (``multiq.worker.twins``)."""
from __future__ import annotations

import os
import subprocess
import sys

from multiq.worker.twins import twins

HOST = "w1@box"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_another_live_process_of_the_same_name_is_a_twin() -> None:
    other = os.getppid()  # alive, and not this process
    nodes = {"me": {"hostname": HOST, "pid": os.getpid()},
             "old": {"hostname": HOST, "pid": other},
             "w2": {"hostname": "w2@box", "pid": other}}
    assert twins(nodes, HOST, "me", machine="box") == [{"hostname": HOST, "pid": other}]


def test_records_of_this_process_or_of_a_dead_one_are_not_twins() -> None:
    nodes = {"before-exec": {"hostname": HOST, "pid": os.getpid()},
             "killed": {"hostname": HOST, "pid": _dead_pid()}}
    assert twins(nodes, HOST, "me", machine="box") == []


def test_on_another_machine_the_pid_says_nothing() -> None:
    nodes = {"there": {"hostname": "w1@elsewhere", "pid": _dead_pid()}}
    assert len(twins(nodes, "w1@elsewhere", "me", machine="box")) == 1
