"""The dashboard's actions against real nodes and the session's redis-server: revoke,
terminate and re-send a task; a node's pool, autoscale, consumers, limits, restart and
shutdown; dead letters requeued and purged; dynamic beat entries added, disabled, enabled
and removed. Every action is a POST carrying the CSRF token (a form as a browser sends
it, or the API with the token in ``X-CSRF-Token``); without it, with a wrong one, from
another origin, or in read-only mode, every action route refuses (403) and changes
nothing."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_dash_support import (  # noqa: E402
    csrf_of,
    dashboard,
    fleet_of,
    history_state,
    wait_task,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    yield from fleet_of(redis_server, tmp_path_factory.mktemp("dash-actions"),
                        {"da": ("threads", "-c", "2", "-Q", "multiq,dlq"),
                                    "pf": ("prefork", "-c", "1", "-Q", "pf"),
                                    "sd": ("solo", "-Q", "sd")})


@pytest.fixture
def app(fleet):
    return fleet.app


@pytest.fixture
def web(app):
    with dashboard(app) as client:
        client.token = csrf_of(client.get("/").text)
        yield client


def submit(web, path, **fields):
    """A form POST as the page sends it; returns (msg, err) of the redirect."""
    response = web.post(path, data={"csrf_token": web.token, **fields},
                        follow_redirects=False)
    assert response.status_code == 303, (path, response.status_code, response.text)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query.get("msg", [""])[0], query.get("err", [""])[0]


def api(web, path, status=200, **params):
    response = web.post(path, json=params, headers={"X-CSRF-Token": web.token})
    assert response.status_code == status, (path, response.status_code, response.text)
    return response.json()


def test_revoke_a_waiting_task_from_its_page(web, app):
    later = app.send_task("sysq_dash.add", [1, 1], countdown=1.5)
    msg, err = submit(web, f"/task/{later.id}/revoke")
    assert not err and "revoked" in msg
    wait_until(lambda: app.AsyncResult(later.id).state == "REVOKED", timeout=10,
               message="the revoked task was not skipped")


def test_terminate_a_running_task_through_the_api(web, app):
    running = app.send_task("sysq_dash.nap", [30], queue="pf")
    wait_until(lambda: history_state(web, running.id) == "STARTED", timeout=15)
    body = api(web, f"/api/task/revoke/{running.id}", terminate=True)
    assert "terminated" in body["ok"]
    wait_until(lambda: app.AsyncResult(running.id).state == "REVOKED", timeout=10,
               message="the running task was not terminated")


def test_resend_runs_the_same_arguments_under_a_new_linked_id(web, app):
    old = app.send_task("sysq_dash.add", [20, 22])
    assert old.get(timeout=10) == 42
    wait_task(web, old.id, "SUCCESS")
    msg, err = submit(web, f"/task/{old.id}/resend")
    assert not err, err
    new_id = re.search(r"as (\S+)$", msg).group(1)
    assert new_id != old.id and app.AsyncResult(new_id).get(timeout=10) == 42
    assert f'href="/task/{new_id}"' in web.get(f"/task/{old.id}").text
    wait_task(web, new_id, "SUCCESS")
    assert f'href="/task/{old.id}"' in web.get(f"/task/{new_id}").text
    assert api(web, f"/api/task/resend/{old.id}")["task_id"] not in (old.id, new_id)
    assert "not known" in api(web, "/api/task/resend/no-such-task", 400)["error"]


def test_node_pool_consumers_and_limits(web, app, fleet):
    host = fleet.hostname("da")

    def size():
        return web.get("/api/workers", params={"refresh": 1, "workername": host}).json()[
            host]["stats"]["pool"]["max-concurrency"]

    before = size()
    assert submit(web, f"/node/{host}/pool_grow", n="2") == ("pool_grow sent", "")
    assert size() == before + 2
    assert not submit(web, f"/node/{host}/pool_shrink", n="1")[1]
    assert size() == before + 1
    assert "pool_grow" in api(web, f"/api/worker/pool/grow/{host}", n=1)["ok"]
    assert submit(web, f"/node/{host}/pool_grow", n="lots")[1] == "n must be int, not 'lots'"

    api(web, f"/api/worker/queue/add-consumer/{host}", queue="extra")
    queues = {q["name"] for q in web.get("/api/workers", params={"refresh": 1}).json()[host][
        "active_queues"]}
    assert "extra" in queues
    assert not submit(web, f"/node/{host}/cancel_consumer", queue="extra")[1]
    assert "not consuming" in submit(web, f"/node/{host}/cancel_consumer", queue="extra")[1]

    msg, err = submit(web, f"/node/{host}/rate_limit", task_name="sysq_dash.add", rate="5/s")
    assert not err
    replies = api(web, "/api/task/timeout/sysq_dash.add", soft=5, hard=10,
                  workername=host)["replies"]
    assert "time limits set" in replies[host]["ok"]
    assert "unknown task" in api(web, "/api/task/rate-limit/no.such", 400,
                                 ratelimit="1/s", workername=host)["error"]
    assert "unknown node action" in submit(web, f"/node/{host}/explode")[1]


def test_autoscale_through_the_api(web, fleet):
    host = fleet.hostname("pf")
    body = api(web, f"/api/worker/pool/autoscale/{host}", max=3, min=1)
    assert "max=3 min=1" in body["replies"][host]["ok"]
    assert "must not be below" in api(web, f"/api/worker/pool/autoscale/{host}", 400,
                                      max=1, min=3)["error"]


def test_restart_then_shutdown_a_node(web, fleet):
    host, node = fleet.hostname("sd"), fleet.workers["sd"]

    def consumer():
        return next((n["consumer"] for n in web.get("/api/overview").json()["nodes"]
                     if n["hostname"] == host and n["state"] == "online"), None)

    before = consumer()
    assert not submit(web, f"/node/{host}/restart")[1]
    node.wait_for_log("Restarting node", timeout=15)
    wait_until(lambda: consumer() not in (None, before), timeout=20,
               message="the node did not come back under a new incarnation")
    assert node.alive  # in place: the same process, re-executed
    wait_until(lambda: web.get("/api/workers", params={"refresh": 1, "workername": host})
               .json().get(host, {}).get("stats"), timeout=10,
               message="the restarted node never answered inspect")
    assert not submit(web, f"/node/{host}/shutdown")[1]
    assert node.wait(timeout=15) == 0
    wait_until(lambda: host not in web.get("/nodes").text, timeout=10)


def test_dead_letters_requeue_one_all_and_purge(web, app, fleet):
    sent = [app.send_task("sysq_dash.missing_task", [i], queue="dlq") for i in range(3)]

    def entries():
        return {e["id"]: e["entry"] for e in web.get("/api/deadletters",
                                                      params={"queue": "dlq"}).json()["entries"]}
    first = wait_until(lambda: (lambda e: e if len(e) == 3 else None)(entries()), timeout=10)
    one = sent[0].id
    msg, err = submit(web, "/deadletters/requeue", ref=f"dlq/{first[one]}")
    assert msg == "requeued 1" and not err
    # the node takes it again and dead-letters it again: a new entry, the old one gone
    again = wait_until(lambda: (lambda e: e if len(e) == 3 and e[one] != first[one]
                                else None)(entries()), timeout=10)
    assert {k: v for k, v in again.items() if k != one} == \
        {k: v for k, v in first.items() if k != one}
    assert "not requeued" in submit(web, "/deadletters/requeue", ref=f"dlq/{first[one]}")[1]

    assert api(web, "/api/deadletters/requeue-all", queue="dlq")["requeued"] == 3
    wait_until(lambda: (lambda e: e if len(e) == 3 and not set(e.values()) & set(
        again.values()) else None)(entries()), timeout=10)
    assert submit(web, "/deadletters/purge") == ("purged 3", "")
    assert entries() == {}


def test_beat_entries_added_disabled_enabled_removed(web, app, fleet):
    keys = app.broker.keys
    msg, err = submit(web, "/beat/add", name="tick", task="sysq_dash.add", every="30",
                      args="[1, 2]", kwargs="{}")
    assert not err and "tick" in app.beat.dynamic()
    assert app.beat.dynamic()["tick"].args == [1, 2]
    assert "tick" in web.get("/beat").text
    assert not submit(web, "/beat/tick/disable")[1]
    assert "tick" not in app.beat.dynamic() and fleet.redis.hexists(keys.beat_disabled, "tick")
    assert next(e for e in web.get("/api/beat").json()["entries"]
                if e["name"] == "tick")["source"] == "disabled"
    assert not submit(web, "/beat/tick/enable")[1]
    assert "tick" in app.beat.dynamic()
    api(web, "/api/beat/add", name="nightly", task="sysq_dash.add", crontab="0 3 * * *")
    assert app.beat.dynamic()["nightly"].schedule.to_dict()["hour"] == "3"
    assert "five fields" in submit(web, "/beat/add", name="bad", task="t", crontab="0 3")[1]
    assert "either" in submit(web, "/beat/add", name="bad", task="t")[1]
    assert not submit(web, "/beat/tick/remove")[1]
    assert api(web, "/api/beat/nightly/remove")["ok"]
    assert app.beat.dynamic() == {}
    assert "no dynamic beat entry" in submit(web, "/beat/tick/remove")[1]


def _action_paths():
    """Every POST route of the dashboard with its path parameters filled in."""
    from starlette.routing import Route

    from multiq.dashboard.server import all_routes

    out = []
    for route in all_routes():
        if isinstance(route, Route) and "POST" in (route.methods or ()) \
                and route.path not in ("/login", "/logout"):
            out.append(re.sub(r"{(\w+)(:\w+)?}", lambda m: {
                "hostname": "da@x", "action": "pool_grow", "change": "remove",
                "name": "tick"}.get(m.group(1), "x"), route.path))
    return out


ACTIONS = _action_paths()


def test_the_action_routes_are_all_covered():
    assert len(ACTIONS) >= 28 and "/api/task/revoke/x" in ACTIONS


def test_every_action_is_refused_without_a_good_csrf_token(web, app, fleet):
    fleet.redis.delete(app.broker.keys.revoked)
    for path in ACTIONS:
        assert web.post(path, data={"n": "1"}).status_code == 403, path
        assert web.post(path, data={"csrf_token": "forged"}).status_code == 403, path
        assert web.post(path, json={}, headers={"X-CSRF-Token": web.token,
                                                "Origin": "https://evil.example"}
                        ).status_code == 403, path
    assert fleet.redis.zcard(app.broker.keys.revoked) == 0


def test_every_action_is_refused_and_hidden_read_only(app, fleet):
    fleet.redis.delete(app.broker.keys.revoked)
    with dashboard(app, read_only=True) as web:
        token = csrf_of(web.get("/login").text)
        for path in ACTIONS:
            response = web.post(path, data={"csrf_token": token},
                                headers={"X-CSRF-Token": token})
            assert response.status_code == 403 and "read-only" in response.text, path
        done = app.send_task("sysq_dash.add", [1, 1])
        done.get(timeout=10)
        wait_task(web, done.id, "SUCCESS")
        host = fleet.hostname("da")
        for path in ("/", "/tasks", f"/task/{done.id}", "/nodes", f"/node/{host}",
                     "/deadletters", "/beat"):
            html = web.get(path).text
            assert 'method="post"' not in html, path
            assert "read-only" in html, path
    assert fleet.redis.zcard(app.broker.keys.revoked) == 0
