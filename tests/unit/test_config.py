"""Unit tests for multiq.config: defaults, the Settings mapping, humanize, loading."""
from __future__ import annotations

import importlib
import pickle
import sys
import textwrap
import types
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

try:
    import multiq  # noqa: F401
except ImportError:  # pragma: no cover - the package __init__ needs modules not written yet
    _pkg = types.ModuleType("multiq")
    _pkg.__path__ = [str(Path(__file__).resolve().parents[2] / "multiq")]
    sys.modules["multiq"] = _pkg

config = importlib.import_module("multiq.config")
exceptions = importlib.import_module("multiq.exceptions")
Settings = config.Settings
UnknownSettingWarning = config.UnknownSettingWarning


@pytest.fixture
def conf() -> Settings:
    return Settings()


# -- defaults and access -------------------------------------------------------------------


def test_defaults_cover_the_spec_settings(conf: Settings) -> None:
    for name in (
        "broker_url", "result_backend", "task_serializer", "result_serializer",
        "accept_content", "result_expires", "timezone", "enable_utc", "task_default_queue",
        "task_routes", "task_annotations", "task_time_limit", "task_soft_time_limit",
        "task_ignore_result", "task_always_eager", "task_acks_late", "task_track_started",
        "task_publish_retry", "task_publish_retry_policy", "task_compression",
        "result_extended", "worker_concurrency", "worker_prefetch_multiplier",
        "worker_max_tasks_per_child", "worker_max_memory_per_child", "worker_pool",
        "worker_send_task_events", "beat_schedule", "imports", "include",
        "broker_connection_retry_on_startup", "broker_transport_options",
    ):
        assert name in config.DEFAULTS
        assert conf[name] == config.DEFAULTS[name]
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.result_expires == 86400
    assert conf.task_default_queue == "multiq"
    assert conf.worker_prefetch_multiplier == 4
    assert conf.worker_pool == "prefork"
    assert conf.broker_url is None
    assert conf.task_message_max_bytes == 16 * 1024 * 1024


def test_mutable_defaults_are_not_shared() -> None:
    a, b = Settings(), Settings()
    a.beat_schedule["x"] = {"task": "t", "schedule": 1}
    a.accept_content.append("pickle")
    assert b.beat_schedule == {} and b.accept_content == ["json"]
    assert config.DEFAULTS["beat_schedule"] == {} and config.DEFAULTS["accept_content"] == ["json"]


def test_attribute_access_both_ways(conf: Settings) -> None:
    conf.broker_url = "redis://localhost:6379/0"
    assert conf["broker_url"] == "redis://localhost:6379/0"
    conf["result_backend"] = "redis://localhost:6379/1"
    assert conf.result_backend == "redis://localhost:6379/1"
    assert conf.changes == {
        "broker_url": "redis://localhost:6379/0", "result_backend": "redis://localhost:6379/1",
    }


def test_unknown_attribute_raises_attribute_error(conf: Settings) -> None:
    with pytest.raises(AttributeError, match="no_such_setting"):
        _ = conf.no_such_setting
    assert getattr(conf, "no_such_setting", 42) == 42
    assert not hasattr(conf, "__html__")


def test_dict_like_reads_include_defaults(conf: Settings) -> None:
    assert conf.get("task_default_queue") == "multiq"
    assert conf.get("nope") is None and conf.get("nope", 1) == 1
    assert "worker_pool" in conf and "WORKER_POOL" in conf and "nope" not in conf
    assert conf["TASK_SERIALIZER"] == "json"
    assert conf.setdefault("worker_pool", "solo") == "prefork"
    assert "worker_pool" not in conf.changes
    with pytest.raises(KeyError):
        conf["nope"]
    assert conf.find_value_for_key("BROKER_URL") is None
    assert conf.find_value_for_key("MULTIQ_TASK_DEFAULT_QUEUE", namespace="MULTIQ") == "multiq"
    with pytest.raises(KeyError, match="nope"):
        conf.find_value_for_key("nope")


def test_update_with_mapping_pairs_and_kwargs(conf: Settings) -> None:
    conf.update({"broker_url": "redis://h/0"}, task_acks_late=True)
    conf.update([("worker_concurrency", 2)])
    conf.update(TIMEZONE="Europe/Paris")
    assert conf.broker_url == "redis://h/0"
    assert conf.task_acks_late is True
    assert conf.worker_concurrency == 2
    assert conf.timezone == "Europe/Paris"
    assert "TIMEZONE" not in dict(conf)
    assert set(conf.changes) == {"broker_url", "task_acks_late", "worker_concurrency", "timezone"}


def test_constructor_takes_settings() -> None:
    conf = Settings({"broker_url": "redis://h/0"}, worker_pool="solo")
    assert conf.broker_url == "redis://h/0" and conf.worker_pool == "solo"
    assert conf.task_serializer == "json"


def test_unknown_key_warns_with_closest_name(conf: Settings) -> None:
    match = "'borker_url'; did you mean 'broker_url'"
    with pytest.warns(UnknownSettingWarning, match=match) as rec:
        conf.update(borker_url="redis://h/0")
    assert rec[0].filename == __file__  # points at the caller
    assert conf["borker_url"] == "redis://h/0"  # still stored
    with pytest.warns(UnknownSettingWarning, match="did you mean 'task_acks_late'"):
        conf.task_ack_late = True
    with pytest.warns(UnknownSettingWarning, match="did you mean 'worker_concurrency'"):
        conf["worker_concurency"] = 2


def test_unknown_key_without_close_match(conf: Settings) -> None:
    with pytest.warns(UnknownSettingWarning) as rec:
        conf.update(zzzzzz=1)
    assert str(rec[0].message) == "Unknown setting 'zzzzzz'"


def test_known_keys_do_not_warn(conf: Settings) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf.update(broker_url="redis://h/0", BEAT_SCHEDULE={})
        conf.worker_pool = "threads"


def test_delete_restores_default(conf: Settings) -> None:
    conf.worker_pool = "solo"
    del conf["worker_pool"]
    assert conf.worker_pool == "prefork" and "worker_pool" not in conf.changes
    with pytest.warns(UnknownSettingWarning):
        conf.custom = 1
    assert conf.pop("custom") == 1 and "custom" not in conf and "custom" not in conf.changes
    assert conf.pop("nope", 5) == 5
    with pytest.raises(KeyError):
        del conf["nope"]


def test_pickle_and_copy_keep_changes(conf: Settings) -> None:
    conf.broker_url = "redis://h/0"
    for other in (pickle.loads(pickle.dumps(conf)), conf.copy()):
        assert isinstance(other, Settings)
        assert other.broker_url == "redis://h/0"
        assert other.changes == {"broker_url": "redis://h/0"}
        assert other.worker_pool == "prefork"


# -- humanize and censoring ----------------------------------------------------------------


def test_humanize_without_defaults_shows_only_changes(conf: Settings) -> None:
    conf.update(worker_pool="solo", broker_url="redis://localhost:6379/0")
    assert conf.humanize() == "broker_url: 'redis://localhost:6379/0'\nworker_pool: 'solo'"
    assert Settings().humanize() == ""


def test_humanize_with_defaults_is_sorted_and_complete(conf: Settings) -> None:
    lines = conf.humanize(with_defaults=True).splitlines()
    assert len(lines) == len(config.DEFAULTS)
    assert lines == sorted(lines)
    assert "task_default_queue: 'multiq'" in lines
    assert "result_expires: 86400" in lines


def test_humanize_shows_in_place_changes(conf: Settings) -> None:
    conf.beat_schedule["tick"] = {"task": "t", "schedule": 10}
    assert conf.table() == {"beat_schedule": {"tick": {"task": "t", "schedule": 10}}}


def test_censoring_of_keys_and_url_passwords(conf: Settings) -> None:
    with pytest.warns(UnknownSettingWarning):
        conf.update(
            broker_url="redis://:hunter2@host:6379/1",
            result_backend="redis://user:hunter2@h/0",
            my_api_token="abc",
            secret_key="xyz",
            database_password=None,
            broker_transport_options={"password": "pw", "visibility_timeout": 3600},
        )
    text = conf.humanize()
    assert "hunter2" not in text and "abc" not in text and "xyz" not in text
    assert "broker_url: 'redis://:**@host:6379/1'" in text
    assert "result_backend: 'redis://user:**@h/0'" in text
    assert "my_api_token: '********'" in text
    assert "secret_key: '********'" in text
    assert "database_password: '********'" in text
    table = conf.table()
    assert table["broker_transport_options"] == {"password": "********", "visibility_timeout": 3600}
    raw = conf.humanize(censored=False)
    assert "redis://:hunter2@host:6379/1" in raw and "'abc'" in raw


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@host:6379/1", "redis://:**@host:6379/1"),
        ("redis://user:secret@h/0", "redis://user:**@h/0"),
        ("rediss://u:p%40ss@h:6380/0?ssl_cert_reqs=none", "rediss://u:**@h:6380/0?ssl_cert_reqs=none"),
        ("redis+sentinel://:pw@h1:26379,h2:26379/0", "redis+sentinel://:**@h1:26379,h2:26379/0"),
        ("redis://:p@ss@host/0", "redis://:**@host/0"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        ("redis+sentinel://h1:26379,h2:26379/0", "redis+sentinel://h1:26379,h2:26379/0"),
        ("redis://h:6379/0?x=a@b", "redis://h:6379/0?x=a@b"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        ("redis://:a@h1/0;redis://:b@h2/0", "redis://:**@h1/0;redis://:**@h2/0"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert config.mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param("redis+sentinel://:pw@h1:26379,h2:26379/0?master=m&sentinel_password=spw",
                     "redis+sentinel://:**@h1:26379,h2:26379/0?master=m&sentinel_password=**",
                     id="sentinel_password"),
        pytest.param("rediss://h/0?password=pw&ssl_cert_reqs=none",
                     "rediss://h/0?password=**&ssl_cert_reqs=none", id="password"),
        pytest.param("rediss://h/0?ssl_keyfile=/etc/k.pem&ssl_keyfile_password=kpw",
                     "rediss://h/0?ssl_keyfile=/etc/k.pem&ssl_keyfile_password=**",
                     id="ssl_keyfile_password-but-not-the-keyfile-path"),
        pytest.param("rediss://h/0?ssl_password=spw", "rediss://h/0?ssl_password=**",
                     id="ssl_password"),
        pytest.param("https://h/hook?token=t&x=1", "https://h/hook?token=**&x=1", id="token"),
        pytest.param("https://h/?Api_Key=k&MY_SECRET=s&X-Amz-Signature=g&auth=a&q=1",
                     "https://h/?Api_Key=**&MY_SECRET=**&X-Amz-Signature=**&auth=**&q=1",
                     id="names-with-key-secret-signature-any-case"),
        pytest.param("redis://h/0?Pass%77ord=pw", "redis://h/0?Pass%77ord=**",
                     id="percent-encoded-name"),
        pytest.param("unix:///run/redis.sock?db=1&password=pw",
                     "unix:///run/redis.sock?db=1&password=**", id="unix-socket"),
        pytest.param("redis+cluster://u:pw@h1:7000,h2:7001?password=pw2",
                     "redis+cluster://u:**@h1:7000,h2:7001?password=**", id="cluster"),
        pytest.param("sentinel://:pw@h1/1;sentinel://:pw@h2/1?sentinel_password=s",
                     "sentinel://:**@h1/1;sentinel://:**@h2/1?sentinel_password=**",
                     id="celery-style-list"),
        pytest.param("redis://:pa/ss@h/0", "redis://:**@h/0", id="unencoded-slash"),
        pytest.param("Not a Redis URL: 'redis://:pw@h/0?token=t' (see docs)",
                     "Not a Redis URL: 'redis://:**@h/0?token=**' (see docs)",
                     id="inside-a-message-keeps-the-quote"),
    ],
)
def test_mask_url_masks_secret_query_parameters(url: str, masked: str) -> None:
    assert config.mask_url(url) == masked
    assert config.mask_url(masked) == masked  # masking twice changes nothing


def test_mask_argv_masks_urls_secret_options_and_settings() -> None:
    argv = ["python", "-m", "multiq", "-b", "redis://:pw1@h/1",
            "--result-backend=redis://u:pw2@h/2?sentinel_password=pw3", "worker",
            "--password", "pw4", "--auth-token=pw5", "-c", "2", "--",
            "broker_api_key=pw6", ".my_secret=pw7", "worker_concurrency=4"]
    shown = config.mask_argv(argv)
    assert not any(f"pw{i}" in " ".join(shown) for i in range(1, 8)), shown
    assert shown == ["python", "-m", "multiq", "-b", "redis://:**@h/1",
                     "--result-backend=redis://u:**@h/2?sentinel_password=**", "worker",
                     "--password", "**", "--auth-token=**", "-c", "2", "--",
                     "broker_api_key=**", ".my_secret=**", "worker_concurrency=4"]


def test_humanize_masks_secret_url_parameters(conf: Settings) -> None:
    conf.update(
        broker_url="redis+sentinel://:pw@h1,h2/1?master=m&sentinel_password=hunter2",
        result_backend="rediss://h/2?ssl_keyfile_password=hunter3&ssl_keyfile=/k.pem",
        beat_schedule={"t": {"task": "x", "schedule": 1, "args": ["redis://:hunter4@h"]}},
    )
    text = conf.humanize()
    assert "hunter" not in text, text
    assert "sentinel_password=**" in text and "ssl_keyfile=/k.pem" in text


# -- loading -------------------------------------------------------------------------------


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A temporary package ``cfgpkg_<n>`` holding a ``settings`` module; returns its name."""
    name = f"cfgpkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "settings.py").write_text(textwrap.dedent("""
        import os
        from datetime import timedelta

        broker_url = "redis://localhost:6379/0"
        result_expires = timedelta(hours=1)
        task_routes = {"a.*": {"queue": "a"}}
        DEBUG = True
        WORKER_CONCURRENCY = 3
        _private = 1

        def helper():
            return 1

        class Conf:
            broker_url = "redis://other/0"
            task_acks_late = True

        MULTIQ_BROKER_URL = "redis://ns/0"
        MULTIQ_TASK_ALWAYS_EAGER = True
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_load_object_from_module_object(pkg: str) -> None:
    module = importlib.import_module(f"{pkg}.settings")
    assert config.load_object(module) == {
        "broker_url": "redis://localhost:6379/0",
        "result_expires": timedelta(hours=1),
        "task_routes": {"a.*": {"queue": "a"}},
        "worker_concurrency": 3,
    }


def test_load_object_from_class_and_instance() -> None:
    class Base:
        broker_url = "redis://base/0"

    class Conf(Base):
        task_acks_late = True
        beat_schedule = {"x": {"task": "t", "schedule": 5.0}}
        sched = object()
        _hidden = 1

        def method(self) -> None: ...

    loaded = config.load_object(Conf)
    assert set(loaded) == {"broker_url", "task_acks_late", "beat_schedule", "sched"}
    assert loaded["broker_url"] == "redis://base/0"
    assert config.load_object(Conf())["task_acks_late"] is True


def test_load_object_from_strings(pkg: str) -> None:
    assert config.load_object(f"{pkg}.settings")["broker_url"] == "redis://localhost:6379/0"
    for name in (f"{pkg}.settings:Conf", f"{pkg}.settings.Conf"):
        assert config.load_object(name) == {
            "broker_url": "redis://other/0", "task_acks_late": True,
        }


def test_load_object_namespace(pkg: str) -> None:
    assert config.load_object(f"{pkg}.settings", namespace="MULTIQ") == {
        "broker_url": "redis://ns/0", "task_always_eager": True,
    }


def test_load_object_from_mapping() -> None:
    loaded = config.load_object({"CELERY_BROKER_URL": "x", "DEBUG": 1}, namespace="CELERY")
    assert loaded == {"broker_url": "x"}


def test_load_object_import_errors(pkg: str) -> None:
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        config.load_object("no_such_module_xyz")
    with pytest.raises(ImportError, match="missing"):
        config.load_object(f"{pkg}.settings:missing")
    with pytest.raises(ImportError, match="missing"):
        config.load_object(f"{pkg}.settings.missing")
    with pytest.raises(ImportError, match="nomod"):
        config.load_object(f"{pkg}.nomod.attr")


def test_load_object_keeps_inner_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cfg_broken_mod.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="not_installed_dependency_xyz"):
        config.load_object("cfg_broken_mod")
    sys.modules.pop("cfg_broken_mod", None)


def test_load_envvar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIQ_TEST_CONFIG_MODULE", "proj.settings")
    assert config.load_envvar("MULTIQ_TEST_CONFIG_MODULE") == "proj.settings"
    monkeypatch.setenv("MULTIQ_TEST_CONFIG_MODULE", "")
    with pytest.raises(exceptions.ImproperlyConfigured, match="MULTIQ_TEST_CONFIG_MODULE"):
        config.load_envvar("MULTIQ_TEST_CONFIG_MODULE")
    monkeypatch.delenv("MULTIQ_TEST_CONFIG_MODULE")
    with pytest.raises(exceptions.ImproperlyConfigured, match="MULTIQ_TEST_CONFIG_MODULE"):
        config.load_envvar("MULTIQ_TEST_CONFIG_MODULE")
