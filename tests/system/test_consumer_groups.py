"""Nodes that stop leave no consumer behind in the queue's consumer groups."""
from __future__ import annotations

import pytest

APP = '''
import os
from multiq import MultiQ

app = MultiQ("cg", broker=os.environ["MULTIQ_BROKER_URL"],
             backend=os.environ["MULTIQ_RESULT_BACKEND"])


@app.task
def echo(x):
    return x
'''

pytestmark = pytest.mark.system


def _consumers(client):
    names = set()
    for band in range(10):
        stream = f"multiq:q:{{multiq}}:{band}"
        if client.exists(stream):
            for info in client.xinfo_consumers(stream, "multiq"):
                names.add(info["name"].decode())
    return names


@pytest.mark.timeout(60)
def test_stopped_nodes_leave_the_groups(tmp_path, start_worker, make_app, redis_client):
    (tmp_path / "cg.py").write_text(APP)
    client = make_app("cg")
    for round_ in range(3):  # restarts must not pile up consumers
        worker = start_worker("cg", hostname=f"cg{round_}@%h")
        assert client.send_task("cg.echo", args=[round_]).get(timeout=10) == round_
        assert any(name.startswith(f"cg{round_}@") for name in _consumers(redis_client))
        assert worker.stop() == 0
        assert _consumers(redis_client) == set()
