"""Remote control, read-only side: every ``multiq inspect`` command and ``multiq status``
against four live nodes started from the command line, the Python API
(``app.control.inspect()``, ``broadcast``), the early return SPEC §5 promises (a call ends
as soon as every live addressed node answered), exit 69 when nobody answers, and
late replies that never leak into the next call.

The nodes are shared by the whole module (none of these tests changes what they do):

    w1    prefork -c 2, queue w1q
    w2    solo, queue w2q
    w3    solo --prefetch-multiplier 4, queue w3q
    busy  prefork -c 1 --prefetch-multiplier 4, queue busy

w3 and busy each run a 60 s ``nap`` with three tasks prefetched behind it (w3 from its
start, busy from the first test that needs it) to the end of the module.

They run ``python -m multiq -A sysq_control worker`` (apps/sysq_control.py) on the session's
redis-server; this module flushes it once at its start and uses no per-test fixture that
would flush it again.
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import ProcessTracker, start_worker_process, wait_until  # noqa: E402
from sysq_control_support import (  # noqa: E402
    APPS,
    HOST,
    TASK,
    child_pids,
    cli,
    cold_stop,
    env_for,
    flat,
    node,
    recorded,
)

from multiq import MultiQ  # noqa: E402
from multiq.control.mailbox import Mailbox  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

W1, W2, W3, BUSY = node("w1"), node("w2"), node("w3"), node("busy")
ALL = {W1, W2, W3, BUSY}
NODES = {
    "w1": ("prefork", "-c", "2", "-Q", "w1q"),
    "w2": ("solo", "-Q", "w2q"),
    "w3": ("solo", "--prefetch-multiplier", "4", "-Q", "w3q"),
    "busy": ("prefork", "-c", "1", "--prefetch-multiplier", "4", "-Q", "busy"),
}
EMPTY_DB = 5  # a broker database no node uses


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory):
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    broker, backend = redis_server.url(1), redis_server.url(2)
    env = env_for(broker, backend)
    logs = tmp_path_factory.mktemp("control-inspect")
    tracker = ProcessTracker()
    workers = {}
    app = MultiQ("sysq_control_client", broker=broker, backend=backend,
                 set_as_current=False)
    rec = redis_server.client(3)
    broker_client = redis_server.client(1)
    try:
        # a solo node fetches only while no task runs in it: what it is to hold behind its
        # long task must be waiting before it starts
        preloaded = [app.send_task(TASK("nap"), args=["long-w3q", 60], queue="w3q")]
        preloaded += [app.send_task(TASK("record"), args=[f"behind-w3q-{i}"], queue="w3q")
                      for i in range(3)]
        for short, (pool, *args) in NODES.items():
            workers[short] = start_worker_process(
                tracker, "sysq_control", *args, cwd=APPS, env=env, pool=pool,
                hostname=f"{short}@%h", wait_ready=False, log_path=logs / f"{short}.log")
        for w in workers.values():
            w.wait_for_log("ready", timeout=30)
        wait_until(lambda: set(Mailbox(app.broker).live_nodes()) == ALL, timeout=10,
                   message="the four nodes are not all live")
        yield SimpleNamespace(app=app, env=env, workers=workers, rec=rec,
                              broker=broker_client, redis_server=redis_server,
                              preloaded=preloaded)
    finally:
        cold_stop(list(workers.values()))
        tracker.cleanup()
        rec.close()
        broker_client.close()
        app.close()


def _held(broker, queue):
    """How many entries of ``queue`` nodes hold (delivered, not acknowledged)."""
    total = 0
    for band in range(10):
        stream = f"multiq:q:{{{queue}}}:{band}"
        if broker.exists(stream):
            total += int(broker.xpending(stream, "multiq")["pending"])
    return total


@pytest.fixture(scope="module")
def busy(cluster):
    """w3 (solo) and busy (prefork) each run a 60 s nap with three ``record`` tasks
    prefetched behind it: ``busy.long[queue]``, ``busy.behind[queue]``."""
    app = cluster.app
    long = {"w3q": cluster.preloaded[0]}
    behind = {"w3q": cluster.preloaded[1:]}
    long["busy"] = app.send_task(TASK("nap"), args=["long-busy", 60], queue="busy")
    for queue in ("w3q", "busy"):
        wait_until(lambda q=queue: recorded(cluster.rec, f"long-{q}", "start"), timeout=15,
                   message=f"the long nap did not start on {queue}")
    behind["busy"] = [app.send_task(TASK("record"), args=[f"behind-busy-{i}"], queue="busy")
                      for i in range(3)]
    for queue in ("w3q", "busy"):
        wait_until(lambda q=queue: _held(cluster.broker, q) == 4, timeout=10,
                   message=f"the node of {queue} did not prefetch the three tasks")
    return SimpleNamespace(long=long, behind=behind)


def _json(run):
    assert run.code == 0, run
    lines = [line for line in run.out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print one JSON object and nothing else: {run}"
    return json.loads(lines[0])


def _block(out: str, name: str) -> str:
    """The lines a human-readable reply prints under ``->  <name>: ...``."""
    lines, inside = [], False
    for line in out.splitlines():
        if line.startswith("->  "):
            inside = line.startswith(f"->  {name}: ")
            continue
        if inside:
            if not line.strip():
                break
            lines.append(line)
    return "\n".join(lines)


# -- ping, and how fast a call returns --------------------------------------------------


def test_inspect_ping_cli_lists_every_node(cluster):
    run = cli(cluster.env, "inspect", "ping")
    assert run.code == 0, run
    lines = run.out.splitlines()
    for name in ALL:
        head = f"->  {name}: OK"
        assert head in lines, run
        assert lines[lines.index(head) + 1].strip() == "pong", run
    assert sum(1 for line in lines if line.startswith("->  ")) == 4, run
    assert run.out.rstrip().endswith("4 nodes online."), run


def test_inspect_ping_returns_as_soon_as_every_live_node_answered(cluster):
    run = cli(cluster.env, "inspect", "ping", "--timeout", "5")
    assert run.code == 0, run
    assert "4 nodes online." in run.out, run
    assert run.seconds < 1.5, f"inspect ping --timeout 5 took {run.seconds:.2f}s"

    inspector = cluster.app.control.inspect(timeout=5)
    began = time.monotonic()
    replies = inspector.ping()
    took = time.monotonic() - began
    assert replies == {name: {"ok": "pong"} for name in ALL}
    assert took < 0.5, f"inspect(timeout=5).ping() took {took:.3f}s with 4 live nodes"


def test_inspect_ping_destination_only_that_node_replies(cluster):
    run = cli(cluster.env, "inspect", "ping", "-d", W1, "--timeout", "5")
    assert run.code == 0, run
    assert f"->  {W1}: OK" in run.out, run
    assert sum(1 for line in run.out.splitlines() if line.startswith("->  ")) == 1, run
    assert "1 node online." in run.out, run
    assert run.seconds < 1.5, run

    both = _json(cli(cluster.env, "inspect", "ping", "-d", f"{W2},{W3}", "-j", "-t", "5"))
    assert both == {W2: {"ok": "pong"}, W3: {"ok": "pong"}}


def test_inspect_destination_not_alive_exits_69_quickly(cluster):
    run = cli(cluster.env, "inspect", "ping", "-d", f"ghost@{HOST}", "--timeout", "5")
    assert run.code == 69, run
    assert "No nodes replied within time constraint" in run.out + run.err, run
    assert "->  " not in run.out, run
    assert run.seconds < 1.5, f"a dead destination kept the call waiting: {run}"


def test_no_nodes_at_all_inspect_control_status_exit_69(cluster):
    env = dict(cluster.env, MULTIQ_BROKER_URL=cluster.redis_server.url(EMPTY_DB))
    run = cli(env, "inspect", "ping", "--timeout", "2")
    assert run.code == 69, run
    assert "No nodes replied within time constraint" in run.out + run.err, run
    ctl = cli(env, "control", "enable_events", "--timeout", "2")
    assert ctl.code == 69, ctl
    assert "No nodes replied within time constraint" in ctl.out + ctl.err, ctl
    status = cli(env, "status")
    assert status.code == 69, status
    assert "->  " not in status.out, status
    after = cli(cluster.env, "inspect", "ping", "-b", cluster.redis_server.url(EMPTY_DB))
    assert after.code == 69, after  # -b after the sub-command


def test_broker_option_before_the_subcommand_wins_over_the_environment(cluster):
    empty = cluster.redis_server.url(EMPTY_DB)
    run = cli(cluster.env, "-b", empty, "inspect", "ping", "--timeout", "2")
    assert run.code == 69, run
    status = cli(cluster.env, "-b", empty, "status")
    assert status.code == 69, status


def test_status_lists_live_nodes_without_waiting(cluster):
    run = cli(cluster.env, "status")
    assert run.code == 0, run
    heads = [line for line in run.out.splitlines() if line.startswith("->  ")]
    assert sorted(h.split(":")[0][4:] for h in heads) == sorted(ALL), run
    assert all(": OK" in h for h in heads), run
    assert "4 nodes online." in run.out, run
    assert run.seconds < 1.5, run


def test_json_prints_one_object_keyed_by_node(cluster):
    body = _json(cli(cluster.env, "inspect", "ping", "-j"))
    assert body == {name: {"ok": "pong"} for name in ALL}
    long = _json(cli(cluster.env, "inspect", "active_queues", "--json"))
    assert set(long) == ALL


def test_unknown_inspect_command_is_a_usage_error(cluster):
    run = cli(cluster.env, "inspect", "nonsense")
    assert run.code == 2, run
    assert "ping" in run.err and "stats" in run.err, run


# -- what each node says ----------------------------------------------------------------


def test_inspect_stats_fields(cluster):
    run = cli(cluster.env, "inspect", "stats", "-j")
    body = _json(run)
    assert set(body) == ALL
    w1 = body[W1]
    assert w1["pid"] == cluster.workers["w1"].pid
    assert isinstance(w1["uptime"], int) and 0 <= w1["uptime"] < 600
    assert w1["pool"]["max-concurrency"] == 2
    assert sorted(w1["pool"]["processes"]) == child_pids(cluster.workers["w1"].pid)
    assert len(w1["pool"]["processes"]) == 2
    assert w1["prefetch_count"] == 8  # 2 processes x the default multiplier 4
    assert body[BUSY]["prefetch_count"] == 4
    assert body[W2]["pool"]["max-concurrency"] == 1
    for name, stats in body.items():
        assert {"pid", "uptime", "pool", "total", "prefetch_count", "rusage", "broker",
                "clock"} <= set(stats), name
        assert isinstance(stats["total"], dict)
        assert {"utime", "stime", "maxrss"} <= set(stats["rusage"]), stats["rusage"]
        url = stats["broker"]["url"]
        assert url.startswith("redis://127.0.0.1:"), url
        assert ":pass@" not in url and "@" not in url, url
    human = cli(cluster.env, "inspect", "stats")
    assert human.code == 0, human
    block = _block(human.out, W1)
    assert '"max-concurrency": 2' in block, human
    assert block.startswith("    {"), human
    assert "4 nodes online." in human.out


def test_inspect_stats_broker_is_shaped_like_celerys(cluster):
    broker = cluster.app.control.inspect(destination=[W1]).stats()[W1]["broker"]
    assert {"hostname", "userid", "virtual_host", "port", "insist", "ssl", "transport",
            "connect_timeout", "transport_options", "login_method", "uri_prefix", "heartbeat",
            "failover_strategy", "alternates"} <= set(broker), broker
    assert (broker["hostname"], broker["transport"], broker["ssl"]) == ("127.0.0.1", "redis",
                                                                       False)
    assert isinstance(broker["port"], int) and "password" not in broker


def test_inspect_stats_total_counts_tasks_run_solo(cluster):
    r = cluster.app.send_task(TASK("record"), args=["tot-w2"], queue="w2q")
    assert r.get(timeout=10)
    stats = cluster.app.control.inspect(destination=[W2]).stats()
    assert stats[W2]["total"].get(TASK("record"), 0) >= 1, stats[W2]["total"]


def test_inspect_stats_total_counts_tasks_run_prefork(cluster):
    rs = [cluster.app.send_task(TASK("record"), args=[f"tot-w1-{i}"], queue="w1q")
          for i in range(2)]
    for r in rs:
        assert r.get(timeout=10)
    stats = cluster.app.control.inspect(destination=[W1]).stats()
    assert stats[W1]["total"].get(TASK("record"), 0) >= 2, stats[W1]["total"]


def test_inspect_active_shows_the_running_task(cluster, busy):
    body = _json(cli(cluster.env, "inspect", "active", "-j"))
    assert set(body) == ALL
    for name, queue in ((BUSY, "busy"), (W3, "w3q")):
        running = body[name]
        assert len(running) == 1, running
        task = running[0]
        assert task["id"] == busy.long[queue].id
        assert task["name"] == TASK("nap")
        assert task["args"] == [f"long-{queue}", 60]
        assert task["kwargs"] == {}
        assert isinstance(task["time_start"], float)
        assert abs(time.time() - task["time_start"]) < 120
        assert task["delivery_info"]["routing_key"] == queue
    assert body[BUSY][0]["worker_pid"] in child_pids(cluster.workers["busy"].pid)
    assert body[W3][0]["worker_pid"] == cluster.workers["w3"].pid  # solo: the node itself
    for name in (W1, W2):
        assert body[name] == [], (name, body[name])

    human = cli(cluster.env, "inspect", "active")
    assert human.code == 0, human
    assert _block(human.out, W2) == "    - empty -", human
    line = _block(human.out, BUSY)
    assert line.startswith("    * ") and busy.long["busy"].id in line, human


def _check_reserved(cluster, busy, name, queue):
    body = _json(cli(cluster.env, "inspect", "reserved", "-j"))
    waiting = body[name]
    assert [r["id"] for r in waiting] == [r.id for r in busy.behind[queue]]
    assert [r["args"] for r in waiting] == [[f"behind-{queue}-{i}"] for i in range(3)]
    assert all(r["name"] == TASK("record") for r in waiting)
    for other in (W1, W2):
        assert body[other] == []
    # never started: nothing recorded for them
    assert not any(recorded(cluster.rec, f"behind-{queue}-{i}") for i in range(3))
    behind = busy.behind[queue][0].id
    found = cluster.app.control.inspect(destination=[name]).query_task(behind)
    assert found[name][behind][0] == "reserved", found


def test_inspect_reserved_solo_shows_tasks_waiting_behind_the_running_one(cluster, busy):
    _check_reserved(cluster, busy, W3, "w3q")
    human = cli(cluster.env, "inspect", "reserved")
    lines = _block(human.out, W3).splitlines()
    assert len(lines) == 3 and all(line.startswith("    * {") for line in lines), human


def test_inspect_reserved_prefork_shows_tasks_waiting_behind_the_running_one(cluster, busy):
    _check_reserved(cluster, busy, BUSY, "busy")


def test_inspect_query_task(cluster, busy):
    long, behind = busy.long["w3q"].id, busy.behind["w3q"][1].id
    body = _json(cli(cluster.env, "inspect", "query_task", long, behind, "-j"))
    mine = body[W3]
    assert mine[long][0] == "active"
    assert mine[long][1]["id"] == long
    assert mine[behind][0] == "reserved"
    assert mine[behind][1]["id"] == behind
    for name in (W1, W2, BUSY):
        assert body[name] == {}
    api = cluster.app.control.inspect(destination=[BUSY]).query_task(busy.long["busy"].id)
    assert api[BUSY][busy.long["busy"].id][0] == "active"


def test_inspect_scheduled_shows_countdown_task_with_eta(cluster):
    sent = time.time()
    r = cluster.app.send_task(TASK("record"), args=["later"], queue="w2q", countdown=60)
    body = _json(cli(cluster.env, "inspect", "scheduled", "-j"))
    entries = body[W2]
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry["request"]["id"] == r.id
    assert entry["request"]["name"] == TASK("record")
    eta = entry["eta"]
    if isinstance(eta, str):
        eta = dt.datetime.fromisoformat(eta).timestamp()
    assert abs(eta - (sent + 60)) < 5, entry
    for name in ALL - {W2}:
        assert all(e["request"]["id"] != r.id for e in body[name])
    cluster.app.control.revoke(r.id)  # never due within this module, but leave nothing


def test_inspect_registered_and_include_rate_limit(cluster):
    run = cli(cluster.env, "inspect", "registered")
    assert run.code == 0, run
    block = _block(run.out, W1).splitlines()
    for task in ("record", "nap", "limited", "boom"):
        assert f"    * {TASK(task)}" in block, run
    with_attr = cli(cluster.env, "inspect", "registered", "--include", "rate_limit", "-j")
    body = _json(with_attr)
    assert set(body) == ALL
    assert f"{TASK('limited')} [rate_limit=100/m]" in body[W2], body[W2]
    assert TASK("record") in body[W2]  # no rate limit: the bare name
    api = cluster.app.control.inspect(destination=[W3]).registered("rate_limit")
    assert f"{TASK('limited')} [rate_limit=100/m]" in api[W3]


def test_inspect_revoked_after_a_revoke(cluster):
    ghost = "0d1f7c2e-revoked-by-test-control-inspect"
    cluster.app.control.revoke(ghost)

    def everyone_knows():
        body = cluster.app.control.inspect().revoked() or {}
        return set(body) == ALL and all(ghost in ids for ids in body.values())

    wait_until(everyone_knows, timeout=10, message="not every node lists the revoked id")
    run = cli(cluster.env, "inspect", "revoked", "-d", W3)
    assert run.code == 0, run
    assert f"    * {ghost}" in run.out.splitlines(), run


def test_inspect_conf_shows_settings_and_masks_secrets(cluster):
    run = cli(cluster.env, "inspect", "conf", "-j")
    body = _json(run)
    assert set(body) == ALL
    conf = body[W1]
    assert conf["sysq_marker"] == "control-app"
    assert conf["sysq_api_token"] == "********"
    assert conf["result_backend_transport_options"]["password"] == "********"
    assert "hunter2" not in run.out
    human = cli(cluster.env, "inspect", "conf")
    assert '"sysq_marker": "control-app"' in _block(human.out, W2), human
    assert "hunter2" not in human.out


def test_scheduled_and_active_queues_replies_are_shaped_like_celerys(cluster):
    """Tools written for Celery's replies (Flower, scripts) read these fields."""
    r = cluster.app.send_task(TASK("record"), args=["shape"], queue="w2q", countdown=90,
                              priority=3)
    scheduled = cluster.app.control.inspect(destination=[W2]).scheduled()[W2]
    [entry] = [e for e in scheduled if e["request"]["id"] == r.id]
    assert set(entry) == {"eta", "priority", "request"}
    eta = dt.datetime.fromisoformat(entry["eta"])
    assert eta.utcoffset() == dt.timedelta(0)
    request = entry["request"]
    assert {"id", "name", "args", "kwargs", "type", "hostname", "time_start", "acknowledged",
            "delivery_info", "worker_pid"} <= set(request), request
    assert (request["id"], request["hostname"], request["acknowledged"]) == (r.id, W2, False)
    assert request["delivery_info"]["routing_key"] == "w2q"
    [queue] = cluster.app.control.inspect(destination=[W2]).active_queues()[W2]
    assert {"name", "exchange", "routing_key", "durable", "exclusive", "auto_delete",
            "no_ack", "alias", "bindings", "queue_arguments", "max_priority"} <= set(queue)
    assert (queue["name"], queue["routing_key"], queue["exchange"]["name"],
            queue["exchange"]["type"]) == ("w2q", "w2q", "w2q", "direct")
    cluster.app.control.revoke(r.id)


def test_inspect_active_queues(cluster):
    body = _json(cli(cluster.env, "inspect", "active_queues", "-j"))
    for short in ("w1", "w2", "w3", "busy"):
        queues = body[node(short)]
        names = [q["name"] for q in queues]
        assert names == [f"{short}q" if short != "busy" else "busy"], queues


def test_inspect_clock_advances(cluster):
    first = _json(cli(cluster.env, "inspect", "clock", "-j"))
    second = _json(cli(cluster.env, "inspect", "clock", "-j"))
    assert set(first) == set(second) == ALL
    for name in ALL:
        assert isinstance(first[name]["clock"], int)
        assert second[name]["clock"] > first[name]["clock"], (first, second)


# -- the Python API ----------------------------------------------------------------------


def test_python_api_inspect_and_broadcast(cluster):
    control = cluster.app.control
    stats = control.inspect().stats()
    assert set(stats) == ALL
    assert stats[W1]["pool"]["max-concurrency"] == 2
    assert control.inspect().ping() == {name: {"ok": "pong"} for name in ALL}
    assert control.inspect(destination=[W2]).ping() == {W2: {"ok": "pong"}}
    replies = control.broadcast("ping", reply=True)
    assert isinstance(replies, list) and len(replies) == 4
    assert all(len(r) == 1 for r in replies), replies
    assert flat(replies) == {name: {"ok": "pong"} for name in ALL}
    assert flat(control.ping()) == {name: {"ok": "pong"} for name in ALL}
    assert control.broadcast("ping") == []  # no reply asked for: nothing waited for
    assert control.inspect(destination=[f"ghost@{HOST}"]).ping() is None


def test_late_replies_never_reach_the_next_call(cluster):
    mailbox = Mailbox(cluster.app.broker)
    for _ in range(3):
        first = mailbox.call("ping", limit=1)  # returns at the first reply; 3 come late
        assert len(first) == 1, first
        second = mailbox.call("ping", timeout=2)
        assert len(second) == 4, second
        assert flat(second) == {name: {"ok": "pong"} for name in ALL}
    stats = mailbox.call("clock", timeout=2)
    assert len(stats) == 4 and all("clock" in next(iter(r.values())) for r in stats), stats

    keys = cluster.broker.keys("multiq:reply:*")
    for key in keys:  # the late replies' lists: expiring on their own within 10 s
        pttl = cluster.broker.pttl(key)
        assert pttl == -2 or 0 <= pttl <= 10_000, (key, pttl)


def test_inspect_ping_median_time_4_nodes(cluster):
    inspector = cluster.app.control.inspect(timeout=1)
    assert inspector.ping() == {name: {"ok": "pong"} for name in ALL}  # warm up
    times = []
    for _ in range(30):
        began = time.perf_counter()
        replies = inspector.ping()
        times.append((time.perf_counter() - began) * 1000)
        assert replies is not None and len(replies) == 4
    print(f"\nINSPECT-PING 4 nodes: median {statistics.median(times):.2f} ms "
          f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")
