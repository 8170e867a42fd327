"""``multiq purge|result|call|report|deadletter`` in-process, against the session's Redis."""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from click.testing import CliRunner, Result

from multiq.backends.base import exception_to_dict, make_doc
from multiq.cli import cli
from multiq.keys import GROUP, Keys
from multiq.message import Message

APP_MODULE = '''
from multiq import MultiQ

app = MultiQ("proj", broker={broker!r}, backend={backend!r})


@app.task(name="proj.add")
def add(x, y):
    return x + y
'''

KEYS = Keys()
GARBAGE = b"\xff\x00not an envelope"


class Runner:
    """Invokes the CLI with ``-A <module>`` before (default) or after the sub-command."""

    def __init__(self, module: str) -> None:
        self.module = module

    def __call__(self, *args: str, input: Any = None, app_after: bool = False,
                 code: int = 0) -> Result:
        argv = [*args, "-A", self.module] if app_after else ["-A", self.module, *args]
        result = CliRunner().invoke(cli, argv, input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return result


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str,
        backend_url: str) -> Iterator[Runner]:
    name = f"admin_app_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE.format(broker=redis_url, backend=backend_url))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        yield Runner(name)
    finally:
        module = sys.modules.pop(name, None)
        if module is not None:
            module.app.close()


@pytest.fixture
def client_app(make_app: Any) -> Any:
    return make_app("client")


def stream_entries(redis_client: Any, queue: str = "multiq", band: int = 0) -> List[Any]:
    return redis_client.xrange(KEYS.stream(queue, band))


def waiting(redis_client: Any, queue: str = "multiq") -> int:
    return sum(redis_client.xlen(s) for s in KEYS.streams(queue)) + \
        redis_client.zcard(KEYS.delayed(queue))


# -- purge -----------------------------------------------------------------------------


def test_purge_counts_waiting_and_delayed_and_keeps_groups(run, client_app, redis_client):
    client_app.broker.declare(["multiq", "other"])
    for i in range(3):
        client_app.send_task("proj.add", [i, i], priority=i * 4)
    client_app.send_task("proj.add", [1, 1], queue="other")
    client_app.send_task("proj.add", [2, 2], countdown=60)
    out = run("purge", "-f").output
    assert out.strip() == "Purged 5 messages from 2 known task queues."
    assert waiting(redis_client) == waiting(redis_client, "other") == 0
    assert redis_client.hlen(KEYS.delayed_bodies("multiq")) == 0
    for stream in KEYS.streams("multiq"):
        assert [g["name"] for g in redis_client.xinfo_groups(stream)] == [GROUP.encode()]


def test_purge_skips_a_queue_name_that_is_not_utf8(run, client_app, redis_client):
    client_app.send_task("proj.add", [1, 1])
    redis_client.sadd(KEYS.queues, b"\xff\xfe")
    result = run("purge", "-f")
    assert result.stdout.strip() == "Purged 1 message from 1 known task queue."
    assert waiting(redis_client) == 0


def test_purge_only_given_queues_with_options_after_command(run, client_app, redis_client):
    client_app.send_task("proj.add", [1, 1])
    client_app.send_task("proj.add", [1, 1], queue="other")
    client_app.send_task("proj.add", [1, 1], queue="third")
    out = run("purge", "-Q", "other,third", "--force", app_after=True).output
    assert "Purged 2 messages from 2 known task queues." in out
    assert waiting(redis_client) == 1
    assert "No messages purged from 1 queue." in run("purge", "-f", "-Q", "other").output
    client_app.send_task("proj.add", [1, 1], queue="third")
    assert "Purged 1 message from 1 known" in run("purge", "-f", "-X", "multiq,other").output
    assert waiting(redis_client) == 1


def test_purge_refused_leaves_messages(run, client_app, redis_client):
    client_app.send_task("proj.add", [1, 1])
    result = run("purge", input="n\n", code=1)
    assert "WARNING: This will remove all tasks from queue(s): multiq." in result.output
    assert "There is no undo for this operation!" in result.output
    assert "Are you sure? [y/N]" in result.output
    assert waiting(redis_client) == 1
    assert "Purged 1 message from 1 known task queue." in run("purge", input="y\n").output


def test_purge_keeps_entries_held_by_a_consumer(run, client_app, redis_client):
    client_app.broker.declare(["multiq"])
    ids = [client_app.send_task("proj.add", [i, i]).id for i in range(3)]
    stream = KEYS.stream("multiq", 0)
    held = redis_client.xreadgroup(GROUP, "w1@host|1", {stream: ">"}, count=1)
    held_id = held[0][1][0][0]
    assert "Purged 2 messages from 1 known task queue." in run("purge", "-f").output
    left = stream_entries(redis_client)
    assert [entry_id for entry_id, _ in left] == [held_id]
    assert ids[0].encode() in left[0][1][b"m"]
    assert redis_client.xpending(stream, GROUP)["pending"] == 1


# -- result ----------------------------------------------------------------------------


def test_result_success_failure_pending_and_json(run, client_app):
    backend = client_app.backend
    backend.store("ok-1", make_doc("ok-1", "SUCCESS", {"sum": 4}))
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad input\n'
    backend.store("bad-1", make_doc("bad-1", "FAILURE", exception_to_dict(ValueError("bad input")),
                                    traceback=tb))
    assert run("result", "ok-1").output == "{'sum': 4}\n"
    assert run("result", "bad-1").output == "ValueError: bad input\n"
    assert run("result", "bad-1", "--traceback").output == tb
    assert run("result", "nobody-knows").output == "PENDING\n"
    doc = json.loads(run("result", "ok-1", "-j").output)
    assert doc["status"] == "SUCCESS" and doc["result"] == {"sum": 4}
    assert doc["task_id"] == "ok-1" and doc["date_done"]


# -- call ------------------------------------------------------------------------------


def test_call_sends_by_name_and_prints_id(run, redis_client):
    out = run("call", "proj.add", "--args", "[2, 3]", "--kwargs", '{"z": 1}').output
    task_id = out.strip()
    assert str(uuid.UUID(task_id)) == task_id
    [(_, fields)] = stream_entries(redis_client)
    env = json.loads(fields[b"m"])
    assert (env["id"], env["task"], env["args"], env["kwargs"]) == (
        task_id, "proj.add", [2, 3], {"z": 1})
    assert fields[b"n"] == b"0"


@pytest.mark.parametrize("option, value, why", [
    ("--args", "[2,", "not valid JSON"),
    ("--args", '{"x": 1}', "not a JSON array"),
    ("--kwargs", "[1]", "not a JSON object"),
    ("--eta", "tomorrow", "not an ISO 8601 date-time"),
])
def test_call_rejects_bad_input_and_sends_nothing(run, redis_client, option, value, why):
    result = run("call", "proj.add", option, value, code=2)
    assert why in result.output
    assert redis_client.keys("*") == []


def test_call_countdown_lands_in_delayed_set(run, redis_client):
    task_id = run("call", "proj.add", "-a", "[1, 1]", "--countdown", "60",
                  "--queue", "q2", "--priority", "5").output.strip()
    [(member, due)] = redis_client.zrange(KEYS.delayed("q2"), 0, -1, withscores=True)
    assert member == f"{task_id}:0".encode()
    assert 50 < due - time.time() <= 60
    body = redis_client.hget(KEYS.delayed_bodies("q2"), member)
    assert body.startswith(b"5,0|") and json.loads(body[4:])["args"] == [1, 1]
    assert waiting(redis_client, "q2") == 1 and stream_entries(redis_client, "q2", 5) == []


def test_call_eta_and_expires(run, redis_client):
    task_id = run("call", "proj.add", "--eta", "2999-01-01T00:00:00Z",
                  "--expires", "3600").output.strip()
    body = redis_client.hget(KEYS.delayed_bodies("multiq"), f"{task_id}:0")
    env = json.loads(body.split(b"|", 1)[1])
    assert env["eta"] == pytest.approx(32472144000.0)
    assert 3500 < env["expires"] - time.time() <= 3600


# -- report ----------------------------------------------------------------------------


def test_report_versions_and_settings(run, redis_url):
    out = run("report").output
    for word in ("multiq:", "py:", "redis-py:", "hiredis:", "platform -> system:",
                 "app      -> proj"):
        assert word in out
    assert "redis-server:" in out or "valkey-server:" in out
    assert f"broker_url: {redis_url!r}" in out


def test_report_masks_password_and_survives_unreachable_server(run, redis_url):
    secret_url = redis_url.replace("redis://", "redis://:s3cret@")
    out = run("-b", secret_url, "report").output
    assert "s3cret" not in out
    assert "redis://:**@127.0.0.1" in out
    assert "server:unreachable" in out or "redis-server:" in out
    out = run("report", "-b", "redis://127.0.0.1:1/0", app_after=True).output
    assert "server:unreachable (ConnectionError" in out


# -- deadletter ------------------------------------------------------------------------


def dead(redis_client: Any, entry_id: str, data: bytes, queue: str = "multiq", band: int = 0,
         reason: str = "rejected: boom") -> str:
    fields = {"m": data, "reason": reason, "band": band, "time": time.time()}
    return redis_client.xadd(KEYS.deadletter(queue), fields, id=entry_id).decode()


@pytest.fixture
def letters(redis_client: Any) -> List[str]:
    """Entry ids distinct across queues, so bare ids are unambiguous."""
    good = Message(id="t-1", task="proj.add", args=[1, 2], kwargs={"k": 3}, priority=5).encode()
    other = Message(id="t-2", task="proj.mul", args=[3], queue="other").encode()
    return [
        dead(redis_client, "1700000000000-0", good, band=5),
        dead(redis_client, "1700000000001-0", GARBAGE, reason="undecodable message"),
        dead(redis_client, "1700000000002-0", other, queue="other", band=9,
             reason="delivered 5 times"),
    ]


def test_deadletter_list(run, letters):
    lines = run("deadletter", "list").stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:5] == [letters[0], "multiq", "proj.add", "t-1", "rejected:"]
    assert lines[1].split()[:4] == [letters[1], "multiq", "<undecodable>", "-"]
    assert "undecodable message" in lines[1]
    assert lines[2].split()[:4] == [letters[2], "other", "proj.mul", "t-2"]
    only = run("deadletter", "list", "-Q", "other", app_after=True).stdout.splitlines()
    assert [line.split()[0] for line in only] == [letters[2]]
    limited = run("deadletter", "list", "--limit", "1")
    assert len(limited.stdout.splitlines()) == 1 and "1 of 3 shown" in limited.stderr
    rows = json.loads(run("deadletter", "list", "-j").stdout)
    assert [(r["entry"], r["queue"], r["task"], r["id"], r["band"]) for r in rows] == [
        (letters[0], "multiq", "proj.add", "t-1", 5), (letters[1], "multiq", None, None, 0),
        (letters[2], "other", "proj.mul", "t-2", 9)]


def test_deadletter_show(run, letters):
    out = run("deadletter", "show", f"multiq/{letters[0]}").output
    assert f"entry:     multiq/{letters[0]}" in out
    for line in ("task:      proj.add", "id:        t-1", "args:      [1, 2]",
                 'kwargs:    {"k": 3}', "reason:    rejected: boom", "band:      5"):
        assert line in out
    garbage = run("deadletter", "show", letters[1]).output
    assert f"data:      {GARBAGE!r}" in garbage
    doc = json.loads(run("deadletter", "show", letters[2], "-j").output)
    assert doc["entry"] == f"other/{letters[2]}" and doc["args"] == [3]
    assert "No dead-letter entry 1-1" in run("deadletter", "show", "1-1", code=1).output
    assert "Not a dead-letter entry id" in run("deadletter", "show", "x/nope", code=2).output


def test_deadletter_show_body_refused_by_accept_content(run, redis_client):
    pickled = Message(id="t-3", task="proj.add", args=[1]).encode("pickle")
    entry_id = dead(redis_client, "1700000000003-0", pickled, queue="third")
    out = run("deadletter", "show", entry_id).output
    assert "id:        t-3" in out and "args:" not in out
    assert "body:      application/x-python-serialize" in out and "not decoded" in out


def test_deadletter_bare_id_in_two_queues_is_ambiguous(run, letters, redis_client):
    redis_client.xadd(KEYS.deadletter("third"), {"m": GARBAGE, "band": 0}, id=letters[0])
    result = run("deadletter", "show", letters[0], code=1)
    assert f"multiq/{letters[0]}, third/{letters[0]}" in result.stderr
    assert "proj.add" in run("deadletter", "show", f"multiq/{letters[0]}").output
    assert "proj.add" in run("deadletter", "show", letters[0], "-Q", "multiq,other").output


def test_deadletter_requeue_by_id(run, client_app, letters, redis_client):
    client_app.broker.declare(["multiq"])
    out = run("deadletter", "requeue", f"multiq/{letters[0]}").output
    assert out.strip() == "Requeued 1 message."
    assert redis_client.xlen(KEYS.deadletter("multiq")) == 1
    [delivery] = client_app.broker.fetch("w1@host|1", ["multiq"], 10)
    assert (delivery.band, delivery.redeliveries) == (5, 0)
    assert json.loads(delivery.data)["id"] == "t-1"
    result = run("deadletter", "requeue", letters[0], "other/1-1", code=1)
    assert "Requeued 0 messages." in result.stdout
    assert "no dead-letter entry" in result.stderr
    run("deadletter", "requeue", code=2)


def test_deadletter_requeue_all_restores_bands(run, letters, redis_client):
    out = run("deadletter", "requeue", "--all", "-Q", "other").output
    assert out.strip() == "Requeued 1 message."
    [(_, fields)] = stream_entries(redis_client, "other", 9)
    assert json.loads(fields[b"m"])["id"] == "t-2" and fields[b"n"] == b"0"
    out = run("deadletter", "requeue", "--all").output
    assert out.strip() == "Requeued 2 messages."
    [(_, band5)] = stream_entries(redis_client, "multiq", 5)
    [(_, band0)] = stream_entries(redis_client, "multiq", 0)
    assert json.loads(band5[b"m"])["id"] == "t-1" and band5[b"n"] == b"0"
    assert band0 == {b"m": GARBAGE, b"n": b"0"}
    assert redis_client.xlen(KEYS.deadletter("multiq")) == 0
    assert redis_client.xlen(KEYS.deadletter("other")) == 0


@pytest.mark.timeout(30)
def test_deadletter_requeue_all_moves_each_entry_once_while_they_come_back(
        client_app, letters, redis_client, monkeypatch):
    """A node serving the queue may dead-letter a requeued message again at once: requeue
    all moves what was there when it started, never what came back meanwhile."""
    from multiq.broker.deadletter import DeadLetters

    letters_of = DeadLetters(client_app.broker)
    move = letters_of._move
    came_back: List[str] = []

    def move_and_come_back(queue: str, entry_ids: Any) -> List[str]:
        moved = move(queue, entry_ids)
        for _ in moved:  # dead-lettered again by the node, as a new entry
            came_back.append(dead(redis_client, "*", GARBAGE, queue=queue))
        return moved

    monkeypatch.setattr(letters_of, "_move", move_and_come_back)
    assert letters_of.requeue_all(["multiq"]) == 2
    assert len(came_back) == 2
    left = [e.decode() for e, _ in redis_client.xrange(KEYS.deadletter("multiq"))]
    assert left == came_back  # they wait for the next requeue
    assert redis_client.xlen(KEYS.deadletter("other")) == 1


def test_deadletter_purge(run, letters, redis_client):
    result = run("deadletter", "purge", input="n\n", code=1)
    assert "This will delete 3 dead-lettered messages" in result.output
    assert redis_client.xlen(KEYS.deadletter("multiq")) == 2
    out = run("deadletter", "purge", "-Q", "other", "-f").output
    assert "Purged 1 dead-lettered message from 1 queue." in out
    assert redis_client.xlen(KEYS.deadletter("multiq")) == 2
    out = run("deadletter", "purge", input="y\n").output
    assert "Purged 2 dead-lettered messages from 1 queue." in out
    assert redis_client.xlen(KEYS.deadletter("multiq")) == 0


@pytest.fixture
def garbage_letters(redis_client: Any) -> List[str]:
    """Dead-letter entries no worker would write: fields missing or of the wrong kind, a
    body that is JSON but not an envelope; and a dead-letter key that is not a stream."""
    key = KEYS.deadletter("junk")
    rows = [
        {"reason": "no message at all"},
        {"m": json.dumps({"id": 5, "task": ["proj.add"]}), "band": "x", "time": "1e300"},
        {"m": json.dumps({"id": "t-9", "task": "proj.add", "retries": "x", "args": [],
                          "sent": 1e300}), "time": "nan"},
        {"m": json.dumps({"id": "t-10", "task": "proj.add", "body": "!!", "ce": "bogus"}),
         "reason": b"\xff\xfe"},
        {"m": "[1, 2]"},
    ]
    ids = [redis_client.xadd(key, fields, id=f"1700000001{i:03d}-0").decode()
           for i, fields in enumerate(rows)]
    redis_client.set(KEYS.deadletter("notastream"), "garbage")
    return ids


def test_deadletter_list_and_show_survive_garbage_entries(run, garbage_letters):
    lines = run("deadletter", "list", "-Q", "junk").stdout.splitlines()
    assert [line.split()[0] for line in lines] == garbage_letters
    assert all("<undecodable>" in line for line in lines[:2]), lines
    assert "proj.add" in lines[2]
    rows = json.loads(run("deadletter", "list", "-j").stdout)  # every queue, the bad key too
    assert [r["entry"] for r in rows] == garbage_letters
    assert rows[1]["task"] is None and rows[1]["band"] == 0 and rows[1]["time"] is None
    for entry in garbage_letters:
        out = run("deadletter", "show", f"junk/{entry}").output
        assert f"entry:     junk/{entry}" in out
    out = run("deadletter", "show", garbage_letters[2]).output
    assert "id:        t-9" in out and "not decoded" in out
    doc = json.loads(run("deadletter", "show", garbage_letters[3], "-j").output)
    assert doc["id"] == "t-10" and "not decoded" in doc["body"]


def test_deadletter_requeue_survives_garbage_entries(run, client_app, garbage_letters,
                                                      redis_client):
    empty, envelope = garbage_letters[0], garbage_letters[2]
    result = run("deadletter", "requeue", f"junk/{empty}", f"junk/{envelope}", code=1)
    assert "Requeued 1 message." in result.stdout
    assert f"junk/{empty}" in result.stderr  # said, and kept: nothing to requeue
    assert [e.decode() for e, _ in redis_client.xrange(KEYS.deadletter("junk"))] == \
        [empty, *garbage_letters[1:2], *garbage_letters[3:]]
    out = run("deadletter", "requeue", "--all").output
    assert "Requeued 3 messages." in out
    assert [e.decode() for e, _ in redis_client.xrange(KEYS.deadletter("junk"))] == [empty]
