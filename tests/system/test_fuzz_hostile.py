"""SPEC §3 "Bad input" and §5 "Hostile input", fuzzed: no message, control command or
Redis record stops a live node, and every bad message is accounted for.

One real node per pool kind (``python -m multiq -A sysq_reliable worker``) lives for the
whole test; hypothesis draws batches of hostile input (see ``hostile_inputs.py``) that go
into the queue's band streams, its delayed set (due now), the control channel and the
revoke channel. After each batch:

- the node answers ``inspect ping`` right after the channel garbage, and again at the end;
- every bad stream / delayed message is accounted for: a FAILURE result if it carried a
  str id, else an entry in the queue's dead-letter stream (found by the tag it carries);
- a normal task sent now succeeds, a revoke is still honoured, nothing is left behind
  (pending, ready or delayed), and the node process is alive;
- none of the node's loops (control mailbox, revoke listener, promoter, ...) logged that it
  failed and had to start over: one bad record must cost that record, not the loop.

Shrinking is off: a failing batch is reported as drawn (once a node has died every later
draw fails too, so shrinking would only hide the culprit). ``SYSQ_FUZZ_SEED`` draws
another fixed sequence, ``SYSQ_FUZZ_EXAMPLES`` changes the number of batches.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import tail, wait_until  # noqa: E402
from hostile_inputs import KNOWN_TASK, Bad, Batch, batches, delayed_body, render  # noqa: E402
from sysq_support import (  # noqa: E402
    broker_idle,
    deadletter,
    describe_broker,
    start,
    stream,
)

from multiq.keys import Keys, result_key  # noqa: E402

pytestmark = pytest.mark.system

POOLS = {"solo": (), "threads": ("-c", "2"), "prefork": ("-c", "2")}
EXAMPLES = int(os.environ.get("SYSQ_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("SYSQ_FUZZ_SEED")
ONLY = set(filter(None, os.environ.get("SYSQ_FUZZ_ONLY", "").split(",")))
KEYS = Keys()
TAG = re.compile(rb"fzmark\d+\.")
LOOP_FAILED = re.compile(r"^.*\b\w+ failed; retrying$", re.M)  # Component._run's line


class Fuzzer:
    """Sends batches to one live node and checks what became of them."""

    def __init__(self, worker: Any, node: str, client: Any, broker: Any, results: Any) -> None:
        self.worker, self.node = worker, node
        self.client, self.broker, self.results = client, broker, results
        self._numbers = itertools.count(1)
        self._dead_cursor = "-"
        self.dead_tags: Set[bytes] = set()

    # -- sending -------------------------------------------------------------------------

    def tag(self) -> str:
        return f"fzmark{next(self._numbers)}."

    def publish(self, batch: Batch) -> None:
        for data in batch.control:
            self.broker.publish(KEYS.control, data)
        for data in batch.revoke:
            self.broker.publish(KEYS.revoked_channel, data)

    def send(self, batch: Batch) -> List[Tuple[str, Optional[str], Bad]]:
        """Put the batch's messages in Redis; returns (tag, result id or None, template)."""
        sent = []
        p = self.broker.pipeline(transaction=False)
        for bad in batch.stream:
            tag = self.tag()
            out = render(bad, tag)
            p.xadd(stream("multiq", bad.band), {"m": out.data, "n": 0})
            sent.append((tag, out.result_id, bad))
        due = time.time() - 1
        for bad in batch.delayed:
            tag = self.tag()
            out = render(bad, tag)
            body, garbage_head = delayed_body(bad, out.data)
            p.hset(KEYS.delayed_bodies("multiq"), f"fzd-{tag}", body)
            p.zadd(KEYS.delayed("multiq"), {f"fzd-{tag}": due})
            sent.append((tag, None if garbage_head else out.result_id, bad))
        p.execute()
        return sent

    # -- checking ------------------------------------------------------------------------

    def alive(self) -> None:
        if not self.worker.alive:
            raise AssertionError(f"node {self.node} died (exit {self.worker.proc.returncode})"
                                 f"; log tail:\n{tail(self.worker.log())}")

    def no_loop_failed(self) -> None:
        failed = LOOP_FAILED.findall(self.worker.log())
        assert not failed, f"{self.node}: a loop failed on bad input: {failed[:3]}\n" \
            f"{tail(self.worker.log())}"

    def ping(self, when: str) -> None:
        self.alive()
        replies = self.client.control.inspect(destination=[self.node], timeout=3).ping()
        assert (replies or {}).get(self.node) == {"ok": "pong"}, \
            f"no ping reply {when}: {replies}"

    def _read_dead_letters(self) -> None:
        rows = self.broker.xrange(deadletter("multiq"), min=self._dead_cursor)
        for entry_id, fields in rows:
            self.dead_tags.update(TAG.findall(fields.get(b"m", b"")))
            self._dead_cursor = "(" + entry_id.decode()
        return None

    def _states(self, ids: List[str]) -> Dict[str, Optional[str]]:
        docs = self.results.mget([result_key(i) for i in ids]) if ids else []
        return {i: (json.loads(d).get("status") if d else None) for i, d in zip(ids, docs)}

    def unaccounted(self, sent: List[Tuple[str, Optional[str], Bad]]) -> List[str]:
        self.alive()
        self._read_dead_letters()
        states = self._states([rid for _, rid, _ in sent if rid is not None])
        out = []
        for tag, rid, bad in sent:
            if rid is not None and states[rid] != "FAILURE":
                out.append(f"{tag} result {states[rid]} ({bad.kind}: {bad.value!r:.200})")
            elif rid is None and tag.encode() not in self.dead_tags:
                out.append(f"{tag} not dead-lettered ({bad.kind} head={bad.head!r}: "
                           f"{bad.value!r:.200})")
        return out

    def account(self, sent: List[Tuple[str, Optional[str], Bad]]) -> None:
        missing: List[str] = []

        def done() -> bool:
            missing[:] = self.unaccounted(sent)
            return not missing
        try:
            wait_until(done, timeout=20, interval=0.05)
        except AssertionError:
            self.alive()
            raise AssertionError(f"{len(missing)} bad messages unaccounted for:\n"
                                 + "\n".join(missing)) from None

    def probe_task(self) -> None:
        r = self.client.send_task(KNOWN_TASK, args=["probe"])
        self.alive()
        assert isinstance(r.get(timeout=20), float), r.result

    def probe_revoke(self) -> None:
        """A revoke announced now is honoured: the node lists it, then skips the task."""
        task_id = f"rv-{uuid.uuid4().hex}"
        self.client.control.revoke(task_id)
        inspect = self.client.control.inspect(destination=[self.node], timeout=3)
        wait_until(lambda: task_id in ((inspect.revoked() or {}).get(self.node) or ()),
                   timeout=10, message=f"{self.node} does not list a fresh revoke; "
                   f"revoked replies: {str(inspect.revoked())[:300]}")
        r = self.client.send_task(KNOWN_TASK, args=["revoked"], task_id=task_id)
        wait_until(lambda: r.status == "REVOKED", timeout=10,
                   message=f"revoked task {task_id} ended {r.status}")

    def check(self, batch: Batch) -> None:
        if ONLY:
            batch = Batch(**{part: getattr(batch, part) if part in ONLY else ()
                             for part in ("stream", "delayed", "control", "revoke")})
        self.alive()
        self.publish(batch)
        self.ping("right after the channel garbage")
        sent = self.send(batch)
        self.account(sent)
        self.probe_task()
        self.probe_revoke()
        wait_until(lambda: broker_idle(self.broker), timeout=10,
                   message=f"left behind: {describe_broker(self.broker)}")
        self.ping("after the batch")
        self.no_loop_failed()


def _fuzz_settings() -> Any:
    return settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
        phases=(Phase.generate,), report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example],
    )


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.timeout(180)
def test_hostile_input_never_stops_a_node_and_is_accounted_for(
        pool, start_worker, make_app, redis_server, redis_client):
    node = f"fz-{pool}@fuzz"
    worker = start(start_worker, *POOLS[pool], pool=pool, hostname=node)
    results = redis_server.client(2)
    fuzzer = Fuzzer(worker, node, make_app("sysq_fuzz_client"), redis_client, results)

    @_fuzz_settings()
    @given(batch=batches)
    def one_batch(batch: Batch) -> None:
        fuzzer.check(batch)

    if SEED is not None:
        one_batch = seed(int(SEED))(one_batch)
    try:
        one_batch()
    finally:
        results.close()
    fuzzer.alive()
