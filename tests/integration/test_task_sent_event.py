"""``task_send_sent_event``: each send writes a ``task-sent`` event to the events stream."""
from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(20)


def test_each_send_writes_a_task_sent_event_when_asked(make_app: Any, redis_client: Any) -> None:
    app = make_app(task_send_sent_event=True)
    add = app.task(name="ev.add")(lambda x, y: x + y)
    r = add.apply_async((1, 2), countdown=30, queue="evq")
    stream = app.broker.keys.events
    [(_, fields)] = redis_client.xrange(stream)
    event = json.loads(fields[b"e"])
    assert (event["type"], event["uuid"], event["name"], event["queue"]) == (
        "task-sent", r.id, "ev.add", "evq")
    assert event["args"] == "[1, 2]" and event["eta"] > event["timestamp"]
    quiet = make_app()
    quiet.task(name="ev.add")(lambda x, y: x + y).delay(1, 2)
    assert len(redis_client.xrange(stream)) == 1  # off by default
