"""Tasks for the system tests of remote control and events (tests/system/test_control_*.py).

Tasks that a test watches record themselves in db 3 of the broker's Redis server
(``RECORD_DB``): ``RPUSH runs <tag>:<what>:<pid>:<time>``. The node gets its URLs from
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``.

The settings include a plain marker (``sysq_marker``) and secret-looking ones
(``sysq_api_token``, a nested ``password``), so ``inspect conf`` can be checked for masking.
The test process imports nothing from here: it sends the tasks by name.
"""
from __future__ import annotations

import os
import time
import warnings

from sysq_recorder import recorder

from multiq import MultiQ
from multiq.exceptions import SoftTimeLimitExceeded

RUNS = "runs"
SECRET = "hunter2-sysq"

with warnings.catch_warnings():  # the sysq_* settings are unknown to multiq on purpose
    warnings.simplefilter("ignore")
    app = MultiQ(
        "sysq_control",
        broker=os.environ.get("MULTIQ_BROKER_URL"),
        backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
        result_extended=True,
        sysq_marker="control-app",
        sysq_api_token=SECRET,
        result_backend_transport_options={"password": SECRET},
    )






def note(tag: str, what: str) -> None:
    recorder().rpush(RUNS, f"{tag}:{what}:{os.getpid()}:{time.time():.6f}")


@app.task
def record(tag):
    """Records ``<tag>:run``; returns the pid that ran it."""
    note(tag, "run")
    return os.getpid()


@app.task(acks_late=True)
def late_record(tag):
    """``record`` with ``acks_late``."""
    note(tag, "run")
    return os.getpid()


@app.task(rate_limit="100/m")
def limited(tag):
    """Has a rate limit of its own (for ``registered --include rate_limit``)."""
    note(tag, "run")
    return tag


@app.task
def nap(tag, seconds):
    """Records ``start``, sleeps, records ``end``; returns the pid."""
    note(tag, "start")
    time.sleep(seconds)
    note(tag, "end")
    return os.getpid()


@app.task
def soft_nap(tag, seconds):
    """Returns "soft" when the soft time limit interrupts its sleep."""
    note(tag, "start")
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        note(tag, "soft")
        return "soft"
    return "slept"


@app.task
def stubborn(tag, seconds):
    """Swallows the soft time limit and sleeps on, so only the hard limit can stop it."""
    note(tag, "start")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(max(0.0, end - time.monotonic()))
        except SoftTimeLimitExceeded:
            note(tag, "soft")
    note(tag, "end")
    return "slept"


class SysqControlBoom(Exception):
    """Raised by ``boom``."""


@app.task
def boom(message):
    raise SysqControlBoom(message)


# -- remote-control commands of the app's own (test_control_commands.py) -----------------

from multiq.worker.control import control_command, inspect_command  # noqa: E402

TOKENS = {"n": 0}


@control_command(args=[("n", int)], signature="[N=1]")
def add_tokens(node, n=1):
    """Add N tokens to this node's bucket."""
    TOKENS["n"] += n
    return {"ok": f"{TOKENS['n']} tokens at {node.hostname}"}


@inspect_command(variadic="names", alias="token_count")
def tokens(node, names=()):
    """How many tokens this node holds."""
    return {"tokens": TOKENS["n"], "names": list(names), "queues": node.current_queues()}


@control_command()
def explode(node):
    raise RuntimeError("boom from a custom command")
