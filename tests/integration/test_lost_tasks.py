"""Recovery of a gone node's started tasks against a real Redis: the WorkerLostError it
records never replaces a final result, and a node that beat again is left alone."""
from __future__ import annotations

import json
from typing import Any, List

import pytest
from helpers import wait_until

from multiq import states
from multiq.backends.base import make_doc
from multiq.worker.committer import Committer

DEAD = "gone@host|0123456789ab"


def _take_and_start(app: Any, n: int) -> List[Any]:
    """Publish ``n`` tasks, fetch them as ``DEAD`` and mark them started (early ack)."""
    @app.task(name="t.work")
    def work(i: int) -> int:
        return i

    sent = [work.delay(i) for i in range(n)]
    app.broker.declare(["multiq"])
    got = app.broker.fetch(DEAD, ["multiq"], n)
    assert len(got) == n
    p = app.broker.batch()
    for d in got:
        app.broker.mark_started(p, d, DEAD)
    p.execute()
    return sent


@pytest.mark.timeout(30)
def test_lost_keeps_a_final_result_and_writes_over_one_that_is_not(make_app: Any) -> None:
    app = make_app()
    done, running, silent = _take_and_start(app, 3)
    backend = app.backend
    backend.store(done.id, make_doc(done.id, states.SUCCESS, 42))
    backend.store(running.id, make_doc(running.id, states.STARTED))
    pubsub = backend.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*(backend.key(r.id) for r in (done, running, silent)))

    requeued, dead, lost = app.broker.recover("multiq", DEAD)
    assert (requeued, dead, len(lost)) == (0, 0, 3)
    Committer(app, "me@host|ba9876543210", "me@host").lost(lost, DEAD)

    assert backend.get_meta(done.id)["status"] == states.SUCCESS
    assert done.get(timeout=1) == 42
    for r in (running, silent):
        meta = backend.get_meta(r.id)
        assert meta["status"] == states.FAILURE
        assert meta["result"]["exc_type"] == "WorkerLostError"
    notified: List[str] = []

    def woken() -> bool:  # (None also comes for each subscribe confirmation)
        msg = pubsub.get_message(timeout=0.1)
        if msg is not None:
            notified.append(json.loads(msg["data"])["task_id"])
        return len(notified) >= 2

    wait_until(woken, timeout=5, message=f"notified: {notified}")
    assert pubsub.get_message(timeout=0.3) is None  # nothing for the final one
    pubsub.close()
    assert sorted(notified) == sorted([running.id, silent.id])  # get() is woken for these
    assert app.broker.holders("multiq") == set()  # acknowledged


@pytest.mark.timeout(30)
def test_store_unless_final_writes_only_over_a_missing_or_unfinished_document(
        make_app: Any) -> None:
    backend = make_app().backend
    lost = make_doc("x", states.FAILURE, {"exc_type": "WorkerLostError"})
    for status in (states.SUCCESS, states.FAILURE, states.REVOKED):
        backend.store("t-" + status, make_doc("t-" + status, status, "kept"))
        assert backend.store_unless_final("t-" + status, lost) is False
        assert backend.get_meta("t-" + status)["result"] == "kept"
    for status in (states.STARTED, states.RETRY, states.RECEIVED):
        backend.store("t-" + status, make_doc("t-" + status, status))
        assert backend.store_unless_final("t-" + status, lost) is True
        assert backend.get_meta("t-" + status)["status"] == states.FAILURE
    assert backend.store_unless_final("absent", lost) is True
    assert backend.get_meta("absent")["status"] == states.FAILURE
    assert 0 < backend.client.ttl(backend.key("absent")) <= int(backend.expires)


@pytest.mark.timeout(30)
def test_recover_leaves_a_node_whose_liveness_key_is_back(make_app: Any) -> None:
    app = make_app()
    _take_and_start(app, 2)
    app.broker.heartbeat(DEAD, {"hostname": "gone@host"}, ttl=10)  # it beat meanwhile

    assert app.broker.recover("multiq", DEAD) == (0, 0, [])
    assert app.broker.holders("multiq") == {DEAD}
