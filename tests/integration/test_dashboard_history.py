"""The dashboard's history on a real Redis: events folded into the index (in whatever order
they arrive), the bounds it is trimmed to, searches over it, and the feeder resuming from
the position it stored, one feeder at a time."""
from __future__ import annotations

import json
import time

import pytest

from multiq.dashboard.feeder import Feeder
from multiq.dashboard.history import History
from multiq.dashboard.search import Query, Search
from multiq.keys import DashboardKeys

pytestmark = pytest.mark.timeout(30)
T0 = 1_700_000_000.0


@pytest.fixture
def keys():
    return DashboardKeys("multiq")


@pytest.fixture
def history(redis_client, keys):
    return History(redis_client, keys, max_tasks=1000, max_age=3600)


@pytest.fixture
def search(redis_client, keys):
    return Search(redis_client, keys)


def ev(kind, uuid, ts, **fields):
    return {"type": f"task-{kind}", "uuid": uuid, "timestamp": ts, **fields}


def fold(history, *events, now=T0 + 10):
    history.fold([(f"{i + 1}-0", e) for i, e in enumerate(events)], f"{len(events)}-0",
                 now=now)


def test_events_in_any_order_leave_the_outcome_and_the_latest_step(history, search):
    fold(history,
         ev("received", "a", T0 + 1, name="t.add", hostname="w1@h", args="(1,)"),
         ev("succeeded", "a", T0 + 3, name="t.add", hostname="w1@h", result="2",
            runtime=0.5),
         ev("started", "a", T0 + 2, name="t.add", hostname="w1@h", pid=42),
         ev("sent", "a", T0 + 1.5, name="t.add", hostname="client@h"),  # stamped late
         ev("received", "b", T0 + 1, name="t.add", hostname="w1@h"),
         ev("started", "b", T0 + 2, name="t.add", hostname="w1@h"),
         ev("sent", "b", T0 + 2.5, name="t.add", hostname="client@h"),
         ev("progress", "b", T0 + 3, name="t.add", state="PROGRESS", hostname="w1@h"))
    a, b = search.task("a"), search.task("b")
    assert a["state"] == "SUCCESS" and a["hostname"] == "w1@h" and a["pid"] == "42"
    assert a["result"] == "2" and a["origin"] == "client@h"
    assert [e["type"] for e in a["timeline"]] == \
        ["task-received", "task-sent", "task-started", "task-succeeded"]
    assert b["state"] == "PROGRESS"
    assert search.tasks(Query(state="SUCCESS"))[0] == 1
    assert search.tasks(Query(state="STARTED"))[0] == 0  # moved, not copied
    assert search.tasks(Query(node="client@h"))[0] == 0  # a sender is not a node


def test_filters_intersect_page_and_search_by_id_prefix(history, search):
    events = []
    for i in range(30):
        uid = f"id-{i:03d}"
        events.append(ev("received", uid, T0 + i, name="t.even" if i % 2 == 0 else "t.odd",
                         hostname=f"w{i % 3}@h"))
        events.append(ev("failed" if i % 5 == 0 else "succeeded", uid, T0 + i + 0.5,
                         hostname=f"w{i % 3}@h", runtime=0.1))
    fold(history, *events)
    total, rows = search.tasks(Query(name="t.even", state="FAILURE"))
    assert total == 3 and [r["id"] for r in rows] == ["id-020", "id-010", "id-000"]
    total, rows = search.tasks(Query(name="t.even", node="w0@h", since=T0 + 5,
                                     until=T0 + 20))
    assert [r["id"] for r in rows] == ["id-018", "id-012", "id-006"] and total == 3
    page = [r["id"] for r in search.tasks(Query(limit=4, offset=4))[1]]
    assert page == ["id-025", "id-024", "id-023", "id-022"]
    assert [r["id"] for r in search.tasks(Query(id="id-01"))[1]][:2] == ["id-019", "id-018"]
    assert search.tasks(Query(id="id-01"))[0] == 10
    assert search.names() and set(search.names()) == {"t.even", "t.odd"}


def test_children_are_linked_to_their_parent(history, search):
    fold(history, ev("received", "p", T0, name="t.p"),
         ev("received", "c1", T0 + 1, name="t.c", parent_id="p", root_id="p"),
         ev("received", "c2", T0 + 2, name="t.c", parent_id="p", root_id="p"))
    assert search.task("p")["children"] == ["c1", "c2"]
    assert search.task("c1")["parent_id"] == "p"


def test_trim_keeps_the_newest_within_both_bounds(redis_client, keys, search):
    history = History(redis_client, keys, max_tasks=10, max_age=100)
    fold(history, *[ev("received", f"t{i:02d}", T0 + i, name="t.n", hostname="w@h")
                    for i in range(25)])
    assert history.trim(now=T0 + 50) == 15
    assert search.count() == 10
    assert [r["id"] for r in search.tasks(Query(name="t.n", limit=100))[1]][-1] == "t15"
    assert search.task("t14") is None and not redis_client.exists(keys.timeline("t14"))
    assert history.trim(now=T0 + 120) == 5  # older than 100 s: t15..t19
    assert search.tasks(Query(node="w@h"))[0] == 5
    assert search.tasks(Query(state="RECEIVED"))[0] == 5


def test_throughput_and_samples(history, redis_client, keys):
    from multiq.dashboard import overview

    now = T0 + 100
    fold(history, *[ev("succeeded", f"s{i}", now - 2, runtime=0.25) for i in range(4)],
         ev("failed", "f", now - 1, runtime=1.0), now=now)
    tp = overview.throughput(redis_client, keys, now=now)
    assert sum(tp["succeeded"]) == 4 and tp["succeeded"][-3] == 4 and tp["failed"][-2] == 1
    assert len(tp["t"]) == 15 * 60
    pct = overview.percentiles(redis_client, keys)
    assert pct["runtime"]["p50"] == 0.25 and pct["runtime"]["p99"] == 1.0
    assert pct["wait"]["n"] == 0


def test_feeder_resumes_from_the_stored_position_one_at_a_time(redis_client, keys,
                                                                history, search):
    stream, start = "multiq:events", time.time()
    for i in range(5):
        redis_client.xadd(stream, {"e": json.dumps(ev("received", f"r{i}", start + i))})
    redis_client.xadd(stream, {"e": b"not json"})
    first = Feeder(redis_client, stream, history, batch=2)
    other = Feeder(redis_client, stream, history)
    assert first.hold() and not other.hold()
    assert first.step() == 2 and search.count() == 2
    first._release()
    assert other.catch_up() == 3 and search.count() == 5  # after where first stopped
    redis_client.xadd(stream, {"e": json.dumps(ev("succeeded", "r0", start + 9))})
    assert other.catch_up() == 1
    assert search.task("r0")["state"] == "SUCCESS"
    assert [e["type"] for e in search.task("r0")["timeline"]] == \
        ["task-received", "task-succeeded"]
