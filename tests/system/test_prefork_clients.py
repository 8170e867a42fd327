"""The clients a prefork node builds for its children before it forks: the children use
them (replaced children too), and a ``worker_process_init`` receiver that changes the
backend's settings gets clients built from its own settings in that child."""
from __future__ import annotations

import pytest

APP = '''
import os

from multiq import MultiQ, signals

app = MultiQ("pfclients", broker=os.environ["MULTIQ_BROKER_URL"],
             backend=os.environ["MULTIQ_RESULT_BACKEND"], result_expires=3600)


@signals.worker_process_init.connect
def _child_settings(sender=None, **kwargs):
    if os.environ.get("PFC_EXPIRES"):
        app.conf.result_expires = int(os.environ["PFC_EXPIRES"])


@app.task
def pid():
    return os.getpid()
'''

pytestmark = pytest.mark.system


@pytest.mark.timeout(90)
@pytest.mark.parametrize("expires", [None, 77])
def test_children_store_results_with_the_settings_in_force_in_them(
        expires, tmp_path, make_app, start_worker):
    (tmp_path / "pfclients.py").write_text(APP)
    app = make_app("pfclients")
    pid = app.task(name="pfclients.pid")(lambda: None)
    env = {"PFC_EXPIRES": str(expires)} if expires else {}
    node = start_worker("pfclients", "-c", "2", "--max-tasks-per-child", "2",
                        pool="prefork", cwd=tmp_path, env=env)
    results = [pid.delay() for _ in range(8)]  # four children at least: two replaced
    pids = [r.get(timeout=30) for r in results]
    assert node.pid not in pids and len(set(pids)) >= 4, pids
    client = app.backend.client
    ttls = [client.ttl(app.backend.key(r.id)) for r in results]
    if expires:  # the receiver's setting, in every child, first and replaced
        assert all(0 < ttl <= expires for ttl in ttls), ttls
    else:  # the node's clients, as built before the fork
        assert all(ttl > 3000 for ttl in ttls), ttls
