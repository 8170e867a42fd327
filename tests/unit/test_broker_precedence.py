"""Where the broker and result URLs come from, in this order, on the worker and the client
alike (Celery's order): ``-b`` / ``--result-backend``, then ``MULTIQ_BROKER_URL`` /
``MULTIQ_RESULT_BACKEND``, then the app's configuration (``broker=``, ``broker_url``)."""
from __future__ import annotations

import pickle

import pytest

from multiq.app import MultiQ
from multiq.cli.base import load_app
from multiq.contrib.testing.app import configured, settings_for
from multiq.exceptions import BrokerNotConfigured

CODE = "redis://from-code:6379/1"
ENV = "redis://from-env:6379/1"
FLAG = "redis://from-flag:6379/1"


def test_the_variable_wins_over_the_apps_own_url(monkeypatch: pytest.MonkeyPatch) -> None:
    app = MultiQ("p", broker=CODE, backend="redis://from-code:6379/2")
    assert app.conf.broker_url == CODE
    monkeypatch.setenv("MULTIQ_BROKER_URL", ENV)
    monkeypatch.setenv("MULTIQ_RESULT_BACKEND", "redis://from-env:6379/2")
    assert app.conf.broker_url == ENV and app.conf["broker_url"] == ENV
    assert app.conf.result_backend == "redis://from-env:6379/2"
    assert app.broker.url == ENV  # made lazily: no connection yet
    assert app.conf.table()["broker_url"] == ENV  # what report and the banner show
    monkeypatch.setenv("MULTIQ_BROKER_URL", "")  # empty: not set
    assert app.conf.broker_url == CODE


def test_the_command_line_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIQ_BROKER_URL", ENV)
    app = MultiQ("p", broker=CODE)
    app.conf.pin("broker_url", FLAG)
    app.conf.broker_url = CODE  # a configuration read later does not undo -b
    assert app.conf.broker_url == FLAG
    assert pickle.loads(pickle.dumps(app.conf)).broker_url == FLAG  # a spawned child's copy
    assert app.conf.copy().broker_url == FLAG
    app.conf.unpin("broker_url")
    assert app.conf.broker_url == ENV


def test_load_app_pins_the_broker_option(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "prec_app.py").write_text(
        f"from multiq import MultiQ\napp = MultiQ('prec', broker={CODE!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MULTIQ_BROKER_URL", ENV)
    app = load_app({"app": "prec_app", "broker": FLAG})
    assert app.conf.broker_url == FLAG


def test_a_test_app_keeps_the_test_redis_whatever_the_variable_says(
        monkeypatch: pytest.MonkeyPatch, redis_server) -> None:
    monkeypatch.setenv("MULTIQ_BROKER_URL", ENV)
    url = redis_server.url(0)
    project = MultiQ("proj", broker=CODE)
    with configured(url, settings_for(url, {})) as app:
        assert app.conf.broker_url.startswith(url.rstrip("/0"))
        assert app.conf.broker_url != ENV
    with configured(url, settings_for(url, {}), app=project):
        assert project.conf.broker_url != ENV
    assert project.conf.broker_url == ENV  # restored: the variable rules again


def test_no_broker_anywhere_names_the_three_ways() -> None:
    app = MultiQ("nothing")
    with pytest.raises(BrokerNotConfigured) as info:
        app.broker  # noqa: B018 - the property connects
    message = str(info.value)
    for way in ("-b", "MULTIQ_BROKER_URL", "broker_url"):
        assert way in message
