"""The dashboard's pages and JSON API, read side, against real nodes (``sysq_dash``, events
on) and the session's redis-server: overview (nodes, queues per band, throughput,
percentiles), task search and task pages, nodes, dead letters, beat; escaping of what
tasks return; the history surviving a restart of the dashboard; dead nodes leaving the
view. Each test opens its own dashboard (its start catches up on the events stream from
the position kept in Redis)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_dash_support import (  # noqa: E402
    APPS,
    Fleet,
    dashboard,
    fleet_of,
    pages,
    wait_task,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]
SCRIPT = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    yield from fleet_of(redis_server, tmp_path_factory.mktemp("dash-pages"),
                        {"dw": ("threads", "-c", "4", "-Q", "multiq,dq")})


@pytest.fixture
def app(fleet):
    return fleet.app


@pytest.fixture
def web(app):
    with dashboard(app) as client:
        yield client


def test_every_page_and_read_route_answers(web, app):
    done = app.send_task("sysq_dash.add", [1, 2])
    assert done.get(timeout=10) == 3
    wait_task(web, done.id, "SUCCESS")
    html = [r.text for r in pages(web, ["/", "/tasks", f"/task/{done.id}", "/nodes",
                                        "/deadletters", "/beat", "/login"])]
    assert all("<nav>" in h for h in html)
    for path in ("/api/overview", "/api/tasks", f"/api/task/info/{done.id}",
                 f"/api/task/result/{done.id}", "/api/workers", "/api/queues/length",
                 "/api/deadletters", "/api/beat"):
        response = web.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("application/json"), path
    assert web.get("/task/no-such-task").status_code == 404
    assert web.get("/api/task/info/no-such-task").status_code == 404


def test_overview_nodes_and_queues_per_band(web, app, fleet):
    host = fleet.hostname("dw")
    for priority in (9, 9, 0):
        app.send_task("sysq_dash.add", [1, 1], queue="idle", priority=priority)
    app.send_task("sysq_dash.add", [1, 1], queue="idle", countdown=600)
    snap = web.get("/api/overview").json()
    node = next(n for n in snap["nodes"] if n["hostname"] == host)
    assert node["state"] == "online" and node["pool"] == "threads"
    idle = next(q for q in snap["queues"] if q["name"] == "idle")
    assert idle["bands"]["9"] == 2 and idle["bands"]["0"] == 1 and idle["waiting"] == 3
    assert idle["delayed"] == 1 and idle["held"] == 0 and idle["deadletters"] == 0
    lengths = web.get("/api/queues/length").json()["active_queues"]
    assert {"name": "idle", "messages": 3}.items() <= next(
        q for q in lengths if q["name"] == "idle").items()
    page = web.get("/").text
    assert host in page and "idle" in page


def test_overview_throughput_and_percentiles_count_finished_tasks(web, app):
    def totals():
        tp = web.get("/api/overview").json()["throughput"]
        return sum(tp["succeeded"]), sum(tp["failed"])

    ok0, failed0 = totals()
    results = [app.send_task("sysq_dash.add", [i, i]) for i in range(12)]
    results += [app.send_task("sysq_dash.boom", ["no"]) for _ in range(3)]
    for r in results:
        r.get(timeout=10, propagate=False)
    wait_until(lambda: totals() == (ok0 + 12, failed0 + 3), timeout=10,
               message=f"throughput stayed {totals()}, not {(ok0 + 12, failed0 + 3)}")
    pct = web.get("/api/overview").json()["percentiles"]
    assert pct["runtime"]["n"] >= 15 and pct["runtime"]["p50"] is not None
    assert pct["wait"]["n"] >= 15 and 0 <= pct["wait"]["p50"] < 10


def test_task_search_by_name_state_node_id_time_and_pages(web, app, fleet):
    start = time.time()
    adds = [app.send_task("sysq_dash.add", [i, 100]) for i in range(5)]
    fail = app.send_task("sysq_dash.boom", ["searched"])
    for r in adds + [fail]:
        r.get(timeout=10, propagate=False)
    wait_task(web, fail.id, "FAILURE")
    for r in adds:
        wait_task(web, r.id, "SUCCESS")

    def ids(**params):
        body = web.get("/api/tasks", params=params).json()
        return body["total"], [t["id"] for t in body["tasks"]]

    total, found = ids(name="sysq_dash.add", since=start)
    assert total == 5 and found == [r.id for r in reversed(adds)]  # newest first
    assert ids(state="FAILURE", since=start) == (1, [fail.id])
    assert ids(state="failure", name="sysq_dash.boom", node=fleet.hostname("dw"),
               since=start) == (1, [fail.id])
    assert ids(node="nobody@nowhere")[0] == 0
    assert ids(id=fail.id[:8]) == (1, [fail.id])
    assert ids(name="sysq_dash.add", until=start - 3600)[0] == 0
    first_page = ids(name="sysq_dash.add", since=start, limit=2)
    second_page = ids(name="sysq_dash.add", since=start, limit=2, offset=2)
    assert first_page[1] + second_page[1] == [r.id for r in reversed(adds)][:4]
    assert web.get("/api/tasks", params={"since": "yesterday"}).status_code == 400
    html = web.get("/tasks", params={"state": "FAILURE", "since": start}).text
    assert fail.id in html and adds[0].id not in html
    assert web.get("/tasks", params={"name": "sysq_dash.add", "since": start,
                                     "limit": 2}).text.count('class="tid"') == 2


def test_task_page_shows_arguments_outcome_timeline_and_family(web, app, fleet):
    host = fleet.hostname("dw")
    fail = app.send_task("sysq_dash.boom", ["it broke"], kwargs={})
    fail.get(timeout=10, propagate=False)
    info = wait_task(web, fail.id, "FAILURE")
    assert info["doc_args"] == ["it broke"] and "ValueError" in info["traceback"]
    kinds = [e["type"] for e in info["timeline"]]
    assert {"task-sent", "task-received", "task-started", "task-failed"} <= set(kinds)
    started = next(e for e in info["timeline"] if e["type"] == "task-started")
    assert started["hostname"] == host and isinstance(started["pid"], int)
    html = web.get(f"/task/{fail.id}").text
    assert "it broke" in html and "ValueError" in html and "task-started" in html

    parent = app.send_task("sysq_dash.parent")
    child_id = parent.get(timeout=10)
    app.AsyncResult(child_id).get(timeout=10)
    wait_task(web, child_id, "SUCCESS")
    assert wait_until(lambda: child_id in web.get(f"/api/task/info/{parent.id}").json()
                      ["children"], timeout=5)
    assert web.get(f"/api/task/info/{child_id}").json()["parent_id"] == parent.id
    assert f'/task/{parent.id}"' in web.get(f"/task/{child_id}").text


def test_task_pages_show_group_and_chord_membership(web, app):
    from multiq import chord

    header = [app.signature("sysq_dash.add", args=(i, i)) for i in range(3)]
    result = chord(header, app.signature("sysq_dash.total")).apply_async()
    assert result.get(timeout=15) == 6
    body = wait_task(web, result.id, "SUCCESS")
    members = [wait_task(web, r.id, "SUCCESS") for r in result.parent.results]
    assert body["chord_id"] and {m["chord_id"] for m in members} == {body["chord_id"]}
    assert len({m["group_id"] for m in members}) == 1 and members[0]["group_id"]
    html = web.get(f"/task/{members[0]['id']}").text
    assert body["chord_id"] in html and members[0]["group_id"] in html


def test_what_a_task_returns_is_shown_as_text_never_as_markup(web, app):
    r = app.send_task("sysq_dash.evil", [SCRIPT])
    assert r.get(timeout=10) == SCRIPT
    wait_task(web, r.id, "SUCCESS")
    for path in (f"/task/{r.id}", "/tasks?name=sysq_dash.evil"):
        html = web.get(path).text
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;alert(" in html, path
    assert "script-src 'self'" in web.get("/").headers["content-security-policy"]


def test_nodes_pages_and_api_show_inspect_replies(web, fleet):
    host = fleet.hostname("dw")
    assert host in web.get("/nodes").text
    html = web.get(f"/node/{host}").text
    assert "sysq_dash.add" in html and "Stats" in html and "threads" in html
    workers = web.get("/api/workers", params={"refresh": "1"}).json()
    assert "sysq_dash.boom" in workers[host]["registered"]
    assert workers[host]["stats"]["pool"]["max-concurrency"] >= 1
    assert {q["name"] for q in workers[host]["active_queues"]} >= {"multiq", "dq"}
    assert web.get("/node/nobody@nowhere").status_code == 404


def test_dead_letters_listed_and_shown(web, app):
    sent = app.send_task("sysq_dash.not_a_task", [7], queue="dq")

    def entries():
        return [e for e in web.get("/api/deadletters").json()["entries"] if e["id"] == sent.id]
    found = wait_until(entries, timeout=10, message="the unknown task was not dead-lettered")
    entry = found[0]
    assert entry["queue"] == "dq" and entry["task"] == "sysq_dash.not_a_task"
    assert sent.id in web.get("/deadletters").text
    detail = web.get(f"/api/deadletter/dq/{entry['entry']}").json()
    assert detail["args"] == [7] and "unknown task" in detail["reason"]
    assert "sysq_dash.not_a_task" in web.get(f"/deadletter/dq/{entry['entry']}").text
    assert web.get("/deadletter/dq/1-1").status_code == 404


def test_beat_page_shows_entries_runs_and_leader(web, app, fleet, tmp_path):
    app.beat.add("every-second", "sysq_dash.add", 1.0, args=[2, 2])
    beat = subprocess.Popen([sys.executable, "-m", "multiq", "-A", "sysq_dash", "beat"],
                            cwd=str(APPS), env=fleet.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    fleet.tracker.track(beat)
    try:
        found = wait_until(lambda: (lambda b: b if b["leader"] and b["entries"]
                                    and b["entries"][0]["last_run"] else None)(
            web.get("/api/beat").json()), timeout=15, message="beat never ran the entry")
        entry = found["entries"][0]
        assert entry["name"] == "every-second" and entry["source"] == "dynamic"
        assert entry["next_run"] > entry["last_run"]
        assert str(beat.pid) in found["leader"]["ident"]
        html = web.get("/beat").text
        assert "every-second" in html and str(beat.pid) in html
    finally:
        beat.send_signal(signal.SIGTERM)
        beat.wait(10)
        app.beat.remove("every-second")


def test_history_survives_a_restart_and_catches_up(app):
    with dashboard(app) as first:
        before = app.send_task("sysq_dash.add", [5, 5])
        before.get(timeout=10)
        wait_task(first, before.id, "SUCCESS")
        counted = sum(first.get("/api/overview").json()["throughput"]["succeeded"])
    during = app.send_task("sysq_dash.add", [6, 6])  # no dashboard is running
    during.get(timeout=10)
    with dashboard(app) as second:
        assert second.get(f"/api/task/info/{before.id}").json()["state"] == "SUCCESS"
        assert second.get(f"/api/task/info/{during.id}").json()["state"] == "SUCCESS"
        kinds = [e["type"] for e in
                 second.get(f"/api/task/info/{before.id}").json()["timeline"]]
        assert kinds.count("task-succeeded") == 1  # nothing folded twice
        assert sum(second.get("/api/overview").json()["throughput"]["succeeded"]) \
            == counted + 1


def test_a_dead_node_leaves_the_view(web, fleet):
    extra = Fleet(fleet.env, fleet.logs)
    extra.start({"gone": ("solo", "-Q", "gone")})
    host = extra.hostname("gone")
    try:
        assert host in web.get("/nodes").text
        extra.workers["gone"].send_signal(signal.SIGKILL)
        wait_until(lambda: host not in web.get("/nodes").text, timeout=15,
                   message="the killed node stayed in the view")
        assert host not in [n["hostname"] for n in web.get("/api/overview").json()["nodes"]]
    finally:
        extra.stop()


def test_metrics_route_serves_the_prometheus_metrics(web):
    response = web.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE multiq_tasks_total counter" in response.text
    assert "multiq_worker_up{" in response.text  # the module's node is up
