"""A node's settings are one frozen value, resolved from app.conf and the arguments."""
from __future__ import annotations

import dataclasses

import pytest

from multiq import MultiQ, patching
from multiq.exceptions import ImproperlyConfigured
from multiq.worker.config import NodeConfig
from multiq.worker.node import NodeControl
from multiq.worker.worker import Worker


def _app(**conf: object) -> MultiQ:
    app = MultiQ("cfg", broker="redis://127.0.0.1:1/0", set_as_current=False)
    for name, value in conf.items():
        setattr(app.conf, name, value)
    return app


def test_defaults_come_from_the_app_and_arguments_win() -> None:
    app = _app(worker_concurrency=3, worker_prefetch_multiplier=2, worker_pool="threads",
               worker_max_tasks_per_child=7, worker_soft_shutdown_timeout=4)
    config = NodeConfig.resolve(app, hostname="w1@box")
    assert (config.hostname, config.pool, config.concurrency) == ("w1@box", "threads", 3)
    assert config.queues == (app.conf.task_default_queue,)
    assert (config.prefetch_multiplier, config.prefetch) == (2, 6)
    assert (config.max_tasks_per_child, config.soft_shutdown_timeout) == (7, 4.0)
    assert config.consumer_name.startswith("w1@box|")
    given = NodeConfig.resolve(app, hostname="w2@box", concurrency=5, pool="solo",
                               prefetch_multiplier=0, max_tasks_per_child=1)
    assert (given.pool, given.concurrency, given.prefetch_multiplier) == ("solo", 1, 1)
    assert given.max_tasks_per_child == 1


def test_pool_names_and_queues_are_checked(monkeypatch) -> None:
    app = _app()
    assert NodeConfig.resolve(app, pool="Processes").pool == "prefork"
    with pytest.raises(ImproperlyConfigured,
                       match=r"Unknown pool 'tornado'; choose prefork, solo, threads or gevent"):
        NodeConfig.resolve(app, pool="tornado")
    assert NodeConfig.resolve(app, pool="gevent").pool == "gevent"
    with monkeypatch.context() as m:
        m.setattr(patching, "_installed", lambda name: name != "eventlet")
        with pytest.raises(ImproperlyConfigured, match=r"eventlet is deprecated upstream"):
            NodeConfig.resolve(app, pool="eventlet")
    if patching._installed("eventlet"):
        assert NodeConfig.resolve(app, pool="EVENTLET").pool == "eventlet"
    config = NodeConfig.resolve(app, queues=["a", "b", "c"], exclude_queues=["b"])
    assert config.queues == ("a", "c")
    with pytest.raises(ImproperlyConfigured, match="No queues left"):
        NodeConfig.resolve(app, queues=["a"], exclude_queues=["a"])


def test_the_config_is_frozen() -> None:
    config = NodeConfig.resolve(_app(), autoscale=(4, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.concurrency = 9  # type: ignore[misc]
    assert config.autoscale == (4, 1)


def test_worker_reads_its_config_and_keeps_unknown_keywords() -> None:
    node = Worker(_app(), hostname="w3@box", pool="threads", concurrency=2, beat=True,
                  autoscale=(3, 1), something_else=42)
    assert node.config.beat and node.config.autoscale == (3, 1)
    assert (node.hostname, node.pool_kind, node.concurrency, node.prefetch) == \
        ("w3@box", "threads", 2, 2 * node.config.prefetch_multiplier)
    assert node.extra == {"something_else": 42}
    assert node.autoscale == (3, 1)


def test_autoscale_set_at_run_time_leaves_the_config_alone() -> None:
    node = Worker(_app(), pool="threads", concurrency=2)
    control = NodeControl(node)
    assert not control.autoscaling()
    try:
        assert control.set_autoscale(5, 2) == (5, 2)
        assert node.autoscale == (5, 2)
        assert control.autoscaling() and node.config.autoscale is None
    finally:
        for part in node.components:
            part.stop()
