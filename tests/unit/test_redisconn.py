"""Broker and backend URLs: one server, Sentinel and Cluster spellings, and their errors."""
from __future__ import annotations

import pytest
import redis

import multiq
from multiq.config import mask_url
from multiq.exceptions import ImproperlyConfigured
from multiq.redisconn import UNAVAILABLE, connect, parse_url


def test_sentinel_url_names_every_sentinel_the_master_and_the_database() -> None:
    t = parse_url("redis+sentinel://:s3cret@h1:26379,h2,h3:26380/3?master=mymaster")
    assert t.kind == "sentinel"
    assert t.hosts == [("h1", 26379), ("h2", 26379), ("h3", 26380)]
    assert (t.db, t.password, t.master, t.tls) == (3, "s3cret", "mymaster", False)


def test_celery_sentinel_spelling_with_master_name_option() -> None:
    url = "sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26379/1"
    t = parse_url(url, {"master_name": "cluster1"})
    assert t.kind == "sentinel" and t.master == "cluster1" and t.db == 1
    assert t.hosts == [("h1", 26379), ("h2", 26379)]


def test_sentinel_without_a_master_name_is_a_clear_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="master"):
        parse_url("redis+sentinel://h1:26379")


def test_cluster_url_tls_credentials_and_ipv6() -> None:
    t = parse_url("rediss+cluster://app:pw%40x@h1:7000,[::1]:7001")
    assert t.kind == "cluster" and t.tls
    assert (t.username, t.password) == ("app", "pw@x")
    assert t.hosts == [("h1", 7000), ("::1", 7001)]


def test_cluster_by_transport_option_and_valkey_spelling() -> None:
    assert parse_url("redis://h1:7000,h2:7001", {"cluster": True}).kind == "cluster"
    assert parse_url("valkey+cluster://h1:7000").kind == "cluster"


def test_cluster_has_only_database_zero() -> None:
    with pytest.raises(ImproperlyConfigured, match="database 0"):
        parse_url("redis+cluster://h1:7000/2")


@pytest.mark.parametrize("url, message", [
    ("redis://h1:6379,h2:6379/0", "several hosts"),
    ("amqp://guest@localhost//", "Unsupported"),
    ("redis+cluster://h1:notaport", "Bad port"),
    ("redis+sentinel://h1/x?master=m", "Bad database"),
    ("redis://h1;redis+cluster://h2", "Mixed"),
    ("", "No Redis URL"),
])
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_url(url)


def test_connect_builds_the_right_client_without_touching_the_network() -> None:
    sentinel = connect("redis+sentinel://127.0.0.1:1,127.0.0.1:2/4?master=m",
                       {"socket_timeout": 3, "sentinel_kwargs": {"password": "sp"}})
    assert isinstance(sentinel, redis.Redis)
    pool = sentinel.connection_pool
    assert pool.service_name == "m" and pool.connection_kwargs["db"] == 4
    assert pool.connection_kwargs["socket_timeout"] == 3
    assert sentinel.connection_pool.sentinel_manager.sentinels[0].connection_pool \
        .connection_kwargs["password"] == "sp"
    single = connect("redis://:pw@127.0.0.1:1/5")
    assert single.connection_pool.connection_kwargs["db"] == 5
    assert single.connection_pool.connection_kwargs["password"] == "pw"


def test_connections_name_multiq_to_the_server_without_a_package_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    driver_info = pytest.importorskip("redis.driver_info")
    import redis.utils

    def looked_up() -> str:
        raise AssertionError("redis-py looked its version up for a connection")

    monkeypatch.setattr(redis.utils, "get_lib_version", looked_up)
    conn = connect("redis://127.0.0.1:1/0").connection_pool.make_connection()
    assert isinstance(conn.driver_info, driver_info.DriverInfo)
    assert conn.driver_info.formatted_name == f"redis-py(multiq_v{multiq.__version__})"
    assert conn.driver_info.lib_version == redis.__version__


def test_an_unreachable_cluster_counts_as_redis_unavailable() -> None:
    """Workers wait out UNAVAILABLE errors instead of dying (a cluster connects at once)."""
    with pytest.raises(UNAVAILABLE):
        connect("redis+cluster://127.0.0.1:1", {"socket_connect_timeout": 0.2})


def test_passwords_are_masked_in_multi_host_urls() -> None:
    shown = mask_url("redis+sentinel://:s3cret@h1:26379,h2:26379/0?master=m")
    assert "s3cret" not in shown and "h2:26379" in shown
