"""``multiq worker --purge`` (Celery's, also ``--discard``): what waits in the node's own
queues is erased before it consumes; other queues keep theirs."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

APP = textwrap.dedent("""
    from multiq import MultiQ

    app = MultiQ("purging")


    @app.task
    def add(x, y):
        return x + y
""")


@pytest.mark.parametrize("flag", ["--purge", "--discard"])
def test_purge_erases_the_nodes_queues_before_it_starts(
        tmp_path: Path, start_worker, make_app, flag: str) -> None:
    (tmp_path / "purging.py").write_text(APP)
    client = make_app("purging")
    old = [client.send_task("purging.add", (i, i), queue="mine") for i in range(5)]
    other = client.send_task("purging.add", (1, 1), queue="theirs")

    worker = start_worker("purging", flag, "-Q", "mine", cwd=tmp_path)
    assert "purge: erased 5 messages from mine" in worker.log(), worker.log()
    fresh = client.send_task("purging.add", (2, 3), queue="mine")
    assert fresh.get(timeout=10) == 5  # it consumes once the old ones are gone
    assert [r.state for r in old] == ["PENDING"] * 5  # never ran
    assert client.broker.client.xlen("multiq:q:{theirs}:0") == 1  # not its queue
    assert other.state == "PENDING"
