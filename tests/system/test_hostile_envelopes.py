"""SPEC §3 "bad input" / §5 "hostile input" with real workers: an envelope whose fields have
the wrong types, or that is nested too deeply to decode, is refused on its own — FAILURE
result when it has a usable id, dead-letter entry with the reason, an ERROR log line — and
the node goes on, for every pool.

The raw bytes are written straight into the queue's band stream, as a foreign or broken
client would; a normal task sent after them must still run.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]  # sysq_support, sysq_reliable

from helpers import wait_until  # noqa: E402
from sysq_support import (  # noqa: E402
    TASK,
    broker_idle,
    deadletter,
    describe_broker,
    runs,
    start,
    stream,
)

from multiq.exceptions import DecodeError  # noqa: E402

pytestmark = pytest.mark.system

DEPTH = 100_000


def _raw(kind: str, **fields: object) -> bytes:
    env = {"v": 1, "id": f"hostile-{kind}", "task": TASK("record"), "queue": "multiq",
           "retries": 0, "sent": time.time(), "args": [kind], "kwargs": {}}
    env.update(fields)
    return json.dumps(env).encode()


def _nested() -> bytes:
    head = json.dumps({"v": 1, "id": "hostile-nested", "task": TASK("record"),
                       "queue": "multiq", "retries": 0, "sent": time.time()})
    return (head[:-1] + ', "args": ' + "[" * DEPTH + "]" * DEPTH + "}").encode()


# kind -> (raw envelope, the field its refusal names; None: the id is not usable)
HOSTILE = {
    "expires-str": (_raw("expires-str", expires="tomorrow"), "expires"),
    "options-list": (_raw("options-list", options=["link"]), "options"),
    "timelimit-number": (_raw("timelimit-number", options={"timelimit": 5}),
                         "options.timelimit"),
    "headers-str": (_raw("headers-str", headers="origin"), "headers"),
    "kwargs-list": (_raw("kwargs-list", kwargs=[1, 2]), "kwargs"),
    "priority-str": (_raw("priority-str", priority="high"), "priority"),
    "retries-negative": (_raw("retries-negative", retries=-1), "retries"),
    "task-int": (_raw("task-int", task=7), "task"),
    "task-missing": (json.dumps({"v": 1, "id": "hostile-task-missing", "args": []}).encode(),
                     "task"),
    "args-object": (_raw("args-object", args={"a": 1}), "args"),
    "id-number": (_raw("id-number", id=12345), None),
    "nested": (_nested(), None),
}


@pytest.fixture
def client(make_app):
    return make_app("sysq_client")


def _deadletters(broker):
    return {fields[b"m"]: fields[b"reason"].decode()
            for _, fields in broker.xrange(deadletter("multiq"))}


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
@pytest.mark.timeout(90)
def test_hostile_envelopes_are_refused_one_by_one_and_the_node_goes_on(
        start_worker, client, rec, redis_client, pool):
    w = start(start_worker, "-c", "2", pool=pool, hostname=f"hostile-{pool}@%h")
    entries = {kind: redis_client.xadd(stream("multiq", 0), {"m": raw, "n": 0}).decode()
               for kind, (raw, _) in HOSTILE.items()}
    ok = client.send_task(TASK("record"), args=["ok"])

    assert ok.get(timeout=30) is not None
    wait_until(lambda: len(_deadletters(redis_client)) >= len(HOSTILE), timeout=30,
               message=f"dead letters: {list(_deadletters(redis_client).values())}")
    assert w.alive, w.log()
    assert runs(rec) == ["ok"]  # none of the hostile ones ran
    dead = _deadletters(redis_client)
    log = w.log()
    for kind, (raw, field) in HOSTILE.items():
        assert raw in dead, f"{kind} was not dead-lettered"
        assert re.search(r"decod|nested", dead[raw], re.I), (kind, dead[raw])
        errors = [line for line in log.splitlines()
                  if entries[kind] in line and re.search(r"\bERROR\b", line)]
        assert errors, f"no ERROR line names the entry {entries[kind]} of {kind}:\n{log}"
        if field is None:
            continue
        assert f"hostile-{kind}" in errors[0], errors
        r = client.AsyncResult(f"hostile-{kind}")
        r.get(timeout=10, propagate=False)
        assert r.status == "FAILURE", (kind, r.status)
        assert isinstance(r.result, DecodeError), (kind, repr(r.result))  # not WorkerLost
        assert f"{field} must be" in str(r.result), (kind, str(r.result))
        assert field in dead[raw], (kind, dead[raw])
    wait_until(lambda: broker_idle(redis_client), timeout=15,
               message=describe_broker(redis_client))
    after = client.send_task(TASK("record"), args=["after"])
    assert after.get(timeout=30) is not None
    assert w.alive
