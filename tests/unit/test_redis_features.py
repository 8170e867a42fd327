"""The tests' view of their redis-server: cluster tests skip below Redis 7 (no SSUBSCRIBE),
TLS tests on a build without TLS, each with the reason; a capable server skips nothing."""
from __future__ import annotations

import stat
from pathlib import Path

from redis_features import ServerFeatures, features, has_tls, parse_version

REDIS_62 = "Redis server v=6.2.14 sha=40305114:0 malloc=libc bits=64 build=dff95a8e7a99d269"
REDIS_70 = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c9"
VALKEY_8 = "Valkey server v=8.0.1 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1"
NO_TLS_PROBE = ("\n*** FATAL CONFIG FILE ERROR (Redis 6.2.14) ***\nReading the configuration "
                "file, at line 3\n>>> 'tls-port \"0\"'\nBad directive or wrong number of "
                "arguments\n")
TLS_PROBE = "# Configuration loaded\n# Configured to not listen anywhere, exiting.\n"


def test_versions_are_read_from_redis_and_valkey() -> None:
    assert parse_version(REDIS_62) == (6, 2, 14)
    assert parse_version(REDIS_70) == (7, 0, 15)
    assert parse_version(VALKEY_8) == (8, 0, 1)
    assert parse_version("something else") == ()


def test_tls_is_missing_only_when_the_option_is_refused() -> None:
    assert not has_tls(NO_TLS_PROBE)
    assert has_tls(TLS_PROBE)
    assert has_tls("Bad directive or wrong number of arguments\n>>> 'other 1'")


def test_redis_62_without_tls_skips_cluster_and_tls_tests_with_reasons() -> None:
    old = ServerFeatures((6, 2, 14), tls=False)
    assert "6.2.14" in (old.cluster_skip() or "") and "SSUBSCRIBE" in (old.cluster_skip() or "")
    assert "TLS" in (old.tls_skip() or "")
    assert "7+" in (old.acl_skip() or "")


def test_redis_7_with_tls_skips_nothing() -> None:
    new = ServerFeatures((7, 0, 15), tls=True)
    assert new.cluster_skip() is None and new.tls_skip() is None and new.acl_skip() is None
    assert ServerFeatures((), tls=True).cluster_skip() is None  # unreadable: let it run


def test_features_asks_the_binary(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n"
                    f"if [ \"$1\" = --version ]; then echo '{REDIS_62}'; exit 0; fi\n"
                    "echo '*** FATAL CONFIG FILE ERROR (Redis 6.2.14) ***'\n"
                    "echo \">>> 'tls-port \\\"0\\\"'\"\n"
                    "echo 'Bad directive or wrong number of arguments'\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert features(str(fake)) == ServerFeatures((6, 2, 14), tls=False)
