"""The session redis-server answers, and every test starts with empty databases."""
from __future__ import annotations


def _check_empty_then_dirty(redis_server, redis_client, backend_url, key):
    assert redis_client.ping()
    assert redis_client.dbsize() == 0
    backend = redis_server.client(int(backend_url.rsplit("/", 1)[1]))
    try:
        assert backend.dbsize() == 0
        backend.set(key, "1")
    finally:
        backend.close()
    redis_client.set(key, "1")


def test_fresh_database_first(redis_server, redis_client, backend_url, redis_url):
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/1"
    _check_empty_then_dirty(redis_server, redis_client, backend_url, "first")


def test_fresh_database_second(redis_server, redis_client, backend_url):
    assert backend_url == redis_server.url(2)
    _check_empty_then_dirty(redis_server, redis_client, backend_url, "second")
