"""The dashboard's option checks and its credential and CSRF rules, without a server."""
from __future__ import annotations

import base64

import pytest

from multiq.dashboard.security import Authenticator, csrf_refusal
from multiq.dashboard.settings import (
    Credentials,
    DashboardSettings,
    SettingsError,
    is_loopback,
    normalize_prefix,
    parse_basic,
)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses(address):
    assert is_loopback(address)
    DashboardSettings(address=address).check()


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3", "example.com"])
def test_other_addresses_need_authentication_or_unauthenticated(address):
    with pytest.raises(SettingsError, match="without authentication"):
        DashboardSettings(address=address).check()
    DashboardSettings(address=address, unauthenticated=True).check()
    DashboardSettings(address=address, credentials=Credentials(token="t")).check()
    DashboardSettings(address=address, credentials=Credentials(basic=(("u", "p"),))).check()


def test_bad_values():
    with pytest.raises(SettingsError, match="port"):
        DashboardSettings(port=70000).check()
    with pytest.raises(SettingsError, match="history"):
        DashboardSettings(history_max_tasks=0).check()
    for bad in ("user", ":pw", "user:"):
        with pytest.raises(SettingsError, match="user:password"):
            parse_basic([bad])
    assert parse_basic(["a:b:c", "d:e"]) == (("a", "b:c"), ("d", "e"))


@pytest.mark.parametrize("given,expected", [("", ""), ("/", ""), ("mq", "/mq"),
                                            ("/mq/", "/mq"), ("a//b/", "/a/b")])
def test_prefix(given, expected):
    assert normalize_prefix(given) == expected


def test_authenticator_and_sessions():
    auth = Authenticator(Credentials(basic=(("u", "p"),), token="tok"))
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    assert auth.identify({"authorization": basic}, {}) == "basic"
    assert auth.identify({"authorization": "Bearer tok"}, {}) == "bearer"
    assert auth.identify({"authorization": "Bearer tok2"}, {}) is None
    assert auth.identify({}, {}) is None
    session = auth.session(now=1000.0)
    assert auth.valid_session(session, now=1001.0)
    assert not auth.valid_session(session, now=10 ** 10)  # expired
    assert not auth.valid_session(session[:-1] + "0", now=1001.0)
    # a restart with the same credentials keeps sessions; other credentials do not
    assert Authenticator(Credentials(basic=(("u", "p"),), token="tok")).valid_session(
        session, now=1001.0)
    assert not Authenticator(Credentials(token="other")).valid_session(session, now=1001.0)
    assert Authenticator(Credentials()).identify({}, {}) == "none"


def test_csrf_rules():
    good = {"cookie": "multiq_csrf=abc", "host": "dash:5555"}
    cookies = {"multiq_csrf": "abc"}
    assert csrf_refusal("session", good, cookies, "abc") is None
    assert csrf_refusal("none", good, cookies, "abd")
    assert csrf_refusal("none", good, {}, "abc")
    assert csrf_refusal("none", {**good, "origin": "http://evil:5555"}, cookies, "abc")
    assert csrf_refusal("none", {**good, "origin": "null"}, cookies, "abc")
    assert csrf_refusal("none", {**good, "origin": "http://dash:5555"}, cookies, "abc") is None
    assert csrf_refusal("bearer", {"origin": "http://evil"}, {}, "") is None
    assert csrf_refusal("basic", {}, {}, "") is None
    assert csrf_refusal("basic", {"sec-fetch-site": "cross-site"}, {}, "")
