"""Remote control, changing side: every ``multiq control`` command (and its Python API form)
against nodes started from the command line: rate and time limits, revokes (queued, and
``--terminate`` of a running prefork task), pool size, autoscale, consumers, shutdown.

Every command here changes the node it is sent to, so each test has nodes of its own: the
module starts them all at once (``python -m multiq -A sysq_control worker``, see
apps/sysq_control.py), each with its own name and queue, and every command names its node
with ``-d`` / ``destination=``. Tasks record their runs in db 3
(``<tag>:<what>:<pid>:<time>``). The module flushes the session's redis-server once at its
start and uses no per-test fixture that would flush it again.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import ProcessTracker, start_worker_process, wait_until  # noqa: E402
from sysq_control_support import (  # noqa: E402
    APPS,
    TASK,
    child_pids,
    cli,
    cold_stop,
    env_for,
    flat,
    node,
    recorded,
    records,
    wait_results,
)

from multiq import MultiQ  # noqa: E402
from multiq.exceptions import TaskRevokedError, TimeLimitExceeded  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(45)]


FLEET = {  # node -> pool and arguments; one test uses each node
    "rl": ("solo", "-Q", "rl"),
    "rl2": ("solo", "-Q", "rl2"),
    "tl": ("prefork", "-c", "1", "-Q", "tl"),
    "rv": ("solo", "-Q", "rv"),
    "rvp": ("prefork", "-c", "1", "-Q", "rvp"),
    "rt1": ("prefork", "-c", "1", "-Q", "rt1"),
    "rt2": ("prefork", "-c", "1", "-Q", "rt2"),
    "rt3": ("prefork", "-c", "1", "-Q", "rt3"),
    "pg": ("prefork", "-c", "2", "-Q", "pg"),
    "as": ("prefork", "-c", "1", "-Q", "as"),
    "cc": ("solo", "-Q", "cq"),
    "cx": ("solo", "-Q", "cx"),
    "sd1": ("solo", "-Q", "sd1"),
    "sd2": ("solo", "-Q", "sd2"),
    "cu": ("solo", "-Q", "cu"),
    "cup": ("prefork", "-c", "1", "-Q", "cup"),
}


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    broker_url, backend_url = redis_server.url(1), redis_server.url(2)
    env = env_for(broker_url, backend_url)
    logs = tmp_path_factory.mktemp("control-commands")
    tracker = ProcessTracker()
    workers = {}
    app = MultiQ("sysq_control_client", broker=broker_url, backend=backend_url,
                 set_as_current=False)
    rec = redis_server.client(3)
    broker = redis_server.client(1)
    try:
        for short, (pool, *args) in FLEET.items():
            workers[short] = start_worker_process(
                tracker, "sysq_control", *args, cwd=APPS, env=env, pool=pool,
                hostname=f"{short}@%h", wait_ready=False, log_path=logs / f"{short}.log")
        for w in workers.values():
            w.wait_for_log("ready", timeout=40)
        yield SimpleNamespace(app=app, env=env, workers=workers, rec=rec, broker=broker)
    finally:
        cold_stop(list(workers.values()))
        tracker.cleanup()
        rec.close()
        broker.close()
        app.close()


@pytest.fixture
def client(fleet):
    return fleet.app


@pytest.fixture
def rec(fleet):
    return fleet.rec


@pytest.fixture
def env(fleet):
    return fleet.env


@pytest.fixture
def broker(fleet):
    return fleet.broker


@pytest.fixture
def nodes(fleet):
    """``nodes(short)``: this test's node of the fleet (alive, ready)."""
    def get(short):
        w = fleet.workers[short]
        assert w.alive, f"{short} is gone; log:\n{w.log()[-2000:]}"
        return w
    return get


def _ok(run, name, text):
    """The CLI printed ``->  <name>: OK`` with ``text`` in the reply, and exited 0."""
    assert run.code == 0, run
    lines = run.out.splitlines()
    head = f"->  {name}: OK"
    assert head in lines, run
    assert text in lines[lines.index(head) + 1], run
    assert "1 node online." in run.out, run


def _wait_children(w, n, exclude=(), timeout=10.0):
    def check():
        pids = child_pids(w.pid)
        return pids if len(pids) == n and not set(pids) & set(exclude) else None
    return wait_until(check, timeout=timeout,
                      message=f"node {w.pid} does not have {n} children (other than "
                              f"{sorted(exclude)}): {child_pids(w.pid)}")


def _running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _held(broker, queue):
    """How many entries of ``queue`` nodes hold (delivered, not acknowledged)."""
    total = 0
    for band in range(10):
        stream = f"multiq:q:{{{queue}}}:{band}"
        if broker.exists(stream):
            total += int(broker.xpending(stream, "multiq")["pending"])
    return total


def _run_times(rec, tags):
    return sorted(float(r[3]) for tag in tags for r in recorded(rec, tag, "run"))


# -- rate_limit --------------------------------------------------------------------------


def test_rate_limit_cli_slows_the_next_tasks(nodes, client, rec, env):
    name = node("rl")
    nodes("rl")
    run = cli(env, "control", "rate_limit", TASK("record"), "2/s", "-d", name)
    _ok(run, name, "rate limit")

    tags = [f"rl-{i}" for i in range(6)]
    wait_results([client.send_task(TASK("record"), args=[t], queue="rl") for t in tags], 20)
    times = _run_times(rec, tags)
    assert len(times) == 6
    assert times[-1] - times[0] >= 2.0, f"6 tasks at 2/s ran within {times[-1] - times[0]:.2f}s"

    bad = cli(env, "control", "rate_limit", TASK("record"), "lots", "-d", name)
    assert f"->  {name}: ERROR" in bad.out, bad
    assert bad.code == 1, bad  # an error reply fails the command (scripts see it)
    unknown = cli(env, "control", "rate_limit", "sysq_control.nope", "2/s", "-d", name)
    assert f"->  {name}: ERROR" in unknown.out, unknown
    assert unknown.code == 1, unknown
    as_json = cli(env, "control", "rate_limit", TASK("record"), "lots", "-d", name, "-j")
    assert as_json.code == 1, as_json


def test_rate_limit_python_api_and_lifting_it(nodes, client, rec):
    name = node("rl2")
    nodes("rl2")
    replies = client.control.rate_limit(TASK("record"), "2/s", destination=[name],
                                        reply=True)
    assert list(flat(replies)) == [name]
    assert "ok" in flat(replies)[name], replies
    tags = [f"rl2-a{i}" for i in range(6)]
    wait_results([client.send_task(TASK("record"), args=[t], queue="rl2") for t in tags], 20)
    times = _run_times(rec, tags)
    assert times[-1] - times[0] >= 2.0, times

    replies = client.control.rate_limit(TASK("record"), "0", destination=[name], reply=True)
    assert "ok" in flat(replies)[name], replies
    tags = [f"rl2-b{i}" for i in range(6)]
    wait_results([client.send_task(TASK("record"), args=[t], queue="rl2") for t in tags], 20)
    times = _run_times(rec, tags)
    assert times[-1] - times[0] < 1.0, f"the lifted limit still applies: {times}"


# -- time_limit ------------------------------------------------------------------------------


def test_time_limit_cli_hard_and_soft_on_prefork(nodes, client, rec, env):
    name = node("tl")
    w = nodes("tl")
    (kid,) = _wait_children(w, 1)
    run = cli(env, "control", "time_limit", TASK("stubborn"), "1", "2", "-d", name)
    _ok(run, name, "time limits set")

    began = time.monotonic()
    r = client.send_task(TASK("stubborn"), args=["tl-hard", 5], queue="tl")
    wait_results([r], timeout=10)
    took = time.monotonic() - began
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, TimeLimitExceeded), repr(r.result)
    with pytest.raises(TimeLimitExceeded):
        r.get(timeout=1)
    assert took < 4.0, took
    assert [x[1] for x in recorded(rec, "tl-hard")] == ["start", "soft"]  # never "end"
    (new,) = _wait_children(w, 1, exclude=[kid])

    run = cli(env, "control", "time_limit", TASK("soft_nap"), "1", "-d", name)
    _ok(run, name, "time limits set")
    began = time.monotonic()
    r = client.send_task(TASK("soft_nap"), args=["tl-soft", 5], queue="tl")
    assert r.get(timeout=10) == "soft"  # SoftTimeLimitExceeded raised inside the task
    assert time.monotonic() - began < 3.5
    assert [x[1] for x in recorded(rec, "tl-soft")] == ["start", "soft"]
    assert child_pids(w.pid) == [new]  # a soft limit costs the child nothing
    assert w.alive


# -- revoke ----------------------------------------------------------------------------------


def test_revoke_cli_of_a_queued_task_it_never_runs(nodes, client, rec, env):
    name = node("rv")
    nodes("rv")
    # long enough for the command line to start and the revoke to arrive, on a busy box
    first = client.send_task(TASK("nap"), args=["rv-first", 4], queue="rv")
    victim = client.send_task(TASK("record"), args=["rv-victim"], queue="rv")
    wait_until(lambda: recorded(rec, "rv-first", "start"), timeout=10)

    run = cli(env, "control", "revoke", victim.id, "-d", name)
    _ok(run, name, "revoked")
    assert victim.id in run.out
    wait_results([first, victim], timeout=15)
    assert first.status == "SUCCESS"
    assert victim.status == "REVOKED", (victim.status, victim.result)
    assert isinstance(victim.result, TaskRevokedError), repr(victim.result)
    after = client.send_task(TASK("record"), args=["rv-after"], queue="rv")
    assert after.get(timeout=10)
    assert recorded(rec, "rv-victim") == []
    body = client.control.inspect(destination=[name]).revoked()
    assert victim.id in body[name]


def test_revoke_of_a_task_prefetched_by_a_prefork_node_it_never_runs(
        nodes, client, rec, env, broker):
    name = node("rvp")
    nodes("rvp")
    first = client.send_task(TASK("nap"), args=["rvp-first", 2], queue="rvp")
    wait_until(lambda: recorded(rec, "rvp-first", "start"), timeout=10)
    victim = client.send_task(TASK("record"), args=["rvp-victim"], queue="rvp")
    wait_until(lambda: _held(broker, "rvp") == 2, timeout=10,
               message="the node did not prefetch the second task")

    run = cli(env, "control", "revoke", victim.id, "-d", name)
    _ok(run, name, "revoked")
    wait_results([first, victim], timeout=10)
    assert first.status == "SUCCESS"
    assert victim.status == "REVOKED", (victim.status, victim.result)
    assert recorded(rec, "rvp-victim") == []


@pytest.mark.parametrize("how, short", [("cli --terminate", "rt1"),
                                        ("cli terminate SIGKILL", "rt2"),
                                        ("python api", "rt3")])
def test_revoke_terminate_running_prefork_task(nodes, client, rec, env, how, short):
    name = node(short)
    w = nodes(short)
    (kid,) = _wait_children(w, 1)
    r = client.send_task(TASK("nap"), args=[f"{short}-long", 30], queue=short)
    wait_until(lambda: recorded(rec, f"{short}-long", "start"), timeout=10)
    assert int(recorded(rec, f"{short}-long", "start")[0][2]) == kid

    began = time.monotonic()
    if how == "cli --terminate":
        run = cli(env, "control", "revoke", r.id, "--terminate", "-d", name)
        _ok(run, name, f"terminated ['{r.id}']")
        assert not _running(kid), "the reply said terminated while the task's process ran"
    elif how == "cli terminate SIGKILL":
        run = cli(env, "control", "terminate", "SIGKILL", r.id, "-d", name)
        _ok(run, name, "revoked")
    else:
        replies = client.control.revoke(r.id, terminate=True, destination=[name], reply=True)
        assert list(flat(replies)) == [name]
        assert "ok" in flat(replies)[name], replies
    wait_results([r], timeout=10)
    assert r.status == "REVOKED", (r.status, r.result)
    assert time.monotonic() - began < 5
    assert isinstance(r.result, TaskRevokedError), repr(r.result)
    (new,) = _wait_children(w, 1, exclude=[kid])
    assert recorded(rec, f"{short}-long", "end") == []
    # the node goes on, with the new child
    after = client.send_task(TASK("record"), args=[f"{short}-next"], queue=short)
    assert after.get(timeout=10) == new
    assert w.alive


# -- pool size -------------------------------------------------------------------------------


def test_pool_grow_and_shrink_change_the_children(nodes, client, env):
    name = node("pg")
    w = nodes("pg")
    _wait_children(w, 2)

    run = cli(env, "control", "pool_grow", "1", "-d", name)
    _ok(run, name, "3")
    _wait_children(w, 3)
    stats = client.control.inspect(destination=[name]).stats()[name]
    assert stats["pool"]["max-concurrency"] == 3
    assert sorted(stats["pool"]["processes"]) == child_pids(w.pid)
    assert stats["prefetch_count"] == 12  # follows the pool: 3 x multiplier 4

    run = cli(env, "control", "pool_shrink", "2", "-d", name)
    _ok(run, name, "1")
    (kid,) = _wait_children(w, 1)

    def shrunk():  # the node reaps its retired children within its reader's 1 s tick
        stats = (client.control.inspect(destination=[name]).stats() or {}).get(name)
        return stats if stats and stats["pool"]["processes"] == [kid] else None

    stats = wait_until(shrunk, timeout=6, interval=0.1,
                       message="stats still lists the retired children")
    assert stats["pool"]["max-concurrency"] == 1
    assert stats["prefetch_count"] == 4

    replies = client.control.pool_grow(2, destination=[name], reply=True)
    assert "3" in flat(replies)[name]["ok"], replies
    kids = _wait_children(w, 3)
    rs = [client.send_task(TASK("record"), args=[f"pg-{i}"], queue="pg") for i in range(6)]
    pids = {r.get(timeout=10) for r in rs}
    assert pids <= set(kids)
    assert w.alive


def test_autoscale_cli_sets_bounds_and_grows_under_backlog(nodes, client, env):
    name = node("as")
    w = nodes("as")
    _wait_children(w, 1)
    run = cli(env, "control", "autoscale", "3", "1", "-d", name)
    _ok(run, name, "max=3")
    assert "min=1" in run.out
    grow = cli(env, "control", "pool_grow", "1", "-d", name)
    assert f"->  {name}: ERROR" in grow.out, grow  # refused under autoscale, as Celery
    for i in range(4):
        client.send_task(TASK("nap"), args=[f"as-{i}", 4], queue="as")
    _wait_children(w, 3, timeout=5)  # 4 waiting, max 3: it grows by two
    running = wait_until(
        lambda: len((client.control.inspect(destination=[name]).active() or {})
                    .get(name, [])) == 3, timeout=5, message="three tasks do not run at once")
    assert running
    assert len(child_pids(w.pid)) == 3  # never above max


# -- consumers --------------------------------------------------------------------------------


def test_add_consumer_then_cancel_consumer(nodes, client, rec, env, broker):
    name = node("cc")
    w = nodes("cc")
    other = nodes("cx")  # is not addressed: must not start consuming images
    img1 = client.send_task(TASK("record"), args=["cc-img1"], queue="images")

    run = cli(env, "control", "add_consumer", "images", "-d", name)
    _ok(run, name, "add consumer images")
    assert img1.get(timeout=10) == w.pid  # ran there (solo: in the node's own process)
    queues = client.control.inspect(destination=[name, node("cx")]).active_queues()
    assert [q["name"] for q in queues[name]] == ["cq", "images"]
    assert [q["name"] for q in queues[node("cx")]] == ["cx"]

    run = cli(env, "control", "cancel_consumer", "images", "-d", name)
    _ok(run, name, "no longer consuming from images")
    # a task on the node's own queue: the fetch after it no longer reads images
    assert client.send_task(TASK("record"), args=["cc-barrier"], queue="cq").get(timeout=10)
    img2 = client.send_task(TASK("record"), args=["cc-img2"], queue="images")
    assert client.send_task(TASK("record"), args=["cc-barrier2"], queue="cq").get(timeout=10)
    time.sleep(1.0)  # a negative: give a wrong fetch the time to happen
    assert img2.status == "PENDING"
    assert recorded(rec, "cc-img2") == []
    assert sum(broker.xlen(f"multiq:q:{{images}}:{b}") for b in range(10)) == 1
    queues = client.control.inspect(destination=[name]).active_queues()
    assert [q["name"] for q in queues[name]] == ["cq"]

    last = cli(env, "control", "cancel_consumer", "cq", "-d", name)
    assert f"->  {name}: ERROR" in last.out, last  # the last queue is kept
    assert w.alive and other.alive
    ran = [r[0] for r in records(rec) if r[0].startswith("cc-")]
    assert ran == ["cc-img1", "cc-barrier", "cc-barrier2"]


# -- shutdown -----------------------------------------------------------------------------------


def test_shutdown_cli_stops_only_the_addressed_node(nodes, client, env):
    a, b = nodes("sd1"), nodes("sd2")
    both = [node("sd1"), node("sd2")]
    run = cli(env, "control", "shutdown", "-d", node("sd1"))
    _ok(run, node("sd1"), "shutting down")
    assert a.wait(timeout=15) == 0
    assert b.alive
    assert client.control.inspect(destination=both).ping() == {node("sd2"): {"ok": "pong"}}
    status = cli(env, "status")
    assert status.code == 0, status
    assert f"->  {node('sd1')}:" not in status.out, status
    assert f"->  {node('sd2')}: OK" in status.out, status

    replies = client.control.shutdown(destination=[node("sd2")], reply=True)
    assert list(flat(replies)) == [node("sd2")]
    assert b.wait(timeout=15) == 0


# -- commands of the app's own (@control_command / @inspect_command) ----------------------


@pytest.mark.parametrize("short", ["cu", "cup"])
def test_an_apps_own_commands_run_on_the_node_from_the_cli_and_the_api(short, env, client,
                                                                     nodes):
    nodes(short)
    name = node(short)
    _ok(cli(env, "control", "add_tokens", "3", "-d", name), name, f"3 tokens at {name}")
    _ok(cli(env, "control", "add_tokens", "-d", name), name, f"4 tokens at {name}")
    replies = client.control.broadcast("add_tokens", {"n": 2}, destination=[name], reply=True)
    assert replies == [{name: {"ok": f"6 tokens at {name}"}}]
    run = cli(env, "inspect", "tokens", "a", "b", "-d", name, "-j")
    assert run.code == 0, run
    assert json.loads(run.out) == {name: {"tokens": 6, "names": ["a", "b"],
                                          "queues": [short]}}
    run = cli(env, "inspect", "token_count", "-d", name, "-j")  # its alias
    assert run.code == 0 and json.loads(run.out)[name]["tokens"] == 6, run


def test_an_apps_own_command_checks_its_arguments_and_reports_its_errors(env, nodes):
    nodes("cu")
    name = node("cu")
    bad = cli(env, "control", "add_tokens", "many", "-d", name)
    assert bad.code == 2 and "bad n 'many'" in bad.err, bad
    extra = cli(env, "control", "add_tokens", "1", "2", "-d", name)
    assert extra.code == 2 and "usage: multiq control add_tokens [N=1]" in extra.err, extra
    unknown = cli(env, "control", "nonsense", "-d", name)
    assert unknown.code == 2 and "'add_tokens'" in unknown.err and "'revoke'" in unknown.err
    assert "'tokens'" not in unknown.err, unknown  # an inspect command is not a control one
    boom = cli(env, "control", "explode", "-d", name)
    assert boom.code == 1, boom
    assert f"->  {name}: ERROR" in boom.out and "RuntimeError: boom from a custom command" \
        in boom.out, boom
    assert nodes("cu").alive
